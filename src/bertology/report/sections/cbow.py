"""The report's static-baseline sections: a CBOW per demo language against the contextual result."""

from __future__ import annotations

import time

from ...errors import UserError
from ...experiments.cbow import corpus_lines, save, train_cbow
from ...experiments.senses import resolve_sentences, static_senses
from ...experiments.senses import save as save_senses
from ...io.storage import find_dataset, load_results
from .. import ReportContext, Section, plots
from ..figures import senses_figures


def report_section(ctx: ReportContext):
    """Train a small CBOW per demo language on the real corpora, and compare with the contextual result."""
    sections = []
    max_lines = 60_000 if ctx.quick else 600_000
    for lang, demo, corpus_name in [("en", "apple-en", "corpus-en"), ("zh", "apple-zh", "corpus-zh")]:
        sents, labels, source, target = resolve_sentences(demo, None)
        sec = Section(f"Static baseline: CBOW vectors for {target!r}")
        t0 = time.perf_counter()
        try:
            corpus_dir = find_dataset(corpus_name, ctx.data_dir)
            files = sorted(corpus_dir.glob("*.txt.gz"))[:3] if corpus_dir.is_dir() else [corpus_dir]
            lines = corpus_lines(files, max_lines // max(1, len(files))) + list(sents)
            res = train_cbow(lines, ctx.out_dir / lang, segment="char", seed=ctx.seed, epochs=5, progress=False)
            static = static_senses(ctx.out_dir / lang, sents, labels, target, seed=ctx.seed, source=source)

            save_senses(static, ctx.out_dir / lang / "senses")
            senses_figures(static, ctx.out_dir / lang / "senses", title=f"{target} — CBOW (static)")
            save(res, ctx.out_dir / lang, {target: static.neighbours})
            if not ctx.keep_models:   # the vectors (~10 MB for English) are a model: results and figures only
                (ctx.out_dir / lang / "cbow.bin").unlink(missing_ok=True)
            # the senses section's result on each model that ran it (one model: in its folder; several: one
            # folder per model)
            demo_dir = ctx.out_dir.parent / "senses" / demo
            contextual = [load_results(f, "bertology.senses/")
                          for f in [demo_dir / "results.json", *sorted(demo_dir.glob("*/results.json"))] if f.exists()]
            sec.figures = [plots.static_vs_contextual(static, contextual, ctx.out_dir / lang / "static_vs_contextual.png")]
            sec.explanation = (
                f"CBOW trained here on {res.sentences:,} lines ({res.tokens:,} tokens, {res.seconds:.0f} s) of "
                f"{', '.join(f.name for f in files)} plus the demo sentences, segmented by characters. Every "
                f"occurrence of {target!r} gets the same vector, so within-sense and between-sense similarity "
                f"are both 1 and the separation is exactly 0, at every 'layer'; the contextual model's "
                f"separation per layer is drawn beside it. The nearest neighbours of {target!r} in CBOW space "
                f"mix whatever contexts the corpus used it in: "
                + ", ".join(f"{w} ({c:.2f})" for w, c in static.neighbours) + ".")
            sec.measures = {"static": {"language": lang, "static_separation": static.layers[0].separation}}
            sec.tables = [("CBOW static senses", [{"within": static.layers[0].within,
                                                   "between": static.layers[0].between,
                                                   "separation": static.layers[0].separation,
                                                   "purity": static.layers[0].purity}])]
        except UserError as e:
            sec.error = ctx.describe_error(e)
        sec.seconds = time.perf_counter() - t0
        sections.append(sec)
    return sections
