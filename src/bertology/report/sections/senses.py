"""The report's word-senses sections: the English and the Chinese demo set, and the verdict's sense study."""

from __future__ import annotations

import time

from ...core.embed import Embedder
from ...errors import UserError
from ...experiments import senses
from ...experiments.configs import SensesConfig
from ...io.storage import save_results
from .. import ReportContext, Section, model_slug, on_each_model
from ..figures import senses_figures

# (built-in sentence set, section title, what to look at)
DEMOS = [
    ("apple-en", "Word senses: 'apple' the fruit vs Apple the company",
     "Each cell is the cosine similarity of two occurrences of <i>apple</i> at the last layer; sentences are "
     "ordered by sense. Two bright blocks on the diagonal mean the model tells the senses apart from context "
     "alone. The line plot shows, per layer, mean within-sense minus between-sense cosine: layer 0 (the "
     "input embedding, before any context) separates little; the separation grows through the layers."),
    ("apple-zh", "Word senses: 果 in 蘋果 (fruit) vs 蘋果 (Apple the company)",
     "The lecture's experiment: 果 in 蘋果 eaten as fruit vs 蘋果 the phone maker."),
]


def preset(ctx: ReportContext, model: str, sentences: str) -> SensesConfig:
    """`bertology senses` at the report's settings: one demo set on one model, its target the set's own."""
    return SensesConfig(model=model, sentences=sentences, precision=ctx.precision, seed=ctx.seed,
                        trust_remote_code=ctx.trust_remote_code, out=ctx.model_dir(model, sentences))


def report_section(ctx: ReportContext):
    """Two sections: the English demo (apple) and the Chinese demo (果 in 蘋果); then the sense study."""
    sections = []
    embedders: dict[str, Embedder] = {}    # one per model: the English and Chinese sets and the study share it

    def embedder(model: str) -> Embedder:
        if model not in embedders:
            embedders[model] = senses.load_embedder(preset(ctx, model, DEMOS[0][0]), progress=False)
        return embedders[model]

    for name, title, note in DEMOS:
        def run(model: str) -> Section:
            cfg = preset(ctx, model, name)
            res = senses.run(cfg, embedder=embedder(model))
            senses.save(res, cfg.out)
            return present(res, cfg, title, note)
        t0 = time.perf_counter()
        try:
            done = on_each_model(ctx, run)
        except UserError as e:
            done = [Section(title, error=ctx.describe_error(e))]
        for sec in done:
            sec.seconds = (time.perf_counter() - t0) / len(done)
        sections += done
    t0 = time.perf_counter()
    sections.append(_study_section(ctx, embedder))
    sections[-1].seconds = time.perf_counter() - t0
    return sections


def present(res: senses.SensesResult, cfg: SensesConfig, title: str, note: str) -> Section:
    """A demo set's section: the heatmap and per-layer separation figures, and the scores of every layer."""
    return Section(title, note, senses_figures(res, cfg.out, title=f"{res.target} — {cfg.model}"),
                   [(f"Separation of the senses of {res.target!r} per layer (best: layer {res.best_layer})",
                     [{"layer": s.layer, "within": s.within, "between": s.between,
                       "separation": s.separation, "silhouette": s.silhouette, "purity": s.purity}
                      for s in res.layers])])


def _study_section(ctx: ReportContext, embedder) -> Section:
    """The verdict's measurement: every position-balanced sense set on every model of the report."""
    studies = []
    for model in ctx.models:
        try:
            emb = embedder(model)
        except UserError as e:
            studies.append((model, ctx.describe_error(e)))
            continue
        study = senses.sense_study(model, seed=ctx.seed, embedder=emb)
        save_results(ctx.out_dir / "study" / model_slug(model), senses.SENSE_STUDY_SCHEMA, study.to_json())
        studies.append((model, study))
    return present_study(studies)


def present_study(studies: list[tuple[str, senses.SenseStudy | str]]) -> Section:
    """The study's section from (model, its study, or why it could not run) per model."""
    measures, rows = [], []
    for model, study in studies:
        if isinstance(study, str):
            measures.append({"model": model, "not_applicable": study})
            continue
        for lang, p in study.pooled.items():
            measures.append({"model": model, "language": lang, **p})
        for st in study.sets:
            na = st.get("not_applicable")    # every row has every column: the table's header comes from row 1
            rows.append({"model": model, "set": st["name"], "target": st["target"],
                         "layer (dev)": "" if na else st["layer"], "separation − layer 0": na or st["effect"],
                         "95% CI": "" if na else f"[{st['ci'][0]:+.3f}, {st['ci'][1]:+.3f}]",
                         **{k: "" if na else st[f] for k, f in (("purity", "purity"), ("layer 0 purity", "layer0_purity"),
                                                               ("position purity", "position_purity"))}})
    return Section(
        "Word senses on position-balanced sets: the verdict's measurement",
        "Four ambiguous targets per language (果 in 蘋果, 打, 花, 意思 in Traditional and Simplified; apple, bank, "
        "bat, spring), 16 sentences per sense, with both senses sentence-initial in half of their sentences "
        "(demo/senses/README.md), so position cannot stand in for sense. Per set the layer is chosen on a dev "
        "half of the sentences and every number is measured on the other half: separation at that layer minus "
        "separation at layer 0 (the input embeddings: the word and its position, no context), with a bootstrap "
        "95% CI over sentences; the 2-means purity of the vectors; and the purity that position alone gives.",
        tables=[("Every sense set, measured on the test half of its sentences", rows)], claim_ids=["senses"],
        measures={"senses": measures})
