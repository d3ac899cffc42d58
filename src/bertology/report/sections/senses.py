"""The report's word-senses sections: the English and the Chinese demo set."""

from __future__ import annotations

import time

from ...core.embed import Embedder
from ...errors import UserError
from ...experiments.senses import resolve_sentences, save, word_senses
from .. import ReportContext, Section, with_fallback
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
            save(res, ctx.out_dir / name)
            sec = Section(title, note, senses_figures(res, ctx.out_dir / name, title=f"{target} — {model}"),
                          [(f"Separation of the senses of {target!r} per layer (best: layer {res.best_layer})",
                            [{"layer": s.layer, "within": s.within, "between": s.between,
                              "separation": s.separation, "silhouette": s.silhouette, "purity": s.purity}
                             for s in res.layers])])
            if name == "apple-zh":    # the lecture's claim is about 果
                best = res.layers[res.best_layer]
                sec.measures = {"senses": {"separation": best.separation, "purity": best.purity,
                                           "layer": res.best_layer, "model": model}}
            return sec
        t0 = time.perf_counter()
        try:
            sections.append(with_fallback(ctx, run))
        except UserError as e:
            sections.append(Section(title, error=ctx.describe_error(e)))
        if name == "apple-zh":
            sections[-1].claim_ids = ["senses"]
        sections[-1].seconds = time.perf_counter() - t0
    return sections
