"""Metrics, implemented to their official definitions where one exists (no downloads at run time)."""

from __future__ import annotations

import numpy as np

from .io.cjk import CJK_CHAR


# ==== word senses: how well do the senses separate ============================================================
def cosine_matrix(x: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity of the rows of x."""
    n = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.clip(n @ n.T, -1.0, 1.0)


_THREADPOOLS = None


def _single_threaded():
    """A context in which native thread pools (OpenMP, BLAS) run one thread. The controller, which scans the
    loaded libraries (~30 ms), is built once."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1)


# Above this many occurrences the within / between means come from per-label sums of unit vectors (memory
# O(n·H)) instead of the n x n cosine matrix and its masks (~1 GB at 10,000); the same means, up to rounding.
PAIRWISE_MAX = 2000


def _within_between_from_sums(unit: np.ndarray, labels: np.ndarray, kinds) -> tuple[float | None, float]:
    """Mean cosine over pairs of distinct same-label occurrences, and over different-label pairs: the sum of a
    block of the cosine matrix is the dot product of its two sums of unit rows (less n on the diagonal)."""
    sums = np.stack([unit[labels == k].sum(0) for k in kinds]).astype(np.float64)
    counts = np.array([(labels == k).sum() for k in kinds], dtype=np.float64)
    norms = np.einsum("ij,ij->i", unit, unit).astype(np.float64)
    self_dots = np.array([norms[labels == k].sum() for k in kinds])
    block = sums @ sums.T
    same_pairs = float((counts * (counts - 1)).sum())
    within = float((np.trace(block) - self_dots.sum()) / same_pairs) if same_pairs else None
    between = float((block.sum() - np.trace(block)) / (counts.sum() ** 2 - (counts ** 2).sum()))
    return within, between


def sense_separation(vectors: np.ndarray, labels: list[str], seed: int = 0) -> dict:
    """How well the occurrence vectors of one layer separate by sense label.

    within: mean cosine over pairs of different occurrences with the same label; between: mean cosine over
    pairs with different labels; separation = within - between (0 for a static embedding, where every
    occurrence has the same vector); silhouette with cosine distance (sklearn); purity of a k-means
    clustering (k = number of labels, on unit-normalised vectors, i.e. spherical k-means) against the labels.
    Values that need labels are None when fewer than two labels are present.
    """
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    kinds = sorted(set(labels.tolist()))
    out = {"within": None, "between": None, "separation": None, "silhouette": None, "purity": None}
    if len(kinds) < 2 or len(labels) < 3:
        return out
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    if len(labels) <= PAIRWISE_MAX:
        sim = cosine_matrix(vectors)
        same = labels[:, None] == labels[None, :]
        off_diag = ~np.eye(len(labels), dtype=bool)
        if (same & off_diag).any():
            out["within"] = float(sim[same & off_diag].mean())
        out["between"] = float(sim[~same].mean())
    else:
        out["within"], out["between"] = _within_between_from_sums(unit, labels, kinds)
    if out["within"] is not None:
        out["separation"] = out["within"] - out["between"]
    distinct = len(np.unique(unit.round(6), axis=0))
    if distinct > 1 and len(labels) > len(kinds):
        # sklearn computes the distances in chunks of `working_memory` MB (default 1,024: +1 GB of RSS at
        # 10,000 occurrences); 128 MB chunks give the same score
        from sklearn import config_context

        with config_context(working_memory=128):
            out["silhouette"] = float(silhouette_score(vectors, labels, metric="cosine"))
    out["purity"] = cluster_purity(unit, labels, seed)    # spherical 2-means: k-means on the unit vectors
    return out

def separation_from_similarity(sim: np.ndarray, labels) -> float:
    """within − between mean cosine from a precomputed cosine matrix (the bootstrap's inner loop)."""
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    return float(sim[same & off].mean() - sim[~same].mean())


def cluster_purity(features: np.ndarray, labels, seed: int = 0) -> float:
    """Purity of a k-means clustering (k = number of labels) of `features` against the labels: what any
    feature (contextual vectors, or a position-only baseline) says about the labels without being told them."""
    from sklearn.cluster import KMeans

    labels = np.asarray(labels)
    kinds = np.unique(labels)
    if len(np.unique(np.asarray(features).round(6), axis=0)) < len(kinds):
        # identical points cannot be split: one cluster, purity of the majority label
        return float(max((labels == k).sum() for k in kinds) / len(labels))
    # A few dozen points: OpenMP threads are pure overhead here, and on a busy machine their spin-waits made
    # this 2-means 10-20x slower (0.6 s instead of 0.03 s at load 6 on 2 cores).
    with _single_threaded():
        assign = KMeans(n_clusters=len(kinds), n_init=10, random_state=seed).fit_predict(features)
    idx = np.unique(labels, return_inverse=True)[1]
    return float(sum(np.bincount(idx[assign == c]).max() for c in np.unique(assign)) / len(labels))


# ==== effect sizes and confidence intervals ===================================================================
def bootstrap_ci(statistic, n: int, reps: int = 2000, seed: int = 0, strata=None, alpha: float = 0.05) -> list[float]:
    """Percentile bootstrap confidence interval of `statistic(indices)` over `n` items resampled with
    replacement (within each stratum when `strata` gives one label per item, so every sense or class stays
    represented). Returns [low, high]; [nan, nan] with fewer than 2 items."""
    if n < 2:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(np.asarray(strata) == s) for s in
                                                      dict.fromkeys(np.asarray(strata).tolist())]
    stats = np.empty(reps)
    for r in range(reps):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        stats[r] = statistic(idx)
    lo, hi = np.nanpercentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return [float(lo), float(hi)]


