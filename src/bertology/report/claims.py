"""The report's verdict table: each claim of the lecture and its papers, tested against its strongest cheap
baseline, on every model of the report that can test it.

Sections put the numbers a rule needs into `Section.measures` under a claim id (one dict, or a list of dicts:
one per model); this module turns them into rows with a verdict decided by a rule written before the numbers
(docs/results.md), never by hand:

    shown            the effect beats every baseline of the claim by the rule's margin, with its confidence
                     interval (bootstrap over test items, and seeds where there are seeds) clear of zero
    not shown        the claim was tested and the rule does not hold (the row gives the numbers)
    not applicable   the model cannot test the claim (no MLM head, its vocabulary reads the text as [UNK], no
                     scorable item): the row gives the reason with its count
    not run          the section did not run at these settings, or a test the rule needs was not run (a missing
                     paired test is never a pass)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHOWN, NOT_SHOWN, NOT_APPLICABLE, NOT_RUN = "shown", "not shown", "not applicable", "not run"
VERDICTS = (SHOWN, NOT_SHOWN, NOT_APPLICABLE, NOT_RUN)


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    paper: str          # the lecture's or paper's figure, where one exists
    rule: str           # when the verdict is "shown"


CLAIMS = [
    Claim("senses", "Contextual vectors separate word senses; static (CBOW) vectors cannot",
          "lecture: 果 in 蘋果, fruit vs company, separate in BERT's vectors",
          "on position-balanced sets (4 targets per language), layer chosen on a dev half of the sentences: "
          "pooled separation at that layer minus layer 0 ≥ 0.05 with its 95% CI above 0, 2-means purity ≥ 0.85 "
          "and ≥ 0.10 above a position-only feature's purity"),
    Claim("transfer", "Text pretraining helps on DNA written as words",
          "Kao & Lee 2021: pretrained above scratch on every task",
          "on a split with no sequence on two sides, scratch's learning rate tuned on dev (else not run): pretrained − scratch "
          "test accuracy > max(2 × binomial SE, sum of seed SDs) with the paired 95% CI above 0 and McNemar "
          "p < 0.01, and pretrained above the k-mer composition baseline and the majority class"),
    Claim("controls", "The gain comes from the learned arrangement of the weights, not their scale",
          "this project's control (Kao & Lee 2021 compare pretrained with scratch): shuffling every pretrained "
          "tensor should lose the gain",
          "pretrained − shuffled test accuracy > the transfer margin, with the paired 95% CI above 0 and "
          "McNemar p < 0.01"),
    Claim("qa", "Fine-tuning on English SQuAD answers Chinese questions (zero-shot)",
          "Hsu, Liu & Lee 2019, DRCD dev F1: mBERT trained on English 78.8; Chinese BERT 89.1; humans 93.3",
          "Chinese F1 above the character-overlap heuristic on the same questions (paired 95% CI above 0), and at "
          "least half the English F1 on the same questions, both scored with the same (CMRC) F1"),
    Claim("align", "English and Chinese representations align",
          "Liu et al. 2020: dictionary MRR well above random in multilingual BERT, given enough data",
          "layer chosen on dev words; on test words MRR ≥ 3 × a random ranking's, and above the strongest of "
          "layer 0, the word fed alone, random vectors and the same architecture at initialisation, with the "
          "paired 95% CI above 0"),
    Claim("langvec", "Language vectors translate: μ_zh − μ_en turns English hidden states into Chinese",
          "lecture: English sentences decoded as Chinese tokens after the shift",
          "layer and α chosen on dev words; on test words precision ≥ 0.05 and above both the unshifted output "
          "and the best constant token (chosen on dev), with the paired 95% CI above 0"),
    Claim("fillmask", "Masked-LM fills blanks from context (今天買了蘋[MASK]來吃 → 果)",
          "lecture: BERT's top answer is 果",
          "on an item set (40 zh + 40 en blanks), top-1 accuracy above the better of a unigram and a "
          "left-neighbour bigram predictor from the pretraining corpus, paired 95% CI above 0"),
]
CLAIM_IDS = [c.id for c in CLAIMS]


def _ci_text(ci) -> str:
    return f"95% CI [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci and not any(map(math.isnan, ci)) else "no CI"


def _clear(ci) -> bool:
    return bool(ci) and not math.isnan(ci[0]) and ci[0] > 0


# -------------------------------------------------------------------------------------------------- rules
# Each rule takes one model's measures and returns (this run, {baseline: value}, 95% CI or None, verdict), the
# verdict optionally as (verdict, reason).
def _senses(m: dict):
    ok = (m["effect"] >= 0.05 and _clear(m["ci"]) and m["purity"] >= 0.85
          and m["purity"] - m["position_purity"] >= 0.10)
    run = (f"{m['language']}: separation − layer 0 = {m['effect']:+.3f} over {m['sets']} sets, "
           f"purity {m['purity']:.2f}")
    base = {"layer 0 separation": m["layer0"], "layer 0 purity": m["layer0_purity"],
            "position-only purity": m["position_purity"]}
    if m.get("cbow") is not None:
        base["CBOW separation"] = m["cbow"]
    return run, base, m["ci"], SHOWN if ok else NOT_SHOWN


def _margin(m: dict, a: str, b: str) -> float:
    n = m["n_test"]
    pa, pb = m[a]["mean"], m[b]["mean"]
    se = math.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)
    return max(2 * se, m[a]["std"] + m[b]["std"])


def _paired(m: dict, a: str, b: str, floors: dict):
    """pretrained against one condition: the margin rule, the paired CI and McNemar's p."""
    diff, margin = m[a]["mean"] - m[b]["mean"], _margin(m, a, b)
    pair = m.get("paired", {}).get(b)
    if pair is None:
        return diff, margin, None, None, NOT_RUN
    ok = diff > margin and _clear(pair["ci"]) and pair["p"] < 0.01 and all(m[a]["mean"] > v for v in floors.values())
    return diff, margin, pair["ci"], pair["p"], SHOWN if ok else NOT_SHOWN


