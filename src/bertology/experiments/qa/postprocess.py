"""QA post-processing: from start/end logits to answers. Every span of at most `max_answer_len` tokens inside
the context part of any window is scored start_logit + end_logit (an exact search, not just the top-k starts x
top-k ends); the `n_best` spans are kept; the best one's character offsets cut the answer out of the *original*
context, so answers are exact substrings (no detokenisation artefacts, accents and Chinese intact)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .features import EvalFeatures, QASettings


def _logsumexp(x: np.ndarray) -> float:
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum()))


def top_spans(start: np.ndarray, end: np.ndarray, max_answer_len: int, k: int):
    """The k best (score, i, j) spans with 0 <= j - i < max_answer_len, exact, vectorised:
    row d of the band matrix holds start[i] + end[i + d]."""
    n = len(start)
    width = min(max_answer_len, n)
    band = np.full((width, n), -np.inf, dtype=np.float64)
    for d in range(width):
        band[d, :n - d] = start[:n - d] + end[d:]
    flat = band.ravel()
    k = min(k, int(np.isfinite(flat).sum()))
    top = np.argpartition(-flat, k - 1)[:k] if k < flat.size else np.arange(flat.size)
    top = top[np.argsort(-flat[top], kind="stable")][:k]
    d, i = np.divmod(top, n)
    return flat[top], i, i + d


@dataclass
class Predictions:
    answers: dict[str, str]               # question id -> answer text (the official predictions JSON)
    nbest: dict[str, list[dict]]          # question id -> [{text, start, end, score, probability}]
    windows: int
    seconds: float
    rerun: int = 0                        # bf16-verified: questions re-run in fp32 (near-ties in bf16)

    @property
    def questions_per_s(self) -> float:
        return len(self.answers) / self.seconds if self.seconds else float("nan")


def add_spans(cands: list[dict], feats: EvalFeatures, logits, windows, s: QASettings) -> None:
    """Score every span of the given windows (exact top n_best per window) into cands[question]:
    {(start char, end char): best score over the windows that hold the span}."""
    for w in windows:
        start, end = logits[w]
        first, last = feats.context_range[w]
        scores, i, j = top_spans(start[first:last + 1], end[first:last + 1], s.max_answer_len, s.n_best)
        if s.span_score == "window-prob":   # softmax over [CLS] + context, as the pipeline normalises
            keep = np.r_[0, first:last + 1]
            scores = scores - _logsumexp(start[keep]) - _logsumexp(end[keep])
        offs = feats.offsets[w]
        best = cands[feats.example_index[w]]
        for sc, a, b in zip(scores.tolist(), i.tolist(), j.tolist()):
            span = (int(offs[a, 0]), int(offs[b, 1]))
            if span[1] > span[0] and sc > best.get(span, -math.inf):   # overlapping windows: keep the best
                best[span] = sc


def answer_margins(context: str, cands: dict[tuple[int, int], float]) -> tuple[float, float]:
    """How far the best span's score leads the best span with a *different answer text* that overlaps it
    (shares characters: "1-3 μm" vs "1-3 μm thick"), and the best such span that does not (inf when there is
    none). Spans with the same text (the answer at two places) do not compete."""
    if not cands:
        return math.inf, math.inf
    (a, b), top = max(cands.items(), key=lambda kv: kv[1])
    text = context[a:b]
    near = far = -math.inf
    for (i, j), v in cands.items():
        if context[i:j] != text:
            if i < b and a < j:
                near = max(near, v)
            else:
                far = max(far, v)
    return top - near, top - far


def needs_fp32(context: str, cands: dict[tuple[int, int], float], margin: float) -> bool:
    """bf16-verified: whether bf16 rounding could change this question's answer. Calibrated (docs/qa.md) on
    minilm: bf16 moved the score difference of two overlapping spans by at most 0.134, of two disjoint spans
    (whose logits, and possibly windows, differ in every term) by up to 0.29; so overlapping competitors need
    a lead of margin / 2, disjoint ones of margin."""
    near, far = answer_margins(context, cands)
    return near < margin / 2 or far < margin


def rank_answers(examples, cands: list[dict[tuple[int, int], float]], n_best: int):
    """Per question, its n_best spans by score with their softmax probability, and the best one's text:
    ({id: answer}, {id: [{text, start, end, score, probability}]})."""
    answers, nbest = {}, {}
    for ex, c in zip(examples, cands):
        ranked = sorted(c.items(), key=lambda kv: -kv[1])[:n_best]
        if not ranked:
            answers[ex.id], nbest[ex.id] = "", []
            continue
        sc = np.array([v for _, v in ranked])
        prob = np.exp(sc - sc.max())
        prob /= prob.sum()
        nbest[ex.id] = [{"text": ex.context[a:b], "start": a, "end": b, "score": float(v), "probability": float(p)}
                        for ((a, b), v), p in zip(ranked, prob)]
        answers[ex.id] = nbest[ex.id][0]["text"]
    return answers, nbest
