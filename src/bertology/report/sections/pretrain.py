"""The report's masked-LM section: fill in the blank."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ...core.models import has_mlm_head
from ...errors import UserError
from ...experiments.pretrain import FILL_MASK_SCHEMA, fill_mask
from ...io.storage import save_results
from .. import ReportContext, Section, with_fallback
from ..figures import fill_mask_figures


# The lecture's example (Traditional), its Simplified form (most of our Chinese text is Simplified), and a few
# blanks with one obvious answer in each language.
REPORT_SENTENCES = ["今天買了蘋[MASK]來吃", "今天买了苹[MASK]来吃", "中国的首都是北[MASK]。",
                    "the capital of france is [MASK].", "i went to the [MASK] to buy some bread."]


def report_section(ctx: ReportContext):
    """Fill-in-the-blank examples for the report; a model without an MLM head hands over to the fallback
    model, or gets the reason instead."""
    try:
        return with_fallback(ctx, lambda model: _fill_mask_section(ctx, model))
    except UserError as e:
        return Section("Masked-LM: fill in the blank", error=ctx.describe_error(e), claim_ids=["fillmask"])


def _fill_mask_section(ctx: ReportContext, model: str) -> Section:
    if not has_mlm_head(model):
        raise UserError(f"model {model!r} has no masked-LM head (its checkpoint holds no weights of its "
                        f"*ForMaskedLM head), so it cannot fill in blanks; pretrain one with `bertology pretrain` "
                        f"and pass its OUT/model directory")
    texts = REPORT_SENTENCES
    res = fill_mask(model, texts, top_k=5, precision=ctx.precision, trust_remote_code=ctx.trust_remote_code)
    save_results(ctx.out_dir, FILL_MASK_SCHEMA, asdict(res))
    fig = fill_mask_figures(res, Path(ctx.out_dir))
    rows = [{"text": it["text"], "mask": j + 1,
             "top-5": ", ".join(f"{c['token']} ({c['prob']:.2f})" for c in m["candidates"])}
            for it in res.items for j, m in enumerate(it["masks"])]
    lecture = [(c["token"], c["prob"]) for c in res.items[0]["masks"][0]["candidates"]]
    rank = next((i for i, (t, _) in enumerate(lecture, 1) if t == "果"), None)
    return Section(title="Masked-LM: fill in the blank", claim_ids=["fillmask"],
                   measures={"fillmask": {"top5": lecture, "rank": rank, "model": model}},
                   explanation="BERT's pretraining task: predict the hidden token from both sides of its context. "
                               "Each row shows the model's five most probable tokens for a [MASK] and their "
                               "probabilities; a model that learnt the language puts the obvious word first "
                               "with most of the probability mass.",
                   figures=[fig], tables=[("Top-5 candidates per [MASK]", rows)])
