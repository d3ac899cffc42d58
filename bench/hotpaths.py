"""Before / after, in one run, for the hot paths of issue 29 (each pair timed by common.abba: equal untimed
warm-up, ABBA rounds, the ratio from paired rounds; outputs compared):

1. fine-tuning's clip + AdamW step: the plain per-tensor loop (before) vs fused AdamW with foreach clipping
   (after; engine.make_optimizer's default where torch supports it), on minilm's sequence classifier with
   fixed gradients; the weights after the steps compared (fused: the same update up to float rounding).
2. the embedder's batches: 32 inputs a batch (before) vs a budget of 32 x 16 padded tokens (after;
   Embedder(token_budget=True), the default), on MUSE words and on IMDB reviews cut at 256 tokens; sentence
   means compared within 1e-5.
3. CSLS radii (metrics.knn_mean_similarity) where bf16 is not native: a full topk of each fp32 score chunk
   (before) vs the exact bucket screen (after; metrics.top_k_by_buckets); radii compared for bitwise equality.

    .venv/bin/python bench/hotpaths.py [--threads 1] [--repeats 3] [--only optimizer,embed,knn]
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import abba, check_odd, compare_arrays, machine_load, report_abba, set_threads  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def optimizer_step(args) -> None:
    from transformers import AutoModelForSequenceClassification

    from bertology.core.engine import make_optimizer
    from bertology.core.models import resolve_model

    def fresh(fused: bool):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(str(resolve_model(args.model)), num_labels=2)
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=g) * 1e-3
        return model, make_optimizer(model, 5e-5, 0.01, fused=fused)

    sides = {"fused": fresh(True), "plain": fresh(False)}

    def steps(name):
        model, opt = sides[name]
        for _ in range(args.optimizer_steps):
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True if name == "fused" else None)
            opt.step()                     # gradients kept (no zero_grad): every step does the same work
        return model

    res = abba({"fused AdamW + foreach clip": lambda: steps("fused"), "plain AdamW + clip": lambda: steps("plain")},
               repeats=args.repeats, warmup=1)
    n = sum(p.numel() for p in sides["fused"][0].parameters())
    print(f"1. clip + AdamW step, {args.model} classifier ({n / 1e6:.1f} M parameters), {args.optimizer_steps} steps "
          f"a call:\n   " + report_abba(res, args.optimizer_steps, "steps"))
    # both sides ran the same number of steps on the same gradients: the weights agree to float rounding
    for a, b in zip(sides["fused"][0].parameters(), sides["plain"][0].parameters()):
        compare_arrays(a.detach().numpy(), b.detach().numpy(), atol=1e-5)
    print("   weights after the same steps: equal within atol 1e-5")


def embed_batches(args) -> None:
    from bertology.core.embed import Embedder

    words = list(dict.fromkeys(l.split()[0] for l in (DATA / "muse/en-zh.txt").open(encoding="utf-8")))[:args.words]
    with gzip.open(DATA / "corpora/en/imdb_reviews.txt.gz", "rt", encoding="utf-8") as fh:
        reviews = [next(fh).strip() for _ in range(args.reviews)]
    budget = Embedder(args.model, batch_size=32, max_length=256, progress=False)
    rows = Embedder(budget.model, budget.tokenizer, batch_size=32, max_length=256, progress=False, token_budget=False)
    for name, texts in (("MUSE words", words), ("IMDB reviews (<= 256 tokens)", reviews)):
        res = abba({"token budget 512": lambda t=texts: budget.sentence_means(t, layers=[budget.num_layers]),
                    "32 inputs a batch": lambda t=texts: rows.sentence_means(t, layers=[rows.num_layers])},
                   repeats=args.repeats, warmup=1)
        print(f"2. embedder, {args.model}, {len(texts)} {name}:\n   " + report_abba(res, len(texts), "inputs"))
        print("   " + compare_arrays(res["token budget 512"]["result"], res["32 inputs a batch"]["result"], atol=1e-5))


def knn_radii(args) -> None:
    from bertology import metrics

    rng = np.random.default_rng(0)
    a = rng.normal(size=(args.knn_rows, 384)).astype(np.float32)
    b = rng.normal(size=(args.knn_candidates, 384)).astype(np.float32)
    screened = metrics.top_k_by_buckets

    def run(top_k):
        metrics.top_k_by_buckets = top_k
        try:
            return metrics.knn_mean_similarity(a, b, k=10, screen=False)
        finally:
            metrics.top_k_by_buckets = screened

    res = abba({"bucket screen": lambda: run(screened),
                "full topk": lambda: run(lambda s, k: s.topk(k, dim=1).values)}, repeats=args.repeats, warmup=1)
    print(f"3. CSLS radii, {args.knn_rows} x {args.knn_candidates} x 384, k=10, fp32 (bf16 screen off):\n   "
          + report_abba(res, args.knn_rows, "rows"))
    assert np.array_equal(res["bucket screen"]["result"], res["full topk"]["result"]), "radii differ"
    print("   radii bitwise equal")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="ABBA rounds, odd (the median is one round's)")
    ap.add_argument("--only", default="optimizer,embed,knn")
    ap.add_argument("--optimizer-steps", type=int, default=5)
    ap.add_argument("--words", type=int, default=1000)
    ap.add_argument("--reviews", type=int, default=60)
    ap.add_argument("--knn-rows", type=int, default=2000)
    ap.add_argument("--knn-candidates", type=int, default=20000)
    args = ap.parse_args()
    check_odd(args.repeats)
    set_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()          # the classifier head's "newly initialized" report
    print(machine_load(), flush=True)
    parts = {"optimizer": optimizer_step, "embed": embed_batches, "knn": knn_radii}
    for name in args.only.split(","):
        parts[name](args)
        sys.stdout.flush()
    print(machine_load())


if __name__ == "__main__":
    main()
