"""The report's masked-LM section: fill in the blank, and the verdict's cloze item-set measurement."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ...core.models import has_mlm_head
from ...errors import UserError
from ...experiments import cloze, mlm
from ...experiments.configs import ClozeConfig, FillMaskConfig
from ...io.storage import save_results
from .. import ReportContext, Section, model_slug, on_each_model
from ..figures import fill_mask_figures


# The lecture's example (Traditional), its Simplified form (most of our Chinese text is Simplified), and a few
# blanks with one obvious answer in each language.
REPORT_SENTENCES = ["今天買了蘋[MASK]來吃", "今天买了苹[MASK]来吃", "中国的首都是北[MASK]。",
                    "the capital of france is [MASK].", "i went to the [MASK] to buy some bread."]


def report_section(ctx: ReportContext):
    """Fill-in-the-blank examples for the report (a model without an MLM head hands over to the fallback
    model), and the verdict's item-set measurement on every model of the report with an MLM head."""
    try:
        secs = on_each_model(ctx, lambda model: _fill_mask_section(ctx, model))
    except UserError as e:
        secs = [Section("Masked-LM: fill in the blank", error=ctx.describe_error(e))]
    sec = secs[0]       # carries the verdict's item sets of every model
    measures = []
    for model in ctx.models:
        if not has_mlm_head(model):
            measures.append({"model": model, "not_applicable": "no masked-LM head: it cannot fill in blanks"})
            continue
        cfg = cloze_preset(ctx, model)
        res = cloze.run(cfg)
        cloze.save(res, cfg.out)
        m, table = present_cloze(res)
        measures.append(m)
        if table:
            sec.tables.append(table)
    sec.claim_ids, sec.measures = ["fillmask"], {"fillmask": measures}
    return sec if len(secs) == 1 else secs


def cloze_preset(ctx: ReportContext, model: str) -> ClozeConfig:
    """`bertology cloze --baselines` at the report's settings: the verdict's item set with its Chinese items in
    both scripts, the n-gram baselines counted on 20,000 corpus lines a language (200,000 with --full; the
    corpus lines are read once and shared by the report's models)."""
    return ClozeConfig(model=model, items="cloze-items", add_simplified=True, baselines=True,
                       baseline_lines=20_000 if ctx.quick else 200_000, data_dir=ctx.data_dir,
                       precision=ctx.precision, trust_remote_code=ctx.trust_remote_code,
                       out=ctx.out_dir / "cloze" / model_slug(model))


def present_cloze(res: cloze.ClozeResult) -> tuple[dict, tuple[str, list[dict]] | None]:
    """The verdict's measures of one model (claims.py's `fillmask` rule reads them), and its per-language table
    of top-1 against the n-gram predictors (None when no item is scorable)."""
    b = res.baselines
    if "not_applicable" in b:
        return {"model": res.model, "not_applicable": b["not_applicable"]}, None
    measures = {"model": res.model, "top1": b["top1"], "items": b["items"], "lecture_rank": res.lecture["rank"],
                "unscorable": b["unscorable"], "unigram": b["unigram"], "bigram": b["bigram"], "ci": b["ci"],
                "effect": b["effect"]}
    return measures, (f"The verdict's item set on {res.model} (top-1; scorable items only)", b["per_language"])


def preset(ctx: ReportContext, model: str) -> FillMaskConfig:
    """`bertology fill-mask` at the report's settings: the report's sentences, the top 5 of each blank."""
    return FillMaskConfig(model=model, texts=REPORT_SENTENCES, top_k=5, precision=ctx.precision,
                          trust_remote_code=ctx.trust_remote_code, out=ctx.model_dir(model))


def _fill_mask_section(ctx: ReportContext, model: str) -> Section:
    if not has_mlm_head(model):
        raise UserError(f"model {model!r} has no masked-LM head (its checkpoint holds no weights of its "
                        f"*ForMaskedLM head), so it cannot fill in blanks; pretrain one with `bertology pretrain` "
                        f"and pass its OUT/model directory")
    cfg = preset(ctx, model)
    res = mlm.run(cfg)
    save_results(cfg.out, mlm.FILL_MASK_SCHEMA, asdict(res))
    return present(res, fill_mask_figures(res, cfg.out))


def present(res: mlm.FillMaskResult, figure: Path) -> Section:
    """The fill-in-the-blank section: the top-5 candidates of every [MASK] and their probabilities."""
    rows = [{"text": it["text"], "mask": j + 1,
             "top-5": ", ".join(f"{c['token']} ({c['prob']:.2f})" for c in m["candidates"])}
            for it in res.items for j, m in enumerate(it["masks"])]
    return Section(title="Masked-LM: fill in the blank",
                   explanation="BERT's pretraining task: predict the hidden token from both sides of its context. "
                               "Each row shows the model's five most probable tokens for a [MASK] and their "
                               "probabilities; a model that learnt the language puts the obvious word first "
                               "with most of the probability mass.",
                   figures=[figure], tables=[("Top-5 candidates per [MASK]", rows)])
