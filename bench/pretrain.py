"""Masked-LM pretraining throughput: bertology's `pretrain` loop against the Hugging Face recipe of
`run_mlm.py` (`Trainer` + `DataCollatorForLanguageModeling`), same model config, data, batch, sequence length,
precision and thread count, measured in one run. Also prints model FLOPs utilisation (MFU) against this
CPU's measured matmul peak in that precision.

    .venv/bin/python bench/pretrain.py --size mini --precision bf16 --steps 20 --threads 1

Both sides train the same model config: dropout 0 (the pretraining recipe's default, after Cramming BERT;
--dropout 0.1 for BERT's original) and plain matmul+softmax attention (faster than PyTorch's CPU
flash-attention backward at these shapes, for both). bertology runs its `pretrain` settings: fused AdamW and,
unless --no-compile, torch.compile; the first --warmup steps (compilation) are timed separately and
reported, the throughput is the steady state of the following --steps. The matmul peak is measured before
and after the runs and the higher one is used (on a shared machine the lower one would flatter the MFU).

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
from common import machine_load, set_threads  # noqa: E402


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Best-of-3 FLOP/s of an n x n x n matmul in `dtype` on this process's threads."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="mini")
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--vocab-size", type=int, default=30000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps, on both sides alike")
    ap.add_argument("--repeats", type=int, default=3, help="ABBA rounds (median reported)")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args()
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
    peak_dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak_before = matmul_peak(peak_dtype)
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
                                  logging_steps=10 ** 9, dataloader_num_workers=0, disable_tqdm=True, seed=0)
        trainer = Trainer(model=BertForMaskedLM(cfg), args=targs, train_dataset=dataset,
                          data_collator=DataCollatorForLanguageModeling(tok, mlm_probability=0.15))
        t = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t, steps * args.batch_size * args.seq_len

    # Protocol (bench/README.md): the same untimed warm-up on both sides (ours: this also compiles), then ABBA.
    if args.warmup:
        run(args.warmup)
        hf_run(args.warmup)
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
    peak_after = matmul_peak(peak_dtype)
    peak = max(peak_before, peak_after)
    load = os.getloadavg()[0]
    mode = ("torch.compile" if objective.compiled else f"eager{' (compile failed)' if args.compile else ''}")
    rng_s = {k: f"{min(v):.1f}-{max(v):.1f} s" for k, v in times.items()}
    print(f"bertology pretrain : {ours_tps:9.0f} tokens/s (median {ours_s:.1f} s, {rng_s['ours']}; {mode}, fused "
          f"AdamW)")
    print(f"HF Trainer+collator: {hf_tps:9.0f} tokens/s (median {hf_s:.1f} s, {rng_s['hf']})")
    print(f"protocol           : {args.warmup} untimed warm-up steps on each side, ABBA x {args.repeats}, medians; "
          f"outputs not compared (different masking recipes: throughput only)")
    print(f"ratio              : {ours_tps / hf_tps:9.2f}x   (goal >= 2x)")
    print(f"matmul peak        : {peak / 1e9:9.1f} GFLOP/s ({args.precision}, {args.threads} thread(s); before "
          f"{peak_before / 1e9:.0f}, after {peak_after / 1e9:.0f})")
    print(f"model FLOPs/token  : {flops_per_token / 1e6:9.1f} M  (6 x ({(n_params - n_embed) / 1e6:.2f}M non-embedding "
          f"+ {cfg.hidden_size}x{len(tok)}x0.15))")
    print(f"MFU bertology      : {100 * ours_tps * flops_per_token / peak:9.1f} %  (goal >= 40% bf16 mini)")
    print(f"MFU HF             : {100 * hf_tps * flops_per_token / peak:9.1f} %")
    print(f"1-min load average: {load_before:.1f} before, {load:.1f} after the runs, on {os.cpu_count()} CPUs")
    print(machine_load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