def paired_difference(a, b, reps: int = 2000, seed: int = 0) -> dict:
    """Mean of per-item scores a − b (paired: the same items), with its bootstrap 95% CI over items."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired scores need the same items on both sides")
    d = a - b
    return {"mean": float(d.mean()) if d.size else float("nan"), "n": int(d.size),
            "ci": bootstrap_ci(lambda idx: d[idx].mean(), d.size, reps, seed)}


def seed_item_difference(a, b, reps: int = 2000, seed: int = 0) -> dict:
    """Paired difference of per-item scores a − b given as [seeds, items] (seed k of a against seed k of b, on
    the same test items): the mean, and a two-level bootstrap 95% CI that resamples seeds, then items, so that
    both the seed-to-seed and the item-to-item variation widen it."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 2 or d.size == 0:
        raise ValueError("scores must be [seeds, items] on both sides")
    rng = np.random.default_rng(seed)
    k, n = d.shape
    stats = np.array([d[rng.integers(0, k, k)][:, rng.integers(0, n, n)].mean() for _ in range(reps)])
    return {"mean": float(d.mean()), "seeds": k, "items": n,
            "ci": [float(v) for v in np.percentile(stats, [2.5, 97.5])] if n > 1 else [float("nan")] * 2}


# ==== classification ==========================================================================================
def classification_scores(y_true, y_pred, labels=None) -> dict:
    """Accuracy and macro-F1 (the unweighted mean of per-class F1, so rare classes count as much as common
    ones: what matters for the imbalanced composer and MultiLoc tasks). `labels`: every class index, so a class
    missing from a small split still counts (with F1 0) instead of silently dropping out of the average."""
    from sklearn.metrics import accuracy_score, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan")}
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))}


def group_vote_accuracy(y_true, scores, groups) -> float:
    """Accuracy per group (a music piece) by majority vote over its members' predictions (its voices), as Kao &
    Lee score music pieces. A tie goes to the class with the larger summed score. `scores`: (n, classes)."""
    scores = np.asarray(scores, dtype=float)
    votes: dict = {}
    truth: dict = {}
    for y, row, g in zip(y_true, scores, groups):
        v = votes.setdefault(g, np.zeros(scores.shape[1]))
        v[int(row.argmax())] += 1.0
        v += 1e-6 * row / max(1.0, float(np.abs(row).sum()))        # tie-break only: far below one vote
        truth[g] = y
    if not votes:
        return float("nan")
    return float(np.mean([int(votes[g].argmax()) == truth[g] for g in votes]))