def _transfer(m: dict):
    floors = {"majority": m["majority"]}
    if "composition" in m:
        floors["composition (k-mer)"] = m["composition"]["mean"]
    diff, margin, ci, p, verdict = _paired(m, "pretrained", "scratch", floors)
    if verdict == SHOWN and not m.get("scratch_lr"):   # a baseline left at the other side's recipe is a weak one
        verdict = (NOT_RUN, "scratch's learning rate was not tuned on dev at these settings (crossdomain --lr-grid)")
    run = (f"pretrained {m['pretrained']['mean']:.3f} ({diff:+.3f} over scratch, margin {margin:.3f}"
           + (f", McNemar p = {p:.2g})" if p is not None else ", paired test not run)")
           + ("" if m.get("scratch_lr") else "; scratch not tuned on dev at these settings"))
    base = {f"scratch (lr {m['scratch_lr']:g}, tuned on dev)" if m.get("scratch_lr") else "scratch":
            m["scratch"]["mean"], **floors}
    return run, base, ci, verdict


def _controls(m: dict):
    if "shuffled" not in m:
        return "shuffled not run", {}, None, NOT_RUN
    diff, margin, ci, p, verdict = _paired(m, "pretrained", "shuffled", {})
    run = (f"pretrained {m['pretrained']['mean']:.3f} ({diff:+.3f} over shuffled, margin {margin:.3f}"
           + (f", McNemar p = {p:.2g})" if p is not None else ", paired test not run)"))
    base = {"shuffled": m["shuffled"]["mean"], "scratch": m["scratch"]["mean"]}
    if "rand-embed" in m:
        base["rand-embed"] = m["rand-embed"]["mean"]
    return run, base, ci, verdict


def _qa(m: dict):
    ok = _clear(m["ci"]) and m["zh_f1"] >= m["en_f1"] / 2
    return (f"Chinese F1 {m['zh_f1']:.1f} on {m['questions']} questions",
            {"character-overlap heuristic F1": m["heuristic_f1"], "English F1 (same questions)": m["en_f1"]},
            m["ci"], SHOWN if ok else NOT_SHOWN)


def _align(m: dict):
    base = {k: m[k] for k in ("layer 0", "word alone", "random vectors", "at initialisation") if k in m}
    ok = m["mrr"] >= 3 * m["random ranking"] and _clear(m["ci"])
    return (f"MRR {m['mrr']:.3f} (layer {m['layer']}, {m['test_words']} test words; strongest baseline: "
            f"{m['strongest']})", {"random ranking": m["random ranking"], **base}, m["ci"], SHOWN if ok else NOT_SHOWN)


def _langvec(m: dict):
    ok = m["precision"] >= 0.05 and _clear(m["ci"])
    return (f"precision {m['precision']:.3f} (layer {m['layer']}, α {m['alpha']:g}, {m['test_words']} test words)",
            {"unshifted": m["unshifted"], f"constant {m['constant_token']!r}": m["constant"]}, m["ci"],
            SHOWN if ok else NOT_SHOWN)


