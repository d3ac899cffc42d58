"""The report's cross-lingual sections: alignment per layer, and language vectors where there is an MLM head."""

from __future__ import annotations

import time

from pathlib import Path

from ...core.models import has_mlm_head, load_tokenizer
from ...experiments import align
from ...experiments import langvec as lv
from ...experiments.configs import AlignConfig, LangvecConfig
from ...io.bilingual import BilingualData
from ...errors import UserError
from .. import ReportContext, Section, model_slug
from ..figures import align_figures, langvec_figures

QUICK_LINES = 5000     # Tatoeba lines per language at quick settings (the corpora and language means)
FULL_LINES = 30000
CORPORA = ("en=tatoeba-cmn-eng#0", "zh=tatoeba-cmn-eng#1")    # Tatoeba's English and Chinese sides
CLAIM_IDS = ["align", "langvec"]   # decided by this module's sections (report.claims)


def _bilingual_settings(ctx: ReportContext, model: str) -> dict:
    """What align and langvec share in the report: the model, Tatoeba's two sides as the corpora, MUSE en-zh
    (converted to Simplified, as the corpora are), so that one read of the data serves both."""
    lines = QUICK_LINES if ctx.quick else FULL_LINES
    return dict(model=model, corpus=[f"{spec}@{lines}" for spec in CORPORA], dict_path="muse-en-zh", max_lines=lines,
                data_dir=ctx.data_dir, precision=ctx.precision, seed=ctx.seed,
                trust_remote_code=ctx.trust_remote_code)


def align_preset(ctx: ReportContext, model: str) -> AlignConfig:
    """`bertology align` at the report's settings: quick, 3 occurrences a word and 300 source words (full: 5 and
    2,000), measured at initialisation too for the verdict."""
    return AlignConfig(**_bilingual_settings(ctx, model), k=3 if ctx.quick else 5,
                       max_words=300 if ctx.quick else 2000, at_initialisation=True,
                       out=ctx.out_dir / model_slug(model))


def langvec_preset(ctx: ReportContext, model: str) -> LangvecConfig:
    """`bertology langvec` at the report's settings: quick, 300 English sentences translated and 300 averaged into
    each language mean, α in 0..3 (full: 1,000 each, α in steps of 0.5)."""
    sentences = 300 if ctx.quick else 1000
    return LangvecConfig(**_bilingual_settings(ctx, model), sentences=[f"{CORPORA[0]}@{sentences}"],
                         alphas=(0, 1, 2, 3) if ctx.quick else (0, 0.5, 1, 1.5, 2, 3), mean_sentences=sentences,
                         out=ctx.out_dir / "langvec" / model_slug(model))


def report_section(ctx: ReportContext):
    """Alignment on every model of the report that reads Chinese (and language vectors on every one with an MLM
    head), at quick settings: Tatoeba's English and Chinese sides as the corpora, MUSE en-zh converted to
    Simplified, read once for every run. The first model that ran draws the figures; every model's numbers go
    to the verdict."""
    t0 = time.perf_counter()
    first = align_preset(ctx, ctx.models[0])
    data = first.read(first.max_lines)      # the presets of every model and of langvec name the same data
    sec, measures = None, []
    for model in ctx.models:
        m, res = _align_model(ctx, model, data)
        measures.append(m)
        if sec is None and res is not None:
            sec = present_align(res, align_preset(ctx, model).out)
    if sec is None:
        sec = Section("Cross-lingual alignment (MRR per layer)",
                      error="; ".join(f"{m['model']}: {m['not_applicable']}" for m in measures))
    sec.seconds = time.perf_counter() - t0
    sec.claim_ids, sec.measures = ["align"], {"align": measures}
    if any("not_applicable" not in m for m in measures):
        sec.tables.insert(0, ("The verdict's numbers (layer chosen on dev words; test words only)",
                              [{"model": m["model"], **({"MRR": m["not_applicable"]} if "not_applicable" in m else
                                {"layer": m["layer"], "MRR": m["mrr"], "layer 0": m["layer 0"],
                                 "word alone": m.get("word alone", ""), "at initialisation": m.get("at initialisation", ""),
                                 "random vectors": m["random vectors"], "random ranking": m["random ranking"]})}
                               for m in measures]))
    t1 = time.perf_counter()
    lsec = _langvec_sections(ctx, data)
    lsec.seconds = time.perf_counter() - t1
    return [sec, lsec]


