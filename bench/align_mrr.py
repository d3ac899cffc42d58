"""Benchmark: alignment MRR over ~30,000 candidate words and all dictionary pairs, every layer.

Follows bench/README.md (equal warm-up, ABBA with repeats and the median, outputs compared, load printed).
Compares, on the same vectors:
- ours: `bertology.metrics.retrieval_ranks_all`. CSLS's candidate radii (mean of each candidate's 10 best
  cosines to the queries) come from a bf16 screen made exact (`knn_mean_similarity`: bf16 product, best
  groups, the kept neighbours re-scored in fp32, a proven error bound, fp32 fall-back where it does not hold);
  then one fp32 matrix product per chunk of queries and one fused pass counting the candidates above the best
  gold (no sort), for cosine and CSLS;
- numpy: a chunked numpy baseline a careful user would write (fp32 matrix product per chunk of queries,
  `np.partition` for the candidates' radii, max over the gold scores, ranks by counting), timed on the full
  set. Equal algorithm: like ours it skips the query radii r_T(x), which shift every score of query x alike and
  cannot change its ranks (an earlier version computed them, one more full product: ~1.5x of its time);
- loop: a fair per-word loop (similarities to all candidates, max over the gold scores, rank by counting;
  the candidates' CSLS radii by `np.partition`), run on --loop-queries words and extrapolated linearly (every
  word costs the same in it), in its own ABBA rounds against ours: each ratio pairs one round's extrapolated
  loop with the same round's run of ours.
Ranks are compared: identical for cosine; for CSLS at most a 1-rank flip in a float near-tie in at most 2% of
the words.

--vectors random: Gaussian vectors (isotropic: the best case of the bf16 screen). --vectors model: real layer
vectors of --model (each dictionary word fed alone, every layer; anisotropic, so the screen's fp32 fall-back
runs as it does on real data), for as many words as --model-words.

    OMP_NUM_THREADS=1 .venv/bin/python bench/align_mrr.py --layers 5 --hidden 256
    OMP_NUM_THREADS=1 .venv/bin/python bench/align_mrr.py --vectors model --model minilm --model-words 4000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bertology.io.dictionaries import load_dictionary
from bertology.metrics import ranking_scores, retrieval_ranks_all

sys.path.insert(0, str(Path(__file__).parent))
from common import abba, check_odd, machine_load, paired_ratio, peak_fraction, set_threads  # noqa: E402


TIE = 1e-4   # scores this close to the best gold's may be ordered either way by fp32 rounding


def loop_radius(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Per row of a: mean of its k largest cosines to b (np.partition: no full sort)."""
    return np.array([np.partition(b @ x, -k)[-k:].mean() for x in a])


def loop_ranks(q: np.ndarray, c: np.ndarray, gold: list[list[int]], scoring: str, r_c=None) -> np.ndarray:
    """CSLS as 2 cos - r_S(y): the query's own radius would shift all of its scores alike (no rank changes)."""
    ranks = []
    for i, x in enumerate(q):
        s = c @ x
        if scoring == "csls":
            s = 2 * s - r_c
        best = s[gold[i]].max()
        ranks.append(int((s > best).sum()) + 1)   # ties in the query's favour, as retrieval_ranks
    return np.array(ranks)


def numpy_radius(a: np.ndarray, b: np.ndarray, k: int, rows: int) -> np.ndarray:
    """Chunked: for `rows` rows of a at a time, one product with b and np.partition along the rows."""
    out = np.empty(len(a), dtype=np.float32)
    for i in range(0, len(a), rows):
        s = a[i:i + rows] @ b.T
        out[i:i + rows] = np.partition(s, -k, axis=1)[:, -k:].mean(1)
    return out


def numpy_ranks(q: np.ndarray, c: np.ndarray, gold: list[list[int]], k: int, rows: int) -> dict[str, np.ndarray]:
    """The chunked numpy baseline, cosine and CSLS: one fp32 product per chunk of queries, max over golds.
    CSLS ranks by 2 cos - r_S(y): the query radius r_T(x) is the same for all of x's candidates."""
    r_c = numpy_radius(c, q, k, rows)
    g_rows = np.repeat(np.arange(len(gold)), [len(g) for g in gold])
    g_cols = np.concatenate([np.asarray(g) for g in gold])
    out = {"cosine": np.empty(len(q), np.int64), "csls": np.empty(len(q), np.int64)}
    for i in range(0, len(q), rows):
        s = q[i:i + rows] @ c.T
        sel = (g_rows >= i) & (g_rows < i + rows)
        for name in ("cosine", "csls"):
            if name == "csls":
                s = 2 * s - r_c[None, :]
            best = np.full(len(s), -np.inf, dtype=np.float32)
            np.maximum.at(best, g_rows[sel] - i, s[g_rows[sel] - i, g_cols[sel]])
            out[name][i:i + rows] = (s > best[:, None]).sum(1) + 1
    return out


