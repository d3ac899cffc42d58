"""Embedding throughput: bertology's engine vs transformers.pipeline("feature-extraction").

Same model, same 2,000 real sentences of varied length (IMDB reviews, Reuters and BBC news, Tatoeba: from
../shared/data), same truncation (the pipeline gets `max_length` through `tokenize_kwargs`), same batch and
threads. Follows bench/README.md: an equal untimed warm-up pass on every side, ABBA rounds (pipeline vs each of
ours) with the median, sentence means compared (fp32: within atol 1e-4 of the pipeline's; bf16: cosine >= 0.99
to the pipeline's fp32 means), the machine's load printed. Goals (issue #2): >= 1.3x at fp32, >= 3x with bf16.
Also prints the fraction of this CPU's measured matmul peak that each reaches.

    .venv/bin/python bench/embed.py [--n 2000] [--model minilm] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import abba, compare_arrays, encoder_flops_per_token, machine_load, matmul_peak, set_threads  # noqa: E402,E501


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
    ap.add_argument("--repeats", type=int, default=3, help="ABBA rounds (median reported)")
    args = ap.parse_args()
    set_threads(args.threads)
    print(machine_load())
    import numpy as np
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
          f"mean {tokens / len(sents):.0f}), max_length {args.max_length}, batch {args.batch_size} on both sides, "
          f"{args.threads} threads, ABBA x {args.repeats} after one untimed pass per side")
    model = load_model(args.model)
    flops = encoder_flops_per_token(model.config, tokens / len(sents)) * tokens
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    pipe = pipeline("feature-extraction", model=model, tokenizer=tok, device=-1)

    def run_pipeline():
        out = pipe(sents, batch_size=args.batch_size, return_tensors=True,
                   tokenize_kwargs={"truncation": True, "max_length": args.max_length})
        # mean over the sentence's tokens, [CLS] and [SEP] excluded (as Embedder.sentence_means); batched, the
        # pipeline returns each sentence padded to its batch's longest: cut at the sentence's own length
        return np.stack([o[0, 1:n - 1].float().mean(0).numpy() for o, n in zip(out, lengths)])

    embedders = {p: Embedder(args.model, precision=p, batch_size=args.batch_size, max_length=args.max_length,
                             progress=False) for p in ("fp32", "bf16")}

    def run_engine(precision):
        emb = embedders[precision]
        return np.asarray(emb.sentence_means(sents, layers=[emb.num_layers])[0], dtype=np.float32)

    medians = {}
    for prec in ("fp32", "bf16"):
        res = abba({"bertology " + prec: lambda p=prec: run_engine(p), "pipeline fp32": run_pipeline},
                   repeats=args.repeats, warmup=1)
        ours, ref = res["bertology " + prec]["result"], res["pipeline fp32"]["result"]
        if prec == "fp32":
            print("  " + compare_arrays(ours, ref, atol=1e-4))
        else:
            cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
            assert cos.min() >= 0.99, f"bf16 sentence means differ: min cosine {cos.min():.4f} < 0.99"
            print(f"  bf16 sentence means: min cosine {cos.min():.5f} to the pipeline's fp32 (tolerance 0.99)")
        for name, r in res.items():
            medians.setdefault(name, []).append(r["median"])
            p = "bf16" if "bf16" in name else "fp32"
            print(f"{name:16s} median {r['median']:7.2f} s ({min(r['times']):.2f}-{max(r['times']):.2f})  "
                  f"{tokens / r['median']:8.0f} tokens/s  {100 * flops / r['median'] / peaks[p]:5.1f}% of {p} peak")
    base = float(np.median(medians["pipeline fp32"]))
    print(f"speed-up vs pipeline: fp32 {base / medians['bertology fp32'][0]:.2f}x (goal 1.3x), "
          f"bf16 {base / medians['bertology bf16'][0]:.2f}x (goal 3x)")
    print(machine_load())


if __name__ == "__main__":
    main()