def unreadable_chinese(ctx: ReportContext, model: str, chinese: list[str]) -> str | None:
    """Why `model` cannot be measured on Chinese text (its tokenizer does not load, or reads more than
    UNKNOWN_LIMIT of the text's tokens as [UNK]: its alignment would be an artefact), or None when it can."""
    from ...core.vocab import UNKNOWN_LIMIT, unknown_token_share

    try:
        share = unknown_token_share(load_tokenizer(model, ctx.trust_remote_code), chinese[:1000])
    except UserError as e:
        return ctx.describe_error(e)
    if share > UNKNOWN_LIMIT:
        return (f"{share:.0%} of the Chinese corpus's tokens are [UNK] to its vocabulary "
                f"(limit {UNKNOWN_LIMIT:.0%})")
    return None


def _align_model(ctx: ReportContext, model: str, data: BilingualData):
    """(the verdict's numbers, the AlignResult) for one model; (reason, None) when it cannot read Chinese."""
    reason = unreadable_chinese(ctx, model, data.corpora[data.target])
    if reason is not None:
        return {"model": model, "not_applicable": reason}, None
    cfg = align_preset(ctx, model)
    res = align.run(cfg, data, progress=False)
    align.save(res, cfg.out)
    return {"model": model, **res.measures}, res


def present_align(res: align.AlignResult, out: Path) -> Section:
    """The alignment section of one model's result: its figures (drawn in `out`), MRR per layer, the baselines
    and the nearest candidates."""
    paths = [align_figures(res, out)]
    cov = res.coverage
    rows = [{"layer": c["layer"], "MRR cosine": c["mrr"], "MRR CSLS": s["mrr"], "P@1": c["p_at_1"], "P@5": c["p_at_5"],
             "word alone MRR": (res.context_free["cosine"][i]["mrr"] if res.context_free else float("nan"))}
            for i, (c, s) in enumerate(zip(res.contextual["cosine"], res.contextual["csls"]))]
    base = [{"baseline": "random ranking (expected)", "MRR": res.baselines["random_expected_mrr"]},
            {"baseline": "random vectors", "MRR": res.baselines["random_vectors"]["cosine"]["mrr"]}]
    if "cbow" in res.baselines:
        base.append({"baseline": "CBOW, trained per language", "MRR": res.baselines["cbow"]["cosine"]["mrr"]})
    skipped = ", ".join(f"{n} {why}" for why, n in cov["skipped"].items())
    return Section(
        f"Cross-lingual alignment (MRR per layer) on {res.model}",
        explanation=(
            f"Each English word of the MUSE dictionary is ranked against every Chinese candidate word by the "
            f"cosine (and CSLS) of their vectors, a word's vector being the mean of its contextual embeddings over "
            f"up to {res.k} occurrences in Tatoeba sentences. Mean Reciprocal Rank near the random baseline means "
            f"the languages are not aligned; near 1 means each word's nearest foreign word is its translation. "
            f"Coverage: {cov['source_words']} English words against {cov['candidates']} Chinese candidates "
            f"({cov['evaluated_pairs']} of {cov['dictionary_pairs']} dictionary pairs; {cov['converted_chinese_words']} "
            f"Traditional dictionary words converted to Simplified). Skipped pairs: {skipped}. "
            f"The verdict does not take the best layer of this table (chosen on the words it is scored on): it "
            f"chooses the layer on half of the words and scores the other half against layer 0 (the input "
            f"embeddings, where shared characters already match), the word fed alone, random vectors and the "
            f"same architecture at initialisation."),
        figures=[p for p in paths if str(p).endswith(".png")],
        tables=[("MRR per layer (contextual word vectors, all words)", rows), ("Baselines", base),
                ("Nearest Chinese candidates at the best layer", [{"English": e["source"], "gold": " ".join(e["gold"]),
                                                                   "top 5": " ".join(e["top5"])} for e in res.examples])])


