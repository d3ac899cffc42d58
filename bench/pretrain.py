"""Masked-LM pretraining throughput: bertology's `pretrain` loop against the Hugging Face recipe of
`run_mlm.py` (`Trainer` + `DataCollatorForLanguageModeling`), same model config, data, batch, sequence length,
precision, thread count and compile setting, measured in one run. Also prints model FLOPs utilisation (MFU)
against the GEMM peak bench/peak.py stored (bench/results/peak.json): one peak, measured one way, for every
document (run bench/peak.py first, on an idle machine).

    .venv/bin/python bench/pretrain.py --size mini --steps 20 --threads 1                 # equal settings
    .venv/bin/python bench/pretrain.py --size mini --steps 20 --threads 1 --no-hf-compile # as each is used by default

Equal settings (the default): torch.compile on both sides or on neither (--compile / --no-compile; the HF side
through TrainingArguments(torch_compile=True)), precision bf16 where native, else fp32 (--precision to force).
--no-hf-compile: "as each is used by default" (the Trainer without compile, ours with it), labelled unequal.
Ours computes the vocabulary projection for the masked tokens only (BertForMaskedLM projects every position):
a real saving of model work, stated in the output with both FLOP counts.

Both sides train the same model config: dropout 0 (the pretraining recipe's default, after Cramming BERT;
--dropout 0.1 for BERT's original) and plain matmul+softmax attention (faster than PyTorch's CPU
flash-attention backward at these shapes, for both). bertology runs its `pretrain` settings: fused AdamW and,
unless --no-compile, torch.compile; the first --warmup steps (compilation) are timed on each side and
reported, the throughput is the steady state of the following --steps.

Goals (issue #3): ratio >= 2x; MFU >= 40% in bf16 for `mini`.

MFU = model FLOPs/s / peak matmul FLOPs/s, with model FLOPs per token = 6 x (non-embedding parameters
+ hidden x vocab x mask rate): the forward+backward of every encoder weight for each token, and of the
vocabulary projection for the masked tokens, the only ones with a loss. (Recomputing the projection for all
positions, as `BertForMaskedLM` does, is extra work, not useful FLOPs.) Attention score FLOPs are left out,
as in the 6N rule.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from common import check_odd, machine_load, peak_fraction, precision_label, set_threads  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="mini")
    ap.add_argument("--precision", default=None, choices=["fp32", "bf16"], help="default: bf16 where native")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--vocab-size", type=int, default=30000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--hf-compile", action=argparse.BooleanOptionalAction, default=None,
                    help="torch_compile on the HF side (default: as --compile, equal settings)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up steps (timed, reported, not in the ratio)")
    ap.add_argument("--repeats", type=int, default=3, help="ABBA rounds, odd (median of paired ratios)")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args()
    check_odd(args.repeats)
    from bertology.core.precision import fast_precision

    args.precision = args.precision or fast_precision()
    hf_compile = args.compile if args.hf_compile is None else args.hf_compile
    set_threads(args.threads)
    print(machine_load())
    os.environ["TOKENIZERS_PARALLELISM"] = "false"

    from transformers import (BertForMaskedLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments)
    from transformers.utils import logging as hf_logging

    from bertology.core import engine
    from bertology.io.corpora import read_corpora
    from bertology.experiments.pretrain import (MaskedLMObjective, PackedMLMBatches, mlm_loss, make_masker, make_mlm,
                                    model_config, prepare_data, train_tokenizer)

    hf_logging.set_verbosity_error()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    corpora = read_corpora(["en=tatoeba-cmn-eng#0", "en=squad-train@4000", "zh=tatoeba-cmn-eng#1",
                            "zh=drcd-dev", "zh=cmrc-trial"], args.data_dir)
    tok, _ = train_tokenizer(corpora, tmp / "tok", args.vocab_size, budget_tokens=3_000_000)
    data = prepare_data(corpora, tok, args.seq_len)
    n_seq = args.steps * args.batch_size
    cfg = model_config(args.size, None, len(tok), args.seq_len, args.dropout)
    cfg._attn_implementation = "eager"   # what make_mlm picks on CPUs; the HF side gets it too
    print(f"{args.size}: {cfg.num_hidden_layers} x {cfg.hidden_size}, vocab {len(tok)}, batch {args.batch_size} x "
          f"{args.seq_len}, {args.steps} steps, {args.precision}, {args.threads} thread(s), dropout {args.dropout}; "
          f"{sum(len(s) for s in data.train.values())} packed sequences")

    # --- bertology: the loop `bertology pretrain` runs (engine.train + masked-only MLM head)
    load_before = os.getloadavg()[0]
    engine.set_seed(0)
    ours_model = make_mlm(cfg)
    objective = MaskedLMObjective(ours_model, compile=args.compile)
    batches = PackedMLMBatches(data.train, args.batch_size, make_masker(tok), seed=0)

    def run(steps):
        tc = engine.TrainConfig(out_dir=None, lr=5e-4, warmup=0.06, max_steps=steps, precision=args.precision,
                                progress=False, eval_every=10 ** 9, log_every=10 ** 9, fused_optimizer=True)
        t = time.perf_counter()
        res = engine.train(objective, batches, tc, loss_fn=mlm_loss)
        return time.perf_counter() - t, res.tokens

    # --- Hugging Face run_mlm.py recipe on the same packed sequences
    seqs = np.concatenate(list(data.train.values()))
    rng = np.random.default_rng(0)
    rows = seqs[rng.permutation(len(seqs))[:n_seq]]
    dataset = [{"input_ids": r.tolist()} for r in rows]

    def hf_run(steps):
        """A fresh model and Trainer (untimed), then trainer.train() timed: its set-up is paid in every run, as
        ours pays engine.train's."""
        engine.set_seed(0)
        targs = TrainingArguments(output_dir=str(tmp / "hf"), per_device_train_batch_size=args.batch_size,
                                  max_steps=steps, learning_rate=5e-4, warmup_steps=max(1, int(0.06 * steps)),
                                  bf16=args.precision == "bf16", use_cpu=True, save_strategy="no", report_to=[],
                                  logging_steps=10 ** 9, dataloader_num_workers=0, disable_tqdm=True, seed=0,
                                  torch_compile=hf_compile)
        trainer = Trainer(model=BertForMaskedLM(cfg), args=targs, train_dataset=dataset,
                          data_collator=DataCollatorForLanguageModeling(tok, mlm_probability=0.15))
        t = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t, steps * args.batch_size * args.seq_len

    # Protocol (bench/README.md): the same untimed warm-up on both sides (ours: this also compiles), then ABBA.
    warm = {"ours": run(args.warmup)[0], "hf": hf_run(args.warmup)[0]} if args.warmup else {}
    times = {"ours": [], "hf": []}
    for r in range(args.repeats):
        for name, fn in ((("ours", run), ("hf", hf_run)) if r % 2 == 0 else (("hf", hf_run), ("ours", run))):
            secs, tokens = fn(args.steps)
            times[name].append(secs)
    ours_s, hf_s = float(np.median(times["ours"])), float(np.median(times["hf"]))
    ours_tps, hf_tps = n_seq * args.seq_len / ours_s, n_seq * args.seq_len / hf_s   # the same tokens per run

    n_params = sum(p.numel() for p in ours_model.parameters())
    n_embed = sum(p.numel() for n, p in ours_model.named_parameters() if "embeddings" in n)
    flops_per_token = 6 * ((n_params - n_embed) + cfg.hidden_size * len(tok) * 0.15)
    full_head = 6 * ((n_params - n_embed) + cfg.hidden_size * len(tok))     # projecting every position
    load = os.getloadavg()[0]
    mode = ("torch.compile" if objective.compiled else f"eager{' (compile failed)' if args.compile else ''}")
    rng_s = {k: f"{min(v):.1f}-{max(v):.1f} s" for k, v in times.items()}
    print(f"bertology pretrain : {ours_tps:9.0f} tokens/s (median {ours_s:.1f} s, {rng_s['ours']}; {mode}, fused "
          f"AdamW)")
    print(f"HF Trainer+collator: {hf_tps:9.0f} tokens/s (median {hf_s:.1f} s, {rng_s['hf']})")
    print(f"protocol           : {args.warmup} untimed warm-up steps on each side, ABBA x {args.repeats}, medians; "
          f"outputs not compared (different masking recipes: throughput only)")
    ratios = sorted(h / o for o, h in zip(times["ours"], times["hf"]))
    equal = "equal settings" if hf_compile == args.compile else "UNEQUAL: as each is used by default"
    print(f"ratio              : {ratios[len(ratios) // 2]:9.2f}x   (paired rounds {ratios[0]:.2f}-{ratios[-1]:.2f}; "
          f"{equal}: compile ours {args.compile}, HF {hf_compile}; {precision_label(args.precision)} both; goal >= 2x)")
    if warm:
        print(f"warm-up ({args.warmup} steps, compile included where on): ours {warm['ours']:.1f} s, HF {warm['hf']:.1f} s")
    print(f"model FLOPs/token  : {flops_per_token / 1e6:9.1f} M  (6 x ({(n_params - n_embed) / 1e6:.2f}M non-embedding "
          f"+ {cfg.hidden_size}x{len(tok)}x0.15)); projecting every position, as BertForMaskedLM does: "
          f"{full_head / 1e6:.1f} M (ours skips the difference: less work, not faster arithmetic)")
    print(f"MFU bertology      : {peak_fraction(ours_tps * flops_per_token, args.precision, args.threads)}")
    print(f"MFU HF             : {peak_fraction(hf_tps * flops_per_token, args.precision, args.threads)} "
          f"(useful FLOPs only)")
    print(f"1-min load average: {load_before:.1f} before, {load:.1f} after the runs, on {os.cpu_count()} CPUs")
    print(machine_load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
