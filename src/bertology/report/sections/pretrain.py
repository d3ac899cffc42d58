"""The report's masked-LM section: fill in the blank."""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ...core.models import has_mlm_head
from ...errors import UserError
from ...experiments import mlm
from ...experiments.configs import FillMaskConfig
from ...experiments.mlm import fill_mask
from ...io.storage import corpus_files, save_results
from .. import ReportContext, Section, on_each_model
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
    measures, corpora = [], None
    for model in ctx.models:
        if not has_mlm_head(model):
            measures.append({"model": model, "not_applicable": "no masked-LM head: it cannot fill in blanks"})
            continue
        corpora = corpora or _ngram_corpora(ctx)
        m, rows = _item_set_measures(ctx, model, corpora)
        measures.append(m)
        if rows:
            sec.tables.append((f"The verdict's item set on {model} (top-1; scorable items only)", rows))
    sec.claim_ids, sec.measures = ["fillmask"], {"fillmask": measures}
    return sec if len(secs) == 1 else secs


def _ngram_corpora(ctx: ReportContext) -> dict[str, list[str]]:
    return _corpus_sample(ctx.data_dir, 20_000 if ctx.quick else 200_000)


@functools.lru_cache(maxsize=2)
def _corpus_sample(data_dir: str | None, n: int) -> dict[str, list[str]]:
    """Pretraining-corpus lines for the unigram / bigram baselines: English, and Chinese in both scripts (the
    corpus is Simplified; the items are in both). Read once per process: every model of the report shares it."""
    import opencc

    from ...experiments.cbow import corpus_lines

    out = {}
    for lang in ("en", "zh"):
        files = corpus_files(f"corpus-{lang}", data_dir)
        out[lang] = corpus_lines(files, n // len(files))
    cc = opencc.OpenCC("s2t")
    out["zh"] += [cc.convert(line) for line in out["zh"]]
    return out


def _item_set_measures(ctx: ReportContext, model: str, corpora) -> tuple[dict, list[dict]]:
    """Top-1 on the cloze item set (zh in Traditional and Simplified, en) against the n-gram predictors."""
    import opencc

    from ...core.models import load_tokenizer
    from ...experiments.cloze import ClozeItem, cloze_accuracy, ngram_hits, read_cloze_items
    from ...metrics import paired_difference

    items = read_cloze_items("cloze-items")
    cc = opencc.OpenCC("t2s")
    items += [ClozeItem("zh", cc.convert(it.sentence), cc.convert(it.answer)) for it in items if it.lang == "zh"]
    res = cloze_accuracy(model, items, precision=ctx.precision, trust_remote_code=ctx.trust_remote_code)
    keep = [i for i, r in enumerate(res.items) if r["scorable"]]
    if not keep:
        return {"model": model, "not_applicable": f"none of the {len(items)} items' answers is a single token of "
                                                  f"its vocabulary"}, []
    base = ngram_hits(load_tokenizer(model, ctx.trust_remote_code), [items[i] for i in keep], corpora)
    model_hits = np.array([res.items[i]["hit1"] for i in keep], dtype=float)
    best = max(base, key=lambda k: np.mean(base[k]))
    diff = paired_difference(model_hits, np.array(base[best], dtype=float))
    rows = [{"lang": lang, "items": int(sum(res.items[i]["lang"] == lang for i in keep)),
             "model": float(np.mean([res.items[i]["hit1"] for i in keep if res.items[i]["lang"] == lang])),
             **{k: float(np.mean([h for h, i in zip(v, keep) if res.items[i]["lang"] == lang])) for k, v in base.items()}}
            for lang in ("zh", "en") if any(res.items[i]["lang"] == lang for i in keep)]
    tok = load_tokenizer(model, ctx.trust_remote_code)
    lecture = fill_mask(model, [REPORT_SENTENCES[0].replace("[MASK]", tok.mask_token)], top_k=5,
                        precision=ctx.precision, trust_remote_code=ctx.trust_remote_code).items[0]["masks"][0]
    rank = next((i for i, c in enumerate(lecture["candidates"], 1) if c["token"] == "果"), None)
    return {"model": model, "top1": float(model_hits.mean()), "items": len(keep), "lecture_rank": rank,
            "unscorable": len(items) - len(keep), "unigram": float(np.mean(base["unigram"])),
            "bigram": float(np.mean(base["bigram"])), "ci": diff["ci"], "effect": diff["mean"]}, rows


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