def _langvec_sections(ctx: ReportContext, data: BilingualData) -> Section:
    """Language vectors on every model of the report with an MLM head; the first one draws the section."""
    title = "Language vectors: mean-shift translation"
    sec, measures = None, []
    for model in ctx.models:
        try:
            s = _langvec_section(ctx, model, title, data)
        except UserError as e:
            measures.append({"model": model, "not_applicable": ctx.describe_error(e)})
            continue
        measures += s.measures["langvec"]
        sec = sec or s
    sec = sec or Section(title, error="; ".join(f"{m['model']}: {m['not_applicable']}" for m in measures))
    sec.claim_ids, sec.measures = ["langvec"], {"langvec": measures}
    return sec


def _langvec_section(ctx: ReportContext, model: str, title: str, data: BilingualData) -> Section:
    if not has_mlm_head(model):
        raise UserError(f"model {model!r} has no masked-LM head: the shifted hidden states must be decoded into "
                        f"tokens by one (run on a model from `bertology pretrain`)")
    cfg = langvec_preset(ctx, model)
    lres = lv.run(cfg, data, progress=False)
    lv.save(lres, cfg.out)
    return present_langvec(lres, lv.langvec_measures(lres, cfg.seed), cfg.out, title)


def present_langvec(lres: lv.LangvecResult, m: dict, out: Path, title: str) -> Section:
    """The language-vector section of one model's result: the grid figure (drawn in `out`), the best setting
    and the verdict's numbers `m` (langvec.langvec_measures) in words, and the examples."""
    model = lres.model
    lpaths = [langvec_figures(lres, out)]
    b = lres.best
    plain = next(g for g in lres.grid if g["layer"] == b["layer"] and g["alpha"] == 0)
    return Section(
        f"{title} on {model}", claim_ids=["langvec"], measures={"langvec": [{"model": model, **m}]},
        explanation=(f"The mean hidden state of each language (μ_en, μ_zh, per layer) is added as α·(μ_zh − μ_en) at "
                     f"layer L to English Tatoeba sentences; the masked-LM head then fills every position. Scored by "
                     f"token-translation precision against the dictionary (a one-token English word whose output is "
                     f"one of its translations, or a character of one). Best setting L={b['layer']}, α={b['alpha']:g}: "
                     f"precision {b['precision']:.3f} over {b['scored_words']} words, {b['target_script_rate']:.2f} of "
                     f"output tokens Chinese (without the shift: precision {plain['precision']:.3f}, "
                     f"{plain['target_script_rate']:.2f} Chinese). That best cell is chosen on the words it is "
                     f"scored on, so the verdict does not use it: "
                     + (m["not_applicable"] if "not_applicable" in m else
                        f"with (layer, α) chosen on half of the dictionary words ({m['dev_words']} occurrences), the "
                        f"other half ({m['test_words']}) scores {m['precision']:.3f} at L={m['layer']}, "
                        f"α={m['alpha']:g}, against {m['unshifted']:.3f} unshifted and {m['constant']:.3f} for "
                        f"always answering {m['constant_token']!r}, the best constant token on the dev half.")),
        figures=[p for p in lpaths if str(p).endswith(".png")],
        tables=[("Examples at the best setting", [{"English": e["sentence"], "unshifted": " ".join(e["unshifted"]),
                                                   "shifted": " ".join(e["shifted"])} for e in lres.examples])])
