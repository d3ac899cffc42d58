"""The report's word-senses sections: the English and the Chinese demo set."""

from __future__ import annotations

import time

from ...core.embed import Embedder
from ...errors import UserError
from ...experiments.senses import resolve_sentences, save, word_senses
from .. import ReportContext, Section, model_slug, on_each_model
from ..figures import senses_figures


def report_section(ctx: ReportContext):
    """Two sections: the English demo (apple) and the Chinese demo (果 in 蘋果)."""
    sections = []
    embedders: dict[str, Embedder] = {}    # one per model: the English and Chinese sets share it
    for name, title, note in [
        ("apple-en", "Word senses: 'apple' the fruit vs Apple the company",
         "Each cell is the cosine similarity of two occurrences of <i>apple</i> at the last layer; sentences are "
         "ordered by sense. Two bright blocks on the diagonal mean the model tells the senses apart from context "
         "alone. The line plot shows, per layer, mean within-sense minus between-sense cosine: layer 0 (the "
         "input embedding, before any context) separates little; the separation grows through the layers."),
        ("apple-zh", "Word senses: 果 in 蘋果 (fruit) vs 蘋果 (Apple the company)",
         "The lecture's experiment: 果 in 蘋果 eaten as fruit vs 蘋果 the phone maker."),
    ]:
        sents, labels, source, target = resolve_sentences(name, None)

        def run(model: str) -> Section:
            if model not in embedders:
                embedders[model] = Embedder(model, precision=ctx.precision, trust_remote_code=ctx.trust_remote_code,
                                            progress=False)
            res = word_senses(model, sents, labels, target, seed=ctx.seed, source=source, embedder=embedders[model])
            where = ctx.model_dir(model, name)
            save(res, where)
            sec = Section(title, note, senses_figures(res, where, title=f"{target} — {model}"),
                          [(f"Separation of the senses of {target!r} per layer (best: layer {res.best_layer})",
                            [{"layer": s.layer, "within": s.within, "between": s.between,
                              "separation": s.separation, "silhouette": s.silhouette, "purity": s.purity}
                             for s in res.layers])])
            return sec
        t0 = time.perf_counter()
        try:
            done = on_each_model(ctx, run)
        except UserError as e:
            done = [Section(title, error=ctx.describe_error(e))]
        for sec in done:
            sec.seconds = (time.perf_counter() - t0) / len(done)
        sections += done
    t0 = time.perf_counter()
    sections.append(_study_section(ctx, embedders))
    sections[-1].seconds = time.perf_counter() - t0
    return sections


def _study_section(ctx: ReportContext, embedders: dict[str, Embedder]) -> Section:
    """The verdict's measurement: every position-balanced sense set on every model of the report."""
    from ...experiments.senses import SENSE_STUDY_SCHEMA, sense_study
    from ...io.storage import save_results

    measures, rows, tables = [], [], []
    for model in ctx.models:
        try:
            emb = embedders.get(model) or Embedder(model, precision=ctx.precision,
                                                   trust_remote_code=ctx.trust_remote_code, progress=False)
        except UserError as e:
            measures.append({"model": model, "not_applicable": ctx.describe_error(e)})
            continue
        study = sense_study(model, seed=ctx.seed, embedder=emb)
        save_results(ctx.out_dir / "study" / model_slug(model), SENSE_STUDY_SCHEMA, study.to_json())
        for lang, p in study.pooled.items():
            measures.append({"model": model, "language": lang, **p})
        for st in study.sets:
            na = st.get("not_applicable")    # every row has every column: the table's header comes from row 1
            rows.append({"model": model, "set": st["name"], "target": st["target"],
                         "layer (dev)": "" if na else st["layer"], "separation − layer 0": na or st["effect"],
                         "95% CI": "" if na else f"[{st['ci'][0]:+.3f}, {st['ci'][1]:+.3f}]",
                         **{k: "" if na else st[f] for k, f in (("purity", "purity"), ("layer 0 purity", "layer0_purity"),
                                                               ("position purity", "position_purity"))}})
    tables.append(("Every sense set, measured on the test half of its sentences", rows))
    return Section(
        "Word senses on position-balanced sets: the verdict's measurement",
        "Four ambiguous targets per language (果 in 蘋果, 打, 花, 意思 in Traditional and Simplified; apple, bank, "
        "bat, spring), 16 sentences per sense, with both senses sentence-initial in half of their sentences "
        "(demo/senses/README.md), so position cannot stand in for sense. Per set the layer is chosen on a dev "
        "half of the sentences and every number is measured on the other half: separation at that layer minus "
        "separation at layer 0 (the input embeddings: the word and its position, no context), with a bootstrap "
        "95% CI over sentences; the 2-means purity of the vectors; and the purity that position alone gives.",
        tables=tables, claim_ids=["senses"], measures={"senses": measures})