def mcnemar_p(correct_a, correct_b) -> float:
    """Two-sided exact McNemar test: do two classifiers scored on the same examples differ in accuracy? Only the
    examples exactly one of them gets right count; under the null each such example favours either with p=1/2."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


# ==== extractive QA: SQuAD v1.1 (English) and CMRC 2018 / DRCD (Chinese) ======================================
# English: the official SQuAD v1.1 evaluate-v1.1.py, re-implemented line by line.
# Chinese: the official CMRC 2018 cmrc2018_evaluate.py (DRCD is scored with it too). Its one dependency,
# nltk.word_tokenize for the non-CJK runs, needs a data download; `_en_words` stands in for it (words, numbers
# with their decimal points, and every other non-space character as its own token), which only differs from
# nltk on English punctuation the CMRC list does not already remove (e.g. "n't" is one token there, two here).
import functools as _functools
import re as _re
import string as _string
from collections import Counter as _Counter

_SQUAD_ARTICLES = _re.compile(r"\b(a|an|the)\b")
_SQUAD_PUNCT = set(_string.punctuation)


def squad_normalize(s: str) -> str:
    """Lower-case, remove punctuation, the articles a/an/the, and extra white space (official v1.1)."""
    s = "".join(ch for ch in s.lower() if ch not in _SQUAD_PUNCT)
    return " ".join(_SQUAD_ARTICLES.sub(" ", s).split())


def _overlap_f1(same: int, n_pred: int, n_ref: int) -> float:
    """Harmonic mean of precision same/n_pred and recall same/n_ref (0 when nothing overlaps), as both
    official scripts compute it; they differ only in how `same` is counted."""
    if same == 0:
        return 0.0
    precision, recall = same / n_pred, same / n_ref
    return 2 * precision * recall / (precision + recall)


def squad_f1(prediction: str, reference: str) -> float:
    pred, ref = squad_normalize(prediction).split(), squad_normalize(reference).split()
    common = _Counter(pred) & _Counter(ref)
    return _overlap_f1(sum(common.values()), len(pred), len(ref))


def squad_em(prediction: str, reference: str) -> float:
    return float(squad_normalize(prediction) == squad_normalize(reference))


# The official list, verbatim: '……' is two characters long, so (as in the official script) it never matches
# a single character; the half-width '.', ',', '?' and '!' are not in it either.
CMRC_PUNCT = ['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=',
              '，', '。', '：', '？', '！', '“', '”', '；', '’', '《', '》', '……', '·', '、',
              '「', '」', '（', '）', '－', '～', '『', '』']
_CMRC_PUNCT_SET = set(CMRC_PUNCT)
# The official CMRC 2018 script segments this range only (not io.cjk's wider one): kept, so scores match it.
_CMRC_CJK = _re.compile(r"[\u4e00-\u9fa5]")
_EN_WORD = _re.compile(r"\d+(?:[.,]\d+)+|\w+(?:'\w+)?|[^\w\s]")


def _en_words(s: str) -> list[str]:
    """nltk.word_tokenize, as the official script calls it, without its sentence splitter (punkt is a data
    download; the runs tokenised here are pieces of one answer). Without nltk: a regex that agrees with it on
    most runs (not on e.g. "NaBO.10H", one token for nltk)."""
    tokenizer = _nltk_tokenizer()
    return tokenizer.tokenize(s) if tokenizer else _EN_WORD.findall(s)


@_functools.lru_cache(maxsize=1)
def _nltk_tokenizer():
    try:
        from nltk.tokenize import NLTKWordTokenizer     # what nltk.word_tokenize applies to each sentence
    except ImportError:
        return None
    return NLTKWordTokenizer()


def cmrc_segment(s: str, remove_punct: bool = False) -> list[str]:
    """CMRC 2018 "mixed segmentation": each CJK character (U+4E00–U+9FA5) and each listed punctuation mark is
    a token; the runs in between are tokenised as English words."""
    s = str(s).lower().strip()
    out: list[str] = []
    run = ""
    for ch in s:
        if remove_punct and ch in _CMRC_PUNCT_SET:
            continue
        if _CMRC_CJK.match(ch) or ch in _CMRC_PUNCT_SET:
            if run:
                out += _en_words(run)
                run = ""
            out.append(ch)
        else:
            run += ch
    if run:
        out += _en_words(run)
    return out


def cmrc_remove_punct(s: str) -> str:
    return "".join(ch for ch in str(s).lower().strip() if ch not in _CMRC_PUNCT_SET)


def longest_common_run(a: list, b: list) -> int:
    """Length of the longest common *contiguous* run of tokens (the official find_lcs)."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def cmrc_f1(prediction: str, reference: str) -> float:
    ref, pred = cmrc_segment(reference, True), cmrc_segment(prediction, True)
    return _overlap_f1(longest_common_run(ref, pred), len(pred), len(ref))


