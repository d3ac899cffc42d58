"""The report's cross-lingual sections: alignment per layer, and language vectors where there is an MLM head."""

from __future__ import annotations

import time

from pathlib import Path

from ...core.models import has_mlm_head
from ...experiments import langvec as lv
from ...experiments.align import align, save
from ...io.corpora import read_corpora
from ...io.dictionaries import choose_conversion, convert_dictionary, load_dictionary
from ...errors import UserError
from .. import ReportContext, Section, with_fallback
from ..figures import align_figures, langvec_figures

CLAIM_IDS = ["align", "langvec"]   # decided by this module's sections (report.claims)


def report_section(ctx: ReportContext):
    """Alignment (and language vectors when the model has an MLM head) at quick settings for `bertology
    report`: Tatoeba's English and Chinese sides as the corpora, MUSE en-zh converted to Simplified."""
    t0 = time.perf_counter()
    quick = ctx.quick
    lines = 5000 if quick else 30000
    corpora = read_corpora([f"en=tatoeba-cmn-eng#0@{lines}", f"zh=tatoeba-cmn-eng#1@{lines}"], ctx.data_dir)
    d = load_dictionary("muse-en-zh", data_dir=ctx.data_dir)
    d = convert_dictionary(d, choose_conversion(d, (corpora["en"], corpora["zh"])))
    res = align(ctx.model, d, corpora, "en", "zh", k=3 if quick else 5, max_words=300 if quick else 2000,
                precision=ctx.precision, seed=ctx.seed, trust_remote_code=ctx.trust_remote_code, progress=False)
    save(res, ctx.out_dir)
    paths = [align_figures(res, ctx.out_dir)]
    cov = res.coverage
    rows = [{"layer": c["layer"], "MRR cosine": c["mrr"], "MRR CSLS": s["mrr"], "P@1": c["p_at_1"], "P@5": c["p_at_5"],
             "word alone MRR": (res.context_free["cosine"][i]["mrr"] if res.context_free else float("nan"))}
            for i, (c, s) in enumerate(zip(res.contextual["cosine"], res.contextual["csls"]))]
    base = [{"baseline": "random ranking (expected)", "MRR": res.baselines["random_expected_mrr"]},
            {"baseline": "random vectors", "MRR": res.baselines["random_vectors"]["cosine"]["mrr"]}]
    if "cbow" in res.baselines:
        base.append({"baseline": "CBOW, trained per language", "MRR": res.baselines["cbow"]["cosine"]["mrr"]})
    skipped = ", ".join(f"{n} {why}" for why, n in cov["skipped"].items())
    sec = Section(
        "Cross-lingual alignment (MRR per layer)",
        explanation=(
            f"Each English word of the MUSE dictionary is ranked against every Chinese candidate word by the "
            f"cosine (and CSLS) of their vectors, a word's vector being the mean of its contextual embeddings over "
            f"up to {res.k} occurrences in Tatoeba sentences. Mean Reciprocal Rank near the random baseline means "
            f"the languages are not aligned; near 1 means each word's nearest foreign word is its translation. "
            f"Coverage: {cov['source_words']} English words against {cov['candidates']} Chinese candidates "
            f"({cov['evaluated_pairs']} of {cov['dictionary_pairs']} dictionary pairs; {cov['converted_chinese_words']} "
            f"Traditional dictionary words converted to Simplified). Skipped pairs: {skipped}. "
            f"Best layer {res.best['layer']}: MRR {res.best['mrr']:.3f} against {res.baselines['random_expected_mrr']:.3f} "
            f"for a random ranking."),
        figures=[p for p in paths if str(p).endswith(".png")],
        tables=[("MRR per layer (contextual word vectors)", rows), ("Baselines", base),
                ("Nearest Chinese candidates at the best layer", [{"English": e["source"], "gold": " ".join(e["gold"]),
                                                                   "top 5": " ".join(e["top5"])} for e in res.examples])])
    sec.seconds = time.perf_counter() - t0
    sec.claim_ids = ["align"]
    sec.measures = {"align": {"mrr": res.best["mrr"], "layer": res.best["layer"], "model": ctx.model,
                              "random": res.baselines["random_expected_mrr"],
                              "random_vectors": res.baselines["random_vectors"]["cosine"]["mrr"]}}
    title = "Language vectors: mean-shift translation"
    t1 = time.perf_counter()
    try:
        lsec = with_fallback(ctx, lambda model: _langvec_section(ctx, model, title, corpora, d))
    except UserError as e:
        lsec = Section(title, error=ctx.describe_error(e))
    lsec.claim_ids = ["langvec"]
    lsec.seconds = time.perf_counter() - t1
    return [sec, lsec]


def _langvec_section(ctx: ReportContext, model: str, title: str, corpora, d) -> Section:
    quick = ctx.quick
    if not has_mlm_head(model):
        raise UserError(f"model {model!r} has no masked-LM head: the shifted hidden states must be decoded into "
                        f"tokens by one (run on a model from `bertology pretrain`)")
    sents = read_corpora([f"en=tatoeba-cmn-eng#0@{100 if quick else 500}"], ctx.data_dir)["en"]
    lres = lv.langvec(model, corpora, sents, d, "en", "zh", alphas=(0, 1, 2, 3) if quick else (0, 0.5, 1, 1.5, 2, 3),
                      mean_sentences=300 if quick else 1000, precision=ctx.precision,
                      trust_remote_code=ctx.trust_remote_code, progress=False)
    lv.save(lres, Path(ctx.out_dir) / "langvec")
    lpaths = [langvec_figures(lres, Path(ctx.out_dir) / "langvec")]
    b = lres.best
    plain = next(g for g in lres.grid if g["layer"] == b["layer"] and g["alpha"] == 0)
    return Section(
        title, claim_ids=["langvec"],
        measures={"langvec": {"precision": b["precision"], "unshifted": plain["precision"], "layer": b["layer"],
                              "alpha": b["alpha"], "model": model}},
        explanation=(f"The mean hidden state of each language (μ_en, μ_zh, per layer) is added as α·(μ_zh − μ_en) at "
                     f"layer L to English Tatoeba sentences; the masked-LM head then fills every position. Scored by "
                     f"token-translation precision against the dictionary (a one-token English word whose output is "
                     f"one of its translations, or a character of one). Best setting L={b['layer']}, α={b['alpha']:g}: "
                     f"precision {b['precision']:.3f} over {b['scored_words']} words, {b['target_script_rate']:.2f} of "
                     f"output tokens Chinese (without the shift: precision {plain['precision']:.3f}, "
                     f"{plain['target_script_rate']:.2f} Chinese)."),
        figures=[p for p in lpaths if str(p).endswith(".png")],
        tables=[("Examples at the best setting", [{"English": e["sentence"], "unshifted": " ".join(e["unshifted"]),
                                                   "shifted": " ".join(e["shifted"])} for e in lres.examples])])
