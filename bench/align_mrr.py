"""Benchmark: alignment MRR over ~30,000 candidate words and all dictionary pairs, every layer.

Compares, in one run and on the same vectors:
- vectorised: `bertology.metrics.retrieval_ranks_all`. CSLS's candidate radii (mean of each candidate's 10
  best cosines to the queries) come from a bf16 screen made exact (`knn_mean_similarity`: bf16 product,
  best groups, the kept neighbours re-scored in fp32, a proven error bound, fp32 fall-back where it does not
  hold); then one fp32 matrix product per chunk of queries (memory bounded by --chunk-mb, buffers reused)
  and one fused pass (numba; numpy without it) counting the candidates above the best gold (no sort), for
  cosine and CSLS;
- loop: the straightforward per-word implementation (for each source word: similarities to all candidates,
  argsort, position of the best gold; CSLS radii by sorting each word's similarities).
The loop is timed on --loop-queries source words (and as many candidates for CSLS's candidate radii) and
extrapolated linearly to the full set, which is exact for its cost model (every word costs the same). The
ranks of those words are checked: identical for cosine; for CSLS at most a 1-rank flip in a near-tie
(float rounding of the radii) in at most 2% of them.

Vectors are random (the cost does not depend on their values); the pair structure is the real MUSE en-zh
dictionary (sources x their translations among the first --candidates distinct targets).

    OMP_NUM_THREADS=1 .venv/bin/python bench/align_mrr.py --layers 5 --hidden 256
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bertology.io.dictionaries import load_dictionary
from bertology.metrics import knn_mean_similarity, ranking_scores, retrieval_ranks_all


def loop_radius(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Per row of a: mean of its k largest cosines to b, by a full sort (the straightforward way)."""
    return np.array([np.sort(b @ x)[::-1][:k].mean() for x in a])


def loop_ranks(q: np.ndarray, c: np.ndarray, gold: list[list[int]], scoring: str, r_q=None, r_c=None) -> np.ndarray:
    ranks = []
    for i, x in enumerate(q):
        s = c @ x
        if scoring == "csls":
            s = 2 * s - r_q[i] - r_c
        order = np.argsort(-s)
        pos = np.empty(len(order), dtype=np.int64)
        pos[order] = np.arange(len(order))
        best = min(gold[i], key=lambda j: pos[j])
        ranks.append(int((s > s[best]).sum()) + 1)   # ties in the query's favour, as retrieval_ranks
    return np.array(ranks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dict", default="muse-en-zh")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--candidates", type=int, default=30000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=5, help="layers timed (embeddings + 4 for the mini preset)")
    ap.add_argument("--loop-queries", type=int, default=300)
    ap.add_argument("--csls-k", type=int, default=10)
    ap.add_argument("--chunk-mb", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    d = load_dictionary(args.dict, data_dir=args.data_dir)
    targets = list(dict.fromkeys(t for _, t in d.pairs))[:args.candidates]
    index = {t: i for i, t in enumerate(targets)}
    trans = d.translations()
    sources = [s for s, ts in trans.items() if any(t in index for t in ts)]
    gold = [[index[t] for t in trans[s] if t in index] for s in sources]
    n, m, pairs = len(sources), len(targets), sum(map(len, gold))
    print(f"{n} source words x {m} candidates ({pairs} dictionary pairs), hidden {args.hidden}, "
          f"{args.layers} layers, {args.threads} thread(s)")
    rng = np.random.default_rng(args.seed)
    nq = min(args.loop_queries, n)
    sub = rng.choice(n, nq, replace=False)
    chunk = args.chunk_mb << 20
    tot_fast = tot_loop = 0.0
    for layer in range(args.layers):
        q = rng.standard_normal((n, args.hidden)).astype(np.float32)
        c = rng.standard_normal((m, args.hidden)).astype(np.float32)
        t0 = time.perf_counter()
        fast = retrieval_ranks_all(q, c, gold, ("cosine", "csls"), args.csls_k, chunk)
        t_fast = time.perf_counter() - t0

        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        cn = c / np.linalg.norm(c, axis=1, keepdims=True)
        t0 = time.perf_counter()
        loop_cos = loop_ranks(qn[sub], cn, [gold[i] for i in sub], "cosine")
        t_cos = time.perf_counter() - t0
        t0 = time.perf_counter()
        r_q = loop_radius(qn[sub], cn, args.csls_k)                  # one per query
        csub = rng.choice(m, nq, replace=False)
        r_c_sub = loop_radius(cn[csub], qn, args.csls_k)             # one per candidate: timed on nq of them
        t_rad = time.perf_counter() - t0
        r_c = knn_mean_similarity(cn, qn, args.csls_k, chunk)        # full radii for the rank check only
        t0 = time.perf_counter()
        loop_csls = loop_ranks(qn[sub], cn, [gold[i] for i in sub], "csls", r_q, r_c)
        t_csls = time.perf_counter() - t0
        assert np.array_equal(loop_cos, fast["cosine"][sub]), "cosine ranks differ"
        assert np.allclose(r_c_sub, r_c[csub], atol=1e-5), "CSLS radii differ"
        # CSLS: the radii are means of the same k cosines summed in a different order, so a near-tie between
        # candidates can flip by one rank; anything more is a bug.
        diff = np.abs(loop_csls - fast["csls"][sub])
        assert diff.max() <= 1 and np.count_nonzero(diff) <= max(1, nq // 50), f"CSLS ranks differ: {diff.max()}"
        # extrapolate: queries cost t/nq each (cosine, CSLS ranking, query radius), candidate radii t/nq each
        t_loop = (t_cos + t_csls) / nq * n + t_rad / 2 / nq * n + t_rad / 2 / nq * m
        tot_fast += t_fast
        tot_loop += t_loop
        print(f"layer {layer}: vectorised {t_fast:7.2f} s | loop {t_loop:8.1f} s (extrapolated from {nq} words) | "
              f"{t_loop / t_fast:5.1f}x | MRR cos {ranking_scores(fast['cosine'])['mrr']:.5f} "
              f"csls {ranking_scores(fast['csls'])['mrr']:.5f} | ranks equal: cosine {nq}/{nq}, "
              f"CSLS {nq - np.count_nonzero(diff)}/{nq}")
    print(f"all {args.layers} layers: vectorised {tot_fast:.1f} s, loop {tot_loop:.1f} s: "
          f"speed-up {tot_loop / tot_fast:.1f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
