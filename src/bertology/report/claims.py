"""The report's verdict table: each claim of the lecture and its papers beside this run's number.

Sections put the numbers a verdict needs into `Section.measures` under a claim id; this module turns them into
one row per claim with a verdict decided by a written rule (docs/results.md), never by hand:

    shown                       the effect exceeds its baseline by the rule's margin
    not shown at this scale     the section ran and the effect is below the margin (the row says by how much)
    not runnable on this model  the section could not run (the row gives the reason and what would run it)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHOWN, NOT_SHOWN, NOT_RUNNABLE, NOT_RUN = ("shown", "not shown at this scale", "not runnable on this model",
                                           "not run at these settings")


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    paper: str          # the lecture's or paper's figure, where one exists
    rule: str           # when the verdict is "shown"


CLAIMS = [
    Claim("senses", "Contextual vectors separate word senses; static (CBOW) vectors cannot",
          "lecture: 果 in 蘋果, fruit vs company, separate in BERT's vectors",
          "best-layer separation (within − between cosine) exceeds CBOW's by ≥ 0.05 and 2-means purity ≥ 0.9"),
    Claim("transfer", "Text pretraining helps on DNA (and protein, music) written as words",
          "Kao & Lee 2021: pretrained above scratch on every task",
          "pretrained − scratch test accuracy > 2 × the binomial standard error of the difference (and > the "
          "sum of the seed standard deviations), and McNemar's exact test on the same test sequences p < 0.01"),
    Claim("controls", "The benefit survives new word embeddings but not shuffled weights",
          "Kao & Lee 2021: rand-embed keeps most of the gain, shuffled loses it",
          "rand-embed − scratch above the transfer margin, and shuffled − scratch within it"),
    Claim("qa", "Fine-tuning on English SQuAD answers Chinese questions (zero-shot)",
          "Hsu, Liu & Lee 2019, DRCD dev F1: mBERT trained on English 78.8; Chinese BERT 89.1; humans 93.3",
          "English F1 ≥ 40 and Chinese F1 ≥ half the English F1"),
    Claim("align", "English and Chinese representations align",
          "Liu et al. 2020: dictionary MRR well above random in multilingual BERT, given enough data",
          "best-layer MRR ≥ 3 × the random-ranking MRR and above random vectors' MRR"),
    Claim("langvec", "Language vectors translate: μ_zh − μ_en turns English hidden states into Chinese",
          "lecture: English sentences decoded as Chinese tokens after the shift",
          "token-translation precision ≥ 0.05 and ≥ 2 × the unshifted precision"),
    Claim("fillmask", "Fill-mask knows 今天買了蘋[MASK]來吃 → 果",
          "lecture: BERT's top answer is 果",
          "果 is the top-1 candidate for the lecture's (Traditional) sentence"),
]


def _senses(m: dict) -> tuple[str, str, str]:
    static = m.get("static_separation", 0.0)
    ok = m["separation"] - static >= 0.05 and m["purity"] >= 0.9
    return (f"separation {m['separation']:.3f} (layer {m['layer']}), purity {m['purity']:.2f}",
            f"CBOW separation {static:.3f}", SHOWN if ok else NOT_SHOWN)


def _margin(m: dict, a: str, b: str) -> float:
    n = m["n_test"]
    pa, pb = m[a]["mean"], m[b]["mean"]
    se = math.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)
    return max(2 * se, m[a]["std"] + m[b]["std"])


def _transfer(m: dict) -> tuple[str, str, str]:
    diff, margin = m["pretrained"]["mean"] - m["scratch"]["mean"], _margin(m, "pretrained", "scratch")
    p = m.get("mcnemar_p")
    significant = p is None or p < 0.01          # the paired test, when the runs kept their predictions
    return (f"pretrained {m['pretrained']['mean']:.3f} (+{diff:.3f}, margin {margin:.3f}"
            + (f", McNemar p = {p:.2g})" if p is not None else ")"),
            f"scratch {m['scratch']['mean']:.3f}; majority {m['majority']:.3f}",
            SHOWN if diff > margin and significant else NOT_SHOWN)


def _controls(m: dict) -> tuple[str, str, str]:
    if "rand-embed" not in m or "shuffled" not in m:
        return "", f"scratch {m['scratch']['mean']:.3f}", NOT_RUN + " (bertology report --full runs all controls)"
    gain = m["rand-embed"]["mean"] - m["scratch"]["mean"] > _margin(m, "rand-embed", "scratch")
    lost = m["shuffled"]["mean"] - m["scratch"]["mean"] <= _margin(m, "shuffled", "scratch")
    return (f"rand-embed {m['rand-embed']['mean']:.3f}, shuffled {m['shuffled']['mean']:.3f}",
            f"scratch {m['scratch']['mean']:.3f}", SHOWN if gain and lost else NOT_SHOWN)


def _qa(m: dict) -> tuple[str, str, str]:
    ok = m["en_f1"] >= 40 and m["zh_f1"] >= m["en_f1"] / 2
    return (f"XQuAD-zh F1 {m['zh_f1']:.1f}", f"XQuAD-en F1 {m['en_f1']:.1f} (same questions in English)",
            SHOWN if ok else NOT_SHOWN)


def _align(m: dict) -> tuple[str, str, str]:
    ok = m["mrr"] >= 3 * m["random"] and m["mrr"] > m["random_vectors"]
    return (f"MRR {m['mrr']:.3f} (layer {m['layer']})",
            f"random ranking {m['random']:.4f}, random vectors {m['random_vectors']:.4f}", SHOWN if ok else NOT_SHOWN)


def _langvec(m: dict) -> tuple[str, str, str]:
    ok = m["precision"] >= 0.05 and m["precision"] >= 2 * m["unshifted"]
    return (f"precision {m['precision']:.3f} (layer {m['layer']}, α {m['alpha']:g})",
            f"unshifted {m['unshifted']:.3f}", SHOWN if ok else NOT_SHOWN)


def _fillmask(m: dict) -> tuple[str, str, str]:
    top = ", ".join(f"{t} {p:.2f}" for t, p in m["top5"])
    rank = m["rank"]
    return (f"top-5: {top}" + (f" (果 at rank {rank})" if rank else " (果 not in the top 5)"),
            "(the rule needs no baseline: 果 first among all tokens)", SHOWN if rank == 1 else NOT_SHOWN)


RULES = {"senses": _senses, "transfer": _transfer, "controls": _controls, "qa": _qa, "align": _align,
         "langvec": _langvec, "fillmask": _fillmask}


def verdicts(sections) -> list[dict]:
    """One row per claim from the sections' `measures` ({claim id: numbers}) and `claim_ids`; sections are
    numbered as in the page (anchor s1, s2, ...)."""
    measures, where, errors = {}, {}, {}
    for i, s in enumerate(sections, 1):
        for cid in s.claim_ids:
            where.setdefault(cid, i)
            if s.error:
                errors.setdefault(cid, s.error.splitlines()[0])
        for cid, m in s.measures.items():
            measures.setdefault(cid, {}).update(m)
            where.setdefault(cid, i)
    if "senses" in measures and "static_separation" in measures.get("static", {}):
        measures["senses"]["static_separation"] = measures["static"]["static_separation"]
    rows = []
    for c in CLAIMS:
        row = {"id": c.id, "claim": c.claim, "paper": c.paper, "rule": c.rule, "section": where.get(c.id),
               "model": measures.get(c.id, {}).get("model")}
        if c.id in measures and _complete(c.id, measures[c.id]):
            row["this_run"], row["baseline"], row["verdict"] = RULES[c.id](measures[c.id])
        elif c.id in errors:
            row["this_run"], row["baseline"], row["verdict"] = "", "", NOT_RUNNABLE
            row["reason"] = errors[c.id]
        else:
            row["this_run"], row["baseline"], row["verdict"] = "", "", NOT_RUN
        rows.append(row)
    return rows


_NEEDS = {"senses": ("separation", "purity"), "transfer": ("pretrained", "scratch"), "controls": ("scratch",),
          "qa": ("en_f1", "zh_f1"), "align": ("mrr",), "langvec": ("precision",), "fillmask": ("top5",)}


def _complete(cid: str, m: dict) -> bool:
    return all(k in m for k in _NEEDS[cid])