def layer_vectors(args, sources: list[str], targets: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(queries, candidates) per layer: random Gaussians, or a model's context-free layer vectors."""
    rng = np.random.default_rng(args.seed)
    if args.vectors == "random":
        return [(rng.standard_normal((len(sources), args.hidden)).astype(np.float32),
                 rng.standard_normal((len(targets), args.hidden)).astype(np.float32)) for _ in range(args.layers)]
    from bertology.core.embed import Embedder
    from bertology.experiments.align import context_free_vectors

    emb = Embedder(args.model, progress=False)
    layers = list(range(min(args.layers, emb.num_layers + 1)))
    q, c = context_free_vectors(emb, sources, layers), context_free_vectors(emb, targets, layers)
    return [(q[i].astype(np.float32), c[i].astype(np.float32)) for i in range(len(layers))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dict", default="muse-en-zh")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--candidates", type=int, default=30000)
    ap.add_argument("--vectors", choices=("random", "model"), default="random")
    ap.add_argument("--model", default="minilm", help="--vectors model: whose layer vectors")
    ap.add_argument("--model-words", type=int, default=4000, help="--vectors model: candidates (and at most as "
                    "many source words) embedded")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=5, help="layers timed (embeddings + 4 for the mini preset)")
    ap.add_argument("--loop-queries", type=int, default=300)
    ap.add_argument("--csls-k", type=int, default=10)
    ap.add_argument("--chunk-mb", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="ABBA rounds, odd (median reported)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    check_odd(args.repeats)
    set_threads(args.threads)     # torch and numpy's BLAS alike
    print(machine_load())

    d = load_dictionary(args.dict, data_dir=args.data_dir)
    n_cand = args.candidates if args.vectors == "random" else min(args.candidates, args.model_words)
    targets = list(dict.fromkeys(t for _, t in d.pairs))[:n_cand]
    index = {t: i for i, t in enumerate(targets)}
    trans = d.translations()
    sources = [s for s, ts in trans.items() if any(t in index for t in ts)]
    if args.vectors == "model":
        sources = sources[:args.model_words]
    gold = [[index[t] for t in trans[s] if t in index] for s in sources]
    n, m, pairs = len(sources), len(targets), sum(map(len, gold))
    vectors = layer_vectors(args, sources, targets)
    print(f"{n} source words x {m} candidates ({pairs} dictionary pairs), {args.vectors} vectors of dim "
          f"{vectors[0][0].shape[1]}, {len(vectors)} layers, {args.threads} thread(s), ABBA x {args.repeats}")
    rng = np.random.default_rng(args.seed)
    nq = min(args.loop_queries, n)
    sub = rng.choice(n, nq, replace=False)
    chunk = args.chunk_mb << 20
    rows = max(1, chunk // (4 * m))
    tot: dict[str, list[float]] = {}
    for layer, (q, c) in enumerate(vectors):
        def ours():
            return retrieval_ranks_all(q, c, gold, ("cosine", "csls"), args.csls_k, chunk)

        def numpy_baseline():
            qn = q / np.linalg.norm(q, axis=1, keepdims=True)
            cn = c / np.linalg.norm(c, axis=1, keepdims=True)
            return numpy_ranks(qn, cn, gold, args.csls_k, rows)

        timed = abba({"ours": ours, "numpy": numpy_baseline}, repeats=args.repeats, warmup=1)
        fast, ref = timed["ours"]["result"], timed["numpy"]["result"]

        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        cn = c / np.linalg.norm(c, axis=1, keepdims=True)
        csub = rng.choice(m, min(nq, m), replace=False)
        r_c = numpy_radius(cn, qn, args.csls_k, rows)                 # full radii, for the CSLS loop's ranking

        loop_times: list[float] = []

        def loop():
            t0 = time.perf_counter()
            cos = loop_ranks(qn[sub], cn, [gold[i] for i in sub], "cosine")
            t_cos = time.perf_counter() - t0
            t0 = time.perf_counter()
            r_c_sub = loop_radius(cn[csub], qn, args.csls_k)          # one per candidate: timed on a sample
            t_rad = time.perf_counter() - t0
            t0 = time.perf_counter()
            csls = loop_ranks(qn[sub], cn, [gold[i] for i in sub], "csls", r_c)
            t_csls = time.perf_counter() - t0
            # extrapolated: each query costs its cosine + CSLS ranking, each candidate its radius
            loop_times.append((t_cos + t_csls) / nq * n + t_rad / len(csub) * m)
            return cos, csls, r_c_sub

        vs_loop = abba({"ours": ours, "loop": loop}, repeats=args.repeats, warmup=1)
        loop_times[:] = loop_times[1:]                                  # the warm-up call is not timed
        loop_cos, loop_csls, r_c_sub = vs_loop["loop"]["result"]
        t_loop = float(np.median(loop_times))
        loop_ratios = [tl / to for tl, to in zip(loop_times, vs_loop["ours"]["times"])]
        assert np.allclose(r_c_sub, r_c[csub], atol=1e-5), "CSLS radii differ"
        # Tolerance: the same fp32 scores computed in another order can reorder candidates whose scores tie
        # with the best gold's to within TIE (real vectors have exact duplicates: words that embed alike).
        # A rank difference is accepted only if that many candidates lie within TIE of the best gold's score.
        same = {}
        for scoring, a, b, idx in (("cosine", fast["cosine"][sub], loop_cos, sub),
                                   ("cosine", ref["cosine"][sub], loop_cos, sub),
                                   ("cosine", fast["cosine"], ref["cosine"], np.arange(n)),
                                   ("csls", fast["csls"], ref["csls"], np.arange(n)),
                                   ("csls", fast["csls"][sub], loop_csls, sub)):
            diff = np.abs(a - b)
            for j in np.flatnonzero(diff):
                i = idx[j]
                sc = cn @ qn[i] if scoring == "cosine" else 2 * (cn @ qn[i]) - r_c
                ties = int((np.abs(sc - sc[gold[i]].max()) <= TIE).sum()) - 1
                assert diff[j] <= ties, f"{scoring}: word {sources[i]!r} ranks {a[j]} vs {b[j]}, {ties} near-ties"
            same.setdefault(scoring, f"{len(a) - np.count_nonzero(diff)}/{len(a)}")
        t_ours, t_np = timed["ours"]["median"], timed["numpy"]["median"]
        for k, v in (("ours", timed["ours"]["times"]), ("numpy", timed["numpy"]["times"]), ("loop", loop_times),
                     ("ours_vs_loop", vs_loop["ours"]["times"])):
            tot[k] = [a + b for a, b in zip(tot.get(k) or [0.0] * len(v), v)]
        np_ratio, np_lo, np_hi = paired_ratio(timed)
        print(f"layer {layer}: ours {t_ours:7.2f} s (median; {min(timed['ours']['times']):.2f}-"
              f"{max(timed['ours']['times']):.2f}) | numpy {t_np:7.2f} s | loop {t_loop:8.1f} s (extrapolated "
              f"from {nq} words) | vs numpy {np_ratio:5.2f}x (paired rounds {np_lo:.2f}-{np_hi:.2f}), vs loop "
              f"{float(np.median(loop_ratios)):5.1f}x | "
              f"MRR cos {ranking_scores(fast['cosine'])['mrr']:.5f} csls {ranking_scores(fast['csls'])['mrr']:.5f}"
              f" | ranks identical: cosine (ours vs loop) {same['cosine']}, CSLS (ours vs numpy) {same['csls']}; the rest differ only "
              f"within near-ties (|score - best gold| <= {TIE:g})")
        # the FLOPs of the two products ours does (radii: m x n x d, ranks: n x m x d) against the fp32 peak
        flops = 2 * 2 * n * m * q.shape[1]
        print(f"  ours: {flops / t_ours / 1e9:.1f} GFLOP/s in its two products, "
              f"{peak_fraction(flops / t_ours, 'fp32', args.threads)}")
    ratio = float(np.median([b / a for a, b in zip(tot["ours"], tot["numpy"])]))
    loop_ratio = float(np.median([b / a for a, b in zip(tot["ours_vs_loop"], tot["loop"])]))
    print(f"all {len(vectors)} layers (equal settings: same vectors, threads, fp32, CSLS without query radii on "
          f"every side): ours {float(np.median(tot['ours'])):.1f} s, chunked numpy "
          f"{float(np.median(tot['numpy'])):.1f} s, loop {float(np.median(tot['loop'])):.1f} s: {ratio:.2f}x vs numpy, "
          f"{loop_ratio:.1f}x vs the loop (per-round sums over layers, paired; goal >= 20x vs the loop)")
    print(machine_load())


if __name__ == "__main__":
    main()
