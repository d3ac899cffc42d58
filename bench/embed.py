"""Embedding throughput: bertology's engine vs transformers.pipeline("feature-extraction").

Same model, same real sentences of varied length (IMDB reviews, Reuters and BBC news, Tatoeba: from
../shared/data), same truncation (the pipeline gets `max_length` through `tokenize_kwargs`), same threads.
Rows, each from ABBA rounds in this one run (odd --repeats; every ratio is the median of per-round ratios):
1. equal settings: ours fp32 in rows of --batch-size inputs (token_budget=False) vs the pipeline fp32 at the
   same batch_size with the same sentences sorted by length (the one thing a user can do for it), so precision,
   order, batch and threads are equal; then ours with its token budget against the same sorted pipeline.
2. bf16 against the pipeline in bf16 (torch_dtype=bfloat16), only where bf16 is native (on an AVX2-only CPU it
   is emulated, ~50-100x slower than fp32: the row says so and is skipped unless --bf16).
3. as each is used by default: ours as the CLI runs it (fp32 here, token budget) vs the pipeline as its docs
   show it (the sentences in arrival order, its default batch_size of 1).
Sentence means compared (fp32: within atol 1e-4; bf16: cosine >= 0.99), achieved FLOP/s as a fraction of the
GEMM peak in bench/results/peak.json (bench/peak.py), the CPU and the machine's load printed.

    .venv/bin/python bench/embed.py [--n 600] [--model minilm] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import (abba, check_odd, compare_arrays, encoder_flops_per_token, machine_load, paired_ratio,  # noqa: E402
                    peak_fraction, precision_label, set_threads)


def real_sentences(data: Path, n: int, seed: int = 0) -> list[str]:
    pools = []
    for f in ["corpora/en/imdb_reviews.txt.gz", "corpora/en/reuters21578.txt.gz", "corpora/en/bbc_news.txt.gz"]:
        with gzip.open(data / f, "rt", encoding="utf-8") as fh:
            pools.append([next(fh).strip() for _ in range(20_000)])
    pools.append([l.split("\t")[0] for l in (data / "tatoeba/cmn-eng.txt").read_text(encoding="utf-8").splitlines()])
    rng = random.Random(seed)
    return [rng.choice(rng.choice(pools)) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=3, help="ABBA rounds, odd (median of paired ratios)")
    ap.add_argument("--bf16", action="store_true", help="run the bf16 row even where bf16 is emulated")
    ap.add_argument("--skip-default", action="store_true", help="skip row 3 (the pipeline at batch 1 is slow)")
    args = ap.parse_args()
    check_odd(args.repeats)
    set_threads(args.threads)
    print(machine_load())
    import numpy as np
    from transformers import pipeline
    from transformers.utils import logging

    logging.set_verbosity_error()
    from bertology.core.embed import Embedder
    from bertology.core.models import load_model, load_tokenizer
    from bertology.core.precision import native_bf16

    sents = real_sentences(Path(args.data), args.n)
    tok = load_tokenizer(args.model)
    lengths = [min(len(x), args.max_length) for x in tok(sents)["input_ids"]]
    tokens = sum(lengths)
    order = sorted(range(len(sents)), key=lambda i: -lengths[i])
    print(f"{len(sents)} sentences, {tokens:,} tokens (length {min(lengths)}-{max(lengths)}, "
          f"mean {tokens / len(sents):.0f}), max_length {args.max_length}, {args.threads} thread(s), "
          f"ABBA x {args.repeats} after one untimed pass per side")
    model = load_model(args.model)
    flops = encoder_flops_per_token(model.config, tokens / len(sents)) * tokens
    pipes = {"fp32": pipeline("feature-extraction", model=model, tokenizer=tok, device=-1)}

    def run_pipeline(precision, batch, sort):
        idx = order if sort else list(range(len(sents)))
        out = pipes[precision]([sents[i] for i in idx], batch_size=batch, return_tensors=True,
                               tokenize_kwargs={"truncation": True, "max_length": args.max_length})
        # mean over the sentence's tokens, [CLS] and [SEP] excluded (as Embedder.sentence_means); batched, the
        # pipeline returns each sentence padded to its batch's longest: cut at the sentence's own length
        means = np.empty((len(sents), model.config.hidden_size), dtype=np.float32)
        for i, o in zip(idx, out):
            means[i] = o[0, 1:lengths[i] - 1].float().mean(0).numpy()
        return means

    def engine(precision, token_budget):
        emb = Embedder(args.model, precision=precision, batch_size=args.batch_size, max_length=args.max_length,
                       progress=False, token_budget=token_budget)
        return lambda: np.asarray(emb.sentence_means(sents, layers=[emb.num_layers])[0], dtype=np.float32)

    def row(title, ours_name, ours, base_name, base, precision):
        res = abba({ours_name: ours, base_name: base}, repeats=args.repeats, warmup=1)
        a, b = res[ours_name]["result"], res[base_name]["result"]
        if precision == "fp32":
            check = compare_arrays(a, b, atol=1e-4)
        else:
            cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            assert cos.min() >= 0.99, f"bf16 sentence means differ: min cosine {cos.min():.4f} < 0.99"
            check = f"min cosine {cos.min():.5f} (tolerance 0.99)"
        ratio, low, high = paired_ratio(res)
        print(f"{title}\n  {ours_name} / {base_name}: {ratio:.2f}x (paired rounds {low:.2f}-{high:.2f}); {check}")
        for name, r in res.items():
            p = "bf16" if "bf16" in name else "fp32"
            print(f"  {name:44s} median {r['median']:7.2f} s ({min(r['times']):.2f}-{max(r['times']):.2f})  "
                  f"{tokens / r['median']:7.0f} tokens/s  {peak_fraction(flops / r['median'], p, args.threads)}")

    b = args.batch_size
    sorted_fp32 = lambda: run_pipeline("fp32", b, True)    # noqa: E731
    row(f"1. equal settings: fp32, batch {b} inputs, sorted by length, {args.threads} thread(s), no compile",
        f"bertology fp32, {b} inputs a batch", engine("fp32", False), f"pipeline fp32 batch {b} sorted", sorted_fp32,
        "fp32")
    row(f"1b. ours with its token budget ({b} x 16 tokens a batch) against the same sorted pipeline",
        "bertology fp32, token budget", engine("fp32", True), f"pipeline fp32 batch {b} sorted", sorted_fp32, "fp32")
    if native_bf16() or args.bf16:
        import torch

        pipes["bf16"] = pipeline("feature-extraction", model=args.model, tokenizer=tok, device=-1,
                                 dtype=torch.bfloat16)
        row(f"2. equal settings in {precision_label('bf16')}: batch {b}, sorted, both sides bf16",
            "bertology bf16, token budget", engine("bf16", True), f"pipeline bf16 batch {b} sorted",
            lambda: run_pipeline("bf16", b, True), "bf16")
    else:
        print(f"2. bf16: skipped, {precision_label('bf16')} (--bf16 runs it anyway)")
    if not args.skip_default:
        row("3. as each is used by default (unequal: ours fp32 with its token budget and sorting; the pipeline in "
            "arrival order at its default batch_size 1)", "bertology (CLI default)", engine("fp32", True),
            "pipeline (docs default)", lambda: run_pipeline("fp32", 1, False), "fp32")
    print(machine_load())


if __name__ == "__main__":
    main()