def _fillmask(m: dict):
    lecture = (f"; lecture sentence: 果 at rank {m['lecture_rank']}" if m.get("lecture_rank")
               else "; lecture sentence: 果 not in the top 5")
    return (f"top-1 {m['top1']:.3f} on {m['items']} items{lecture}",
            {"unigram": m["unigram"], "left-neighbour bigram": m["bigram"]}, m["ci"],
            SHOWN if _clear(m["ci"]) else NOT_SHOWN)


RULES = {"senses": _senses, "transfer": _transfer, "controls": _controls, "qa": _qa, "align": _align,
         "langvec": _langvec, "fillmask": _fillmask}


def judge(claim_id: str, m: dict) -> dict:
    """One row of the table from one model's measures. `m["not_applicable"]` (a reason) makes the verdict
    not applicable; a rule that cannot find a number it needs makes it not run, never shown."""
    if m.get("not_applicable"):
        return {"this_run": "", "baselines": {}, "ci": None, "verdict": NOT_APPLICABLE, "reason": m["not_applicable"]}
    if m.get("not_run"):
        return {"this_run": "", "baselines": {}, "ci": None, "verdict": NOT_RUN, "reason": m["not_run"]}
    try:
        run, base, ci, verdict = RULES[claim_id](m)
    except (KeyError, TypeError, ZeroDivisionError) as e:
        return {"this_run": "", "baselines": {}, "ci": None, "verdict": NOT_RUN,
                "reason": f"a number the rule needs is missing ({type(e).__name__}: {e})"}
    base = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in base.items()}
    verdict, reason = verdict if isinstance(verdict, tuple) else (verdict, "")   # a rule may say why
    if verdict == NOT_RUN and not reason:
        reason = "a test the rule needs was not run"
    return {"this_run": run, "baselines": base, "ci": ci, "verdict": verdict, "reason": reason}


def verdicts(sections) -> list[dict]:
    """Rows of the verdict table: one per claim and model that tested it (a claim nobody tested: one row,
    not applicable or not run). Sections are numbered as in the page (anchor s1, s2, ...)."""
    measures: dict[str, list[dict]] = {}
    where, errors = {}, {}
    for i, s in enumerate(sections, 1):
        for cid in s.claim_ids:
            where.setdefault(cid, i)
            if s.error:
                errors.setdefault(cid, s.error.splitlines()[0])
        for cid, m in s.measures.items():
            measures.setdefault(cid, []).extend(m if isinstance(m, list) else [m])
            where.setdefault(cid, i)
    cbow = {m.get("language"): m["static_separation"] for m in measures.pop("static", [])}
    for m in measures.get("senses", []):       # the static baseline, measured by the CBOW section
        if m.get("language") in cbow:
            m["cbow"] = cbow[m["language"]]
    rows = []
    for c in CLAIMS:
        head = {"id": c.id, "claim": c.claim, "paper": c.paper, "rule": c.rule, "section": where.get(c.id)}
        for m in measures.get(c.id, []):
            rows.append({**head, "model": m.get("model"), "recorded": bool(m.get("recorded")), **judge(c.id, m)})
        if c.id not in measures:
            # a section that raised a user error could not run on this model; one that crashed did not run
            crashed = errors.get(c.id, "").startswith(("failed:", "not available"))
            verdict = NOT_APPLICABLE if c.id in errors and not crashed else NOT_RUN
            rows.append({**head, "model": None, "recorded": False, "this_run": "", "baselines": {}, "ci": None,
                         "verdict": verdict, "reason": errors.get(c.id, "not run at these settings")})
    return rows


def claim_verdicts(rows: list[dict]) -> dict[str, str]:
    """One verdict per claim: shown if shown on some model, else not shown if tested anywhere, else not
    applicable if some model could not test it, else not run."""
    out = {}
    for cid in CLAIM_IDS:
        got = {r["verdict"] for r in rows if r["id"] == cid}
        out[cid] = next(v for v in VERDICTS if v in got) if got else NOT_RUN
    return out


def summary_line(rows: list[dict], models: list[str], quick: bool, date: str) -> str:
    """'N of 7 shown, M not applicable, on MODELS, quick settings, DATE' — the table's first line."""
    per = claim_verdicts(rows)
    counts = {v: sum(1 for x in per.values() if x == v) for v in VERDICTS}
    parts = [f"{counts[SHOWN]} of {len(CLAIMS)} claims shown"]
    parts += [f"{counts[v]} {v}" for v in (NOT_SHOWN, NOT_APPLICABLE, NOT_RUN) if counts[v]]
    return (", ".join(parts) + f", on {' and '.join(models)}, {'quick' if quick else 'full'} settings, {date}")