def cmrc_em(prediction: str, reference: str) -> float:
    return float(cmrc_remove_punct(prediction) == cmrc_remove_punct(reference))


def cjk_fraction(texts) -> float:
    """Share of characters that are CJK ideographs (io.cjk) among non-space characters."""
    cjk = total = 0
    for t in texts:
        cjk += len(CJK_CHAR.findall(t))
        total += sum(1 for ch in t if not ch.isspace())
    return cjk / total if total else 0.0


def qa_scores(references: dict[str, list[str]], predictions: dict[str, str], lang: str) -> dict:
    """Official EM / F1 (0-100) over every question in `references` (id -> reference answers), taking the best
    match over references; a question without a prediction scores 0 and is counted in `missing`."""
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
    em_fn, f1_fn = (squad_em, squad_f1) if lang == "en" else (cmrc_em, cmrc_f1)
    em = f1 = 0.0
    missing = 0
    per_question = {}
    for qid, refs in references.items():
        if qid not in predictions:
            missing += 1
            per_question[qid] = (0.0, 0.0)
            continue
        pred = predictions[qid]
        e = max(em_fn(pred, r) for r in refs)
        f = max(f1_fn(pred, r) for r in refs)
        per_question[qid] = (e, f)
        em, f1 = em + e, f1 + f
    total = len(references)
    return {"exact_match": 100.0 * em / total if total else float("nan"),
            "f1": 100.0 * f1 / total if total else float("nan"),
            "total": total, "missing": missing, "lang": lang, "per_question": per_question}


# ==== retrieval: MRR, P@k, CSLS ===============================================================================
# Word translation retrieval (Conneau et al. 2018, "Word translation without parallel data"): each query word is
# ranked against every candidate word; a query's rank is that of its best-ranked correct translation.
# Everything is one matrix product per chunk of queries (memory bounded by `chunk_bytes`), then a count of the
# candidates that score strictly higher than the best gold one: no sorting, O(m) per query.
RETRIEVAL_SCORINGS = ("cosine", "csls")


