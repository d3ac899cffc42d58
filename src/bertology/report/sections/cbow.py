"""The report's static-baseline sections: a CBOW per demo language against the contextual result."""

from __future__ import annotations

import time
from pathlib import Path

from ...errors import UserError
from ...experiments import cbow, senses
from ...experiments.configs import CbowConfig, SensesConfig
from ...io.sentences import DEMO_SETS
from ...io.storage import corpus_files, load_results
from .. import ReportContext, Section, plots
from ..figures import senses_figures

# (language, the demo sense set its CBOW also trains on, the corpus data set it trains on)
LANGUAGES = [("en", "apple-en", "corpus-en"), ("zh", "apple-zh", "corpus-zh")]


def preset(ctx: ReportContext, lang: str) -> CbowConfig:
    """The report's CBOW for one language: the first 3 shards of its corpus (60k lines in all, --full 600k) and
    the demo sentences, segmented by characters, 5 epochs."""
    _, demo, corpus = next(row for row in LANGUAGES if row[0] == lang)
    files = corpus_files(corpus, ctx.data_dir, max_files=3)
    max_lines = 60_000 if ctx.quick else 600_000
    return CbowConfig(corpus=files, max_lines=max_lines // max(1, len(files)), sentences=demo,
                      target=[DEMO_SETS[demo][1]], segment="char", epochs=5, seed=ctx.seed, out=ctx.out_dir / lang)


def static_preset(cfg: CbowConfig) -> SensesConfig:
    """`bertology senses --static` on the CBOW that `cfg` trains, over the demo sentences it trained with."""
    return SensesConfig(sentences=cfg.sentences, static=cfg.out, seed=cfg.seed, out=cfg.out / "senses")


def report_section(ctx: ReportContext):
    """Train a small CBOW per demo language on the real corpora, and compare with the contextual result."""
    sections = []
    for lang, demo, _ in LANGUAGES:
        target = DEMO_SETS[demo][1]
        t0 = time.perf_counter()
        try:
            cfg = preset(ctx, lang)
            trained = cbow.run(cfg, progress=False)
            static_cfg = static_preset(cfg)
            static = senses.run(static_cfg)
            senses.save(static, static_cfg.out)
            senses_figures(static, static_cfg.out, title=f"{target} — CBOW (static)")
            cbow.save(trained.result, cfg.out, trained.neighbours)
            if not ctx.keep_models:   # the vectors (~10 MB for English) are a model: results and figures only
                (cfg.out / "cbow.bin").unlink(missing_ok=True)
            sec = present(lang, trained, static, cfg, _contextual_results(ctx, demo))
        except UserError as e:
            sec = Section(f"Static baseline: CBOW vectors for {target!r}", error=ctx.describe_error(e))
        sec.seconds = time.perf_counter() - t0
        sections.append(sec)
    return sections


def _contextual_results(ctx: ReportContext, demo: str) -> list[dict]:
    """The senses section's result on each model that ran it (one model: in its folder; several: one folder per
    model)."""
    demo_dir = ctx.out_dir.parent / "senses" / demo
    return [load_results(f, "bertology.senses/")
            for f in [demo_dir / "results.json", *sorted(demo_dir.glob("*/results.json"))] if f.exists()]


def present(lang: str, trained: cbow.CbowRun, static: senses.SensesResult, cfg: CbowConfig,
            contextual: list[dict]) -> Section:
    """The static baseline's section: CBOW's separation (0 by construction) beside the contextual models'."""
    res, target, scores = trained.result, static.target, static.layers[0]
    sec = Section(f"Static baseline: CBOW vectors for {target!r}")
    sec.figures = [plots.static_vs_contextual(static, contextual, Path(cfg.out) / "static_vs_contextual.png")]
    sec.explanation = (
        f"CBOW trained here on {res.sentences:,} lines ({res.tokens:,} tokens, {res.seconds:.0f} s) of "
        f"{', '.join(Path(f).name for f in cfg.corpus)} plus the demo sentences, segmented by characters. Every "
        f"occurrence of {target!r} gets the same vector, so within-sense and between-sense similarity "
        f"are both 1 and the separation is exactly 0, at every 'layer'; the contextual model's "
        f"separation per layer is drawn beside it. The nearest neighbours of {target!r} in CBOW space "
        f"mix whatever contexts the corpus used it in: "
        + ", ".join(f"{w} ({c:.2f})" for w, c in static.neighbours) + ".")
    sec.measures = {"static": {"language": lang, "static_separation": scores.separation}}
    sec.tables = [("CBOW static senses", [{"within": scores.within, "between": scores.between,
                                           "separation": scores.separation, "purity": scores.purity}])]
    return sec

