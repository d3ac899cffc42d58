"""Embedding throughput: bertology's engine vs transformers.pipeline("feature-extraction").

Same model, same 2,000 real sentences of varied length (IMDB reviews, Reuters and BBC news, Tatoeba: from
../shared/data), same truncation, measured in one run. Goals (issue #2): >= 1.3x at fp32, >= 3x with bf16.
Also prints the fraction of this CPU's measured matmul peak that each reaches.

    .venv/bin/python bench/embed.py [--n 2000] [--model minilm] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import encoder_flops_per_token, matmul_peak  # noqa: E402


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
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import pipeline
    from transformers.utils import logging

    logging.set_verbosity_error()
    from bertology.core.embed import Embedder
    from bertology.core.models import load_model, load_tokenizer

    sents = real_sentences(Path(args.data), args.n)
    tok = load_tokenizer(args.model)
    lengths = [min(len(x), args.max_length) for x in tok(sents)["input_ids"]]
    tokens = sum(lengths)
    print(f"{len(sents)} sentences, {tokens:,} tokens (length {min(lengths)}-{max(lengths)}, "
          f"mean {tokens / len(sents):.0f}), {args.threads} threads")
    model = load_model(args.model)
    flops = encoder_flops_per_token(model.config, tokens / len(sents)) * tokens
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")

    def run_pipeline():
        pipe = pipeline("feature-extraction", model=model, tokenizer=tok, device=-1)
        t0 = time.perf_counter()
        for _ in pipe(sents, batch_size=args.batch_size, truncation=True, max_length=args.max_length,
                      return_tensors=True):
            pass
        return time.perf_counter() - t0

    def run_engine(precision):
        emb = Embedder(args.model, precision=precision, batch_size=args.batch_size, max_length=args.max_length,
                       progress=False)
        t0 = time.perf_counter()
        emb.sentence_means(sents, layers=[emb.num_layers])
        return time.perf_counter() - t0

    results = {}
    for name, fn, prec in [("pipeline fp32", run_pipeline, "fp32"), ("bertology fp32", lambda: run_engine("fp32"), "fp32"),
                           ("bertology bf16", lambda: run_engine("bf16"), "bf16")]:
        secs = fn()
        results[name] = secs
        print(f"{name:16s} {secs:7.1f} s  {tokens / secs:8.0f} tokens/s  "
              f"{100 * flops / secs / peaks[prec]:5.1f}% of {prec} matmul peak")
    base = results["pipeline fp32"]
    print(f"speed-up vs pipeline: fp32 {base / results['bertology fp32']:.2f}x (goal 1.3x), "
          f"bf16 {base / results['bertology bf16']:.2f}x (goal 3x)")


if __name__ == "__main__":
    main()
