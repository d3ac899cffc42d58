"""Fine-tuning step throughput: bertology's engine vs Hugging Face `Trainer`, same model, task, examples, batch
size, precision, learning-rate schedule, threads and seed, in one run. Goal (issue 29): >= 1.3x the Trainer with
fused AdamW and compile on both sides.

Task (default): composer classification from music voices written as random words (the cross-domain setting),
one window of up to --max-length tokens per voice, so lengths vary (median ~100, up to 256 tokens). The training
set is large (--n-train 1600) so that the Trainer's group-by-length sampler has room to group: it sorts within
megabatches of min(n / (4 x batch), 50) batches (25 batches here; with the old 119 examples a megabatch was one
batch and "group by length" measured the plain baseline twice). Each side trains a fresh model for --steps
optimizer steps (the same number of examples), so a run stays short while the set stays large.

Rows, in this order:
1. equal settings: engine vs Trainer with train_sampling_strategy="group_by_length" (both sides length-grouped),
   fused AdamW on both (optim="adamw_torch_fused"; the engine's default where torch supports it), the same
   precision, batch and threads, and with --compile torch.compile on both (Trainer torch_compile=True; ours
   torch.compile(model)).
2. as each is used by default: the engine as the CLI runs it vs `Trainer` as its docs show it (random sampler,
   its default optimizer). The gap between 1 and 2 is what the sampler (padding) buys, not the engine.
Ratios are per round (paired ABBA rounds, odd --repeats), not a median divided by another run's median. The
padding each sampler produces is printed (real vs padded tokens): a ratio close to the padding ratio is a
padding gain. Accuracy after --steps is printed for both with the majority-class rate; at a few steps both may
predict the majority class, and then it is said that accuracy compares nothing.

Protocol (bench/README.md): an untimed warm-up of --warmup-steps steps on every side, then --repeats rounds in
ABBA order, each a fresh model, its `train()` call timed; the machine's load and the CPU printed.

    OMP_NUM_THREADS=1 .venv/bin/python bench/finetune.py --threads 1 --steps 8 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--task", default="composer")
    ap.add_argument("--n-train", type=int, default=1600)
    ap.add_argument("--n-eval", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps per timed run, on every side")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--precision", default=None, choices=["fp32", "bf16"],
                    help="default: bf16 where native, else fp32 (core.precision.fast_precision)")
    ap.add_argument("--compile", action="store_true", help="torch.compile on both sides (equal-settings row)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-default", action="store_true", help="skip row 2 (as each is used by default)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--warmup-steps", type=int, default=2, help="untimed optimizer steps per side first")
    ap.add_argument("--repeats", type=int, default=3, help="ABBA rounds, odd (median of paired ratios)")
    args = ap.parse_args()
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from common import check_odd, encoder_flops_per_token, machine_load, peak_fraction, precision_label, set_threads

    check_odd(args.repeats)
    set_threads(args.threads)
    print(machine_load())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers
    transformers.utils.logging.set_verbosity_error()

    from bertology.core.engine import ExampleBatches, TrainConfig, length_batches, train
    from bertology.core.models import load_config, load_tokenizer
    from bertology.core.precision import fast_precision
    from bertology.experiments.crossdomain import (build_model, encode, load_task, make_mapping, predict_logits,
                                                   split_indices, stratified_subset)
    from bertology.metrics import classification_scores

    precision = args.precision or fast_precision()
    data = load_task(args.task, args.data_dir)
    data = data.subset(stratified_subset(data, min(len(data), args.n_train + args.n_eval), args.seed))
    split = split_indices(data, (1 - args.n_eval / len(data), args.n_eval / len(data) / 2, args.n_eval / len(data) / 2),
                          args.seed)
    labels = sorted(set(data.labels))
    y = [labels.index(l) for l in data.labels]
    tok = load_tokenizer(args.model)
    mapping = make_mapping({s for seq in data.sequences for s in seq}, tok, args.seed)
    vocab = tok.get_vocab()
    ids = {s: vocab[t] for s, t in mapping.items()}
    train_idx, eval_idx = split["train"], split["dev"] + split["test"]
    tr = encode([data.sequences[i] for i in train_idx], [y[i] for i in train_idx], ids, tok.cls_token_id,
                tok.sep_token_id, args.max_length, max_windows=1)
    ev = encode([data.sequences[i] for i in eval_idx], [y[i] for i in eval_idx], ids, tok.cls_token_id,
                tok.sep_token_id, args.max_length)
    lengths = [len(e["input_ids"]) for e in tr.examples]
    n_step = args.steps * args.batch_size
    print(f"task {args.task}: {len(tr.examples)} training examples (tokens: median {int(np.median(lengths))}, "
          f"max {max(lengths)}), {ev.n_sequences} held-out; model {args.model}, batch {args.batch_size}, "
          f"{precision_label(precision)}, {args.threads} thread(s), {args.steps} steps ({n_step} examples) a run, "
          f"compile {'on both sides' if args.compile else 'off on both sides'}")
    # padding each sampler makes over the whole set (the first --steps batches are what a run sees)
    real = sum(lengths)
    bucketed = sum(len(g) * max(lengths[i] for i in g)
                   for g in length_batches(lengths, args.batch_size, shuffle=True, seed=args.seed))
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(lengths))
    random_pad = sum(len(g) * max(lengths[i] for i in g)
                     for g in np.array_split(order, -(-len(order) // args.batch_size)))
    print(f"padded tokens per epoch: real {real:,}, engine buckets {bucketed:,} ({bucketed / real:.2f}x), random "
          f"batches {random_pad:,} ({random_pad / real:.2f}x): a ratio near {random_pad / bucketed:.2f} is padding")

    def score(model):
        pred = predict_logits(model, ev, precision=precision).argmax(1)
        return classification_scores(ev.labels, pred, list(range(len(labels))))["accuracy"]

    last_model = {}

    def run_trainer(name, strategy, optim, max_steps):
        from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

        model = build_model("pretrained", args.model, len(labels), args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            targs = TrainingArguments(
                output_dir=tmp, per_device_train_batch_size=args.batch_size, max_steps=max_steps,
                learning_rate=args.lr, warmup_steps=0.1, weight_decay=0.01, max_grad_norm=1.0,
                lr_scheduler_type="linear", bf16=precision == "bf16", use_cpu=True, report_to="none",
                save_strategy="no", logging_strategy="no", eval_strategy="no", seed=args.seed,
                dataloader_num_workers=0, train_sampling_strategy=strategy,
                **({"optim": optim} if optim else {}), torch_compile=args.compile and name.startswith("equal"))
            trainer = Trainer(model=model, args=targs, train_dataset=list(tr.examples),
                              data_collator=DataCollatorWithPadding(tok), processing_class=tok)
            trainer.train()
        last_model[name] = model

    def run_engine(name, max_steps):
        model = build_model("pretrained", args.model, len(labels), args.seed)
        net = torch.compile(model) if args.compile and name.startswith("equal") else model
        cfg = TrainConfig(lr=args.lr, max_steps=max_steps, precision=precision, seed=args.seed, warmup=0.1,
                          progress=False)
        train(net, ExampleBatches(tr.examples, args.batch_size, seed=args.seed, pad_id=tok.pad_token_id), cfg)
        last_model[name] = model

    majority = max(np.bincount(ev.labels)) / len(ev.labels)
    # Useful training FLOPs a run: forward + backward (3x the forward) of the encoder over the real (unpadded)
    # tokens of n_step average examples; padding and the classifier head are not credited.
    mean_len = real / len(lengths)
    run_flops = 3 * encoder_flops_per_token(load_config(args.model), mean_len) * mean_len * n_step
    rows = [("1. equal settings (length-grouped, fused AdamW, same precision/batch/threads/compile)",
             "equal engine", lambda k: run_engine("equal engine", k),
             "equal Trainer group_by_length fused", lambda k: run_trainer("equal trainer", "group_by_length",
                                                                          "adamw_torch_fused", k))]
    if not args.skip_default:
        rows.append(("2. as each is used by default (engine as the CLI runs it; Trainer as its docs show it: random "
                     "sampler, default optimizer, no compile)", "default engine", lambda k: run_engine("default engine", k),
                     "default Trainer", lambda k: run_trainer("default trainer", "random", None, k)))
    for title, a, fa, b, fb in rows:
        fa(args.warmup_steps)
        fb(args.warmup_steps)                            # the same untimed warm-up on both sides
        times = {a: [], b: []}
        for r in range(args.repeats):                    # ABBA: the order reverses every round
            for name, fn in ([(a, fa), (b, fb)] if r % 2 == 0 else [(b, fb), (a, fa)]):
                t0 = time.perf_counter()
                fn(args.steps)
                times[name].append(time.perf_counter() - t0)
        ratios = [tb / ta for ta, tb in zip(times[a], times[b])]
        print(title)
        for name in (a, b):
            med = float(np.median(times[name]))
            print(f"  {name:38s} median {med:7.1f} s ({min(times[name]):.1f}-{max(times[name]):.1f}), "
                  f"{n_step / med:6.2f} examples/s"
                  f", MFU {peak_fraction(run_flops / med, precision, args.threads)}")
        acc = {k: score(m) for k, m in last_model.items() if k.split()[0] == a.split()[0]}
        print(f"  engine / Trainer: {float(np.median(ratios)):.2f}x examples/s (paired rounds "
              f"{min(ratios):.2f}-{max(ratios):.2f}; goal >= 1.3x at equal settings)")
        accs = ", ".join(f"{k} {v:.3f}" for k, v in acc.items())
        note = ("both at the majority-class rate: accuracy compares nothing at this length"
                if all(abs(v - majority) < 1e-9 for v in acc.values()) else "")
        print(f"  held-out accuracy after {args.steps} steps: {accs} (majority class {majority:.3f}) {note}")
    print(machine_load())


if __name__ == "__main__":
    main()