def unit_rows(x):
    import torch

    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _chunk_rows(n_other: int, chunk_bytes: int) -> int:
    return max(1, chunk_bytes // (4 * max(1, n_other)))


def top_k_by_buckets(scores, k: int, buckets: int = 16):
    """Each row's k largest values, sorted: exactly `scores.topk(k, dim=1).values` (the same values in the same
    order, so their mean is bitwise the same), found faster on long rows (30K candidates: 0.10 s instead of
    0.32 s for 2,000 rows, bench/hotpaths.py). The first buckets x per columns are seen as `per` interleaved
    buckets of `buckets` members; the k buckets with the largest maxima, plus the < `buckets` leftover columns,
    hold every top-k value: a top-k value x in a bucket B left out would make the k kept maxima (each >= max B
    >= x) and x itself k + 1 values >= x, so x is at most the k-th largest, and the kept buckets hold as many
    values equal to it as the top k has (each kept bucket whose maximum equals the k-th value holds one)."""
    import torch

    rows, m = scores.shape
    per = m // buckets
    scores = scores.contiguous()                     # the bucket view below needs unit column stride
    if per < 2 * k:
        return scores.topk(k, dim=1).values
    body = scores.as_strided((rows, buckets, per), (scores.stride(0), per, 1))     # no copy
    _, best = body.amax(1).topk(k, dim=1)
    idx = (best[:, :, None] + torch.arange(buckets)[None, None, :] * per).reshape(rows, -1)
    kept = torch.cat([scores.gather(1, idx), scores[:, buckets * per:]], dim=1)
    return kept.topk(k, dim=1).values


def bf16_dot_error_bound(dim: int) -> float:
    """Largest possible |bf16 product - exact| for the cosine of two unit vectors of length `dim` computed by a
    bf16 matrix product (inputs rounded to bf16, fp32 accumulation, result rounded to bf16). With u = 2^-8 the
    bf16 unit roundoff: rounding both inputs moves each term a_i b_i by at most (2u + u^2)|a_i b_i|, and
    sum |a_i b_i| <= |a| |b| = 1 (Cauchy-Schwarz); fp32 accumulation adds at most gamma_dim = dim 2^-24 / (1 -
    dim 2^-24) of the same sum; the final rounding to bf16 adds u |result| <= u. A 1% margin covers the norms
    of fp32-normalised rows being 1 only to ~1e-7."""
    u, g = 2.0 ** -8, dim * 2.0 ** -24 / (1 - dim * 2.0 ** -24)
    return 1.01 * ((2 * u + u * u) * (1 + g) + g + u * (1 + 2 * u + u * u + g))


def knn_mean_similarity(a, b, k: int = 10, chunk_bytes: int = 1 << 27, screen: bool | None = None):
    """For each row of `a`, the mean cosine to its k nearest rows of `b` (CSLS's hubness radius r), exact.

    Without `screen`, an fp32 product per chunk of rows and its exact top k (`top_k_by_buckets`: the same
    values as a full topk, faster). With `screen` (default: where bf16 is native, `fast_precision`, and the
    problem is large) the neighbours are found by a bf16 product, several times cheaper than fp32 there, then
    made exact:
    1. the rows of b are split into G interleaved groups; per row of a, each group's best bf16 score is kept
       (an element-wise max over G contiguous slices, fast) and the best `keep` groups are taken;
    2. among their G x keep members, the best `keep` bf16 scores are re-scored in fp32 and the exact top k
       taken.
    Every row of b left out scores, in bf16, at most `bound` = the larger of the keep-th group maximum and
    the keep-th member kept, so at most bound + eps exactly (eps: `bf16_dot_error_bound`). When that is
    below the k-th exact score, nothing left out can reach the top k and the result is exact; rows where it
    is not (dense near-ties) are recomputed in fp32."""
    import torch

    from .core.precision import fast_precision

    a, b = unit_rows(a), unit_rows(b)
    n, m = a.shape[0], b.shape[0]
    k = min(k, m)
    out = torch.empty(n)
    if n == 0 or k == 0:
        return out.numpy()
    keep, groups = 4 * k + 8, 8          # measured best of 8/16 groups x 2k+10..4k+8 kept (30K x 30K, k=10)
    if screen is None:
        screen = groups * keep < m and n * m >= 1 << 22 and fast_precision() == "bf16"
    step = min(n, _chunk_rows(m, chunk_bytes))
    screener = _Bf16Screen(a, b, k, keep, groups, step) if screen else None
    buf = None
    for s in range(0, n, step):
        e = min(n, s + step)
        if screener is None:
            buf = torch.empty(step, m) if buf is None else buf
            out[s:e] = top_k_by_buckets(torch.mm(a[s:e], b.T, out=buf[:e - s]), k).mean(1)
            continue
        out[s:e], unsure = screener.knn_means(s, e)
        # Vectors whose cosines are all squeezed together (strongly anisotropic layers) leave the bf16 gaps
        # too small to prove anything; when a quarter of a chunk falls back, plain fp32 is cheaper.
        if len(unsure) * 4 >= e - s:
            screener = None
    return out.numpy()


class _Bf16Screen:
    """knn_mean_similarity's screened path (steps 1 and 2 of its docstring) for one (a, b): the bf16 copies, the
    padded groups and the score buffer every chunk of rows of `a` reuses."""

    def __init__(self, a, b, k: int, keep: int, groups: int, step: int):
        import torch

        self.a, self.b, self.k, self.groups = a, b, k, groups
        self.m = b.shape[0]
        self.eps = bf16_dot_error_bound(a.shape[1])
        self.per_group = -(-self.m // groups)
        self.keep = min(keep, self.per_group)
        self.a16 = a.bfloat16()
        # padded rows make the groups equal; their scores are set to -1 below
        pad = groups * self.per_group - self.m
        self.b_pad = torch.cat([b, torch.zeros(pad, b.shape[1])])
        self.b16 = self.b_pad.bfloat16()
        self.buf16 = torch.empty(step, groups * self.per_group, dtype=torch.bfloat16)
        self.member = torch.arange(groups)[None, None, :] * self.per_group   # group j's rows: j + i * per_group

    def knn_means(self, s: int, e: int):
        """(the exact mean of the k best cosines of each of rows s..e of a, the rows whose screen proved
        nothing: those were recomputed in plain fp32)."""
        import torch

        scores = torch.mm(self.a16[s:e], self.b16.T, out=self.buf16[:e - s])
        scores[:, self.m:] = -1
        group_best, group = scores.view(e - s, self.groups, self.per_group).amax(1).topk(self.keep, dim=1)
        idx = (group[:, :, None] + self.member).reshape(e - s, -1)
        approx, pos = scores.gather(1, idx).topk(self.keep, dim=1)
        idx = idx.gather(1, pos)
        top = self._rescored(s, idx).topk(self.k, dim=1).values
        means = top.mean(1)
        # nothing left out scores above `bound` in bf16, so above bound + eps exactly: below the k-th, proven
        bound = torch.maximum(group_best[:, -1], approx[:, -1]).float()
        unsure = (bound + self.eps >= top[:, -1]).nonzero().squeeze(1)
        if len(unsure):
            means[unsure] = top_k_by_buckets(self.a[s + unsure] @ self.b.T, self.k).mean(1)
        return means, unsure

    def _rescored(self, s: int, idx):
        """fp32 cosines of rows s, s+1, ... of a with the rows `idx` of b (each row its own); padding -inf."""
        import torch

        exact = torch.empty(idx.shape[0], self.keep)
        for u in range(0, idx.shape[0], 64):                                  # gathered rows stay in cache
            v = min(idx.shape[0], u + 64)
            rows = self.b_pad.index_select(0, idx[u:v].reshape(-1)).view(v - u, self.keep, -1)  # faster than b_pad[idx]
            exact[u:v] = (rows * self.a[s + u:s + v, None, :]).sum(-1)
        exact[idx >= self.m] = -torch.inf
        return exact


def retrieval_ranks(queries, candidates, gold: list[list[int]], scoring: str = "cosine", csls_k: int = 10,
                    chunk_bytes: int = 1 << 27) -> np.ndarray:
    """1-based rank of the best-ranked gold candidate for each query (ties count in the query's favour).

    queries [n, d], candidates [m, d]; gold[i]: indices into candidates (non-empty).
    scoring: cosine, or CSLS = 2 cos(x, y) - r_T(x) - r_S(y), which penalises "hub" candidates that are close
    to everything. Work is chunked over queries so at most `chunk_bytes` of scores exist at once.
    """
    if scoring not in RETRIEVAL_SCORINGS:
        raise ValueError(f"scoring must be one of {RETRIEVAL_SCORINGS}")
    return retrieval_ranks_all(queries, candidates, gold, (scoring,), csls_k, chunk_bytes)[scoring]


def retrieval_ranks_all(queries, candidates, gold: list[list[int]], scorings=RETRIEVAL_SCORINGS, csls_k: int = 10,
                        chunk_bytes: int = 1 << 27) -> dict[str, np.ndarray]:
    """`retrieval_ranks` for several scorings at once, sharing one similarity pass over the query chunks: the
    cosine ranks are counted on each chunk, which is then turned into CSLS scores in place and counted again.
    CSLS's candidate radii r_S(y) come from a pass over candidate chunks first (row-wise top-k, the fast
    layout). r_T(x) is the same for every candidate of query x, so it cannot change x's ranking and is never
    computed: 2 cos(x, y) - r_S(y) ranks exactly as CSLS does."""
    import torch

    q, c = unit_rows(queries), unit_rows(candidates)
    n, m = q.shape[0], c.shape[0]
    if len(gold) != n or any(len(g) == 0 for g in gold):
        raise ValueError("gold needs one non-empty list of candidate indices per query")
    rows = torch.tensor([i for i, g in enumerate(gold) for _ in g], dtype=torch.long)
    cols = torch.tensor([j for g in gold for j in g], dtype=torch.long)
    # 2 cos - r_S ranks exactly as cos - r_S / 2 (halving is exact in floating point)
    half_r_c = torch.as_tensor(knn_mean_similarity(c, q, csls_k, chunk_bytes)) / 2 if "csls" in scorings else None
    out = {s: np.empty(n, dtype=np.int64) for s in scorings}
    step = min(n, _chunk_rows(m, chunk_bytes))
    # One scores buffer reused by every chunk: fresh chunk-sized arrays would be page-faulted in anew each
    # time, which cost as much as a third of the matrix product.
    buf = torch.empty(step, m)
    count = _count_kernel()
    above = None if count else np.empty((step, m), dtype=bool)
    no_shift = torch.zeros(m)
    for s in range(0, n, step):
        e = min(n, s + step)
        sel = (rows >= s) & (rows < e)
        r, col = rows[sel] - s, cols[sel]
        scores = torch.mm(q[s:e], c.T, out=buf[:e - s])
        gold_scores = scores[r, col]
        best = {}
        for scoring in scorings:
            shift = half_r_c if scoring == "csls" else no_shift
            best[scoring] = torch.full((e - s,), -torch.inf).scatter_reduce(0, r, gold_scores - shift[col],
                                                                            reduce="amax")
        if count:        # one fused pass over the chunk counts both scorings
            cos_best = best["cosine"] if "cosine" in best else best["csls"]
            csls_best = best["csls"] if "csls" in best else best["cosine"]
            n_cos, n_csls = np.empty(e - s, np.int64), np.empty(e - s, np.int64)
            count(scores.numpy(), cos_best.numpy(), csls_best.numpy(),
                  (half_r_c if half_r_c is not None else no_shift).numpy(), n_cos, n_csls)
            for scoring in scorings:
                out[scoring][s:e] = (n_cos if scoring == "cosine" else n_csls) + 1
            continue
        for scoring in ("cosine", "csls"):             # numpy: compare + count, the CSLS shift in place
            if scoring in scorings:
                if scoring == "csls":
                    scores.sub_(half_r_c[None, :])
                # numpy's count_nonzero on the comparison is several times faster than torch's bool sum here
                gt = np.greater(scores.numpy(), best[scoring].numpy()[:, None], out=above[:e - s])
                out[scoring][s:e] = np.count_nonzero(gt, axis=1) + 1
    return out


_COUNT_KERNEL: list = []


def _count_kernel():
    """A numba kernel counting, in one pass over a score chunk, the candidates above each query's best gold for
    cosine and for CSLS (score - r/2, the same fp32 subtraction as torch's): 2.5x less time than numpy's
    compare + count + in-place shift. None when numba is missing (then numpy does it)."""
    if not _COUNT_KERNEL:
        try:
            import numba
        except ImportError:
            _COUNT_KERNEL.append(None)
        else:
            @numba.njit(nogil=True, cache=True)
            def count_above(scores, cos_best, csls_best, half_r, n_cos, n_csls):
                for i in range(scores.shape[0]):
                    a, b, row = cos_best[i], csls_best[i], scores[i]
                    c1, c2 = np.int32(0), np.int32(0)     # int32 sums vectorise; m < 2^31
                    for j in range(scores.shape[1]):
                        v = row[j]
                        c1 += np.int32(v > a)
                        c2 += np.int32(v - half_r[j] > b)
                    n_cos[i], n_csls[i] = c1, c2

            _COUNT_KERNEL.append(count_above)
    return _COUNT_KERNEL[0]


def ranking_scores(ranks) -> dict:
    """MRR, P@1 and P@5 from 1-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        return {"mrr": float("nan"), "p_at_1": float("nan"), "p_at_5": float("nan"), "n": 0}
    return {"mrr": float(np.mean(1.0 / ranks)), "p_at_1": float(np.mean(ranks <= 1)),
            "p_at_5": float(np.mean(ranks <= 5)), "n": int(ranks.size)}


def random_mrr(n_gold: list[int] | np.ndarray, n_candidates: int) -> float:
    """Expected MRR of a random ranking: for a query with g correct among m candidates, the best gold rank r
    survives with S(r) = P(rank >= r) = C(m-r+1, g) / C(m, g), so S(r+1) / S(r) = (m-r+1-g) / (m-r+1), and
    E[1/r] = sum_r (S(r) - S(r+1)) / r. Exact; averaged over queries."""
    m = int(n_candidates)
    n_gold = np.asarray(n_gold)
    if n_gold.size == 0 or m <= 0:
        return float("nan")
    r = np.arange(1, m + 1, dtype=np.float64)
    total = 0.0
    for g in np.unique(n_gold):
        g = int(min(g, m))
        ratio = np.clip((m - r + 1 - g) / (m - r + 1), 0.0, None)     # S(r+1) / S(r), r = 1..m
        surv = np.concatenate([[1.0], np.cumprod(ratio)])              # S(1..m+1)
        total += float(np.sum((surv[:-1] - surv[1:]) / r)) * int(np.sum(n_gold == g))
    return total / n_gold.size
