"""The figures of each experiment's result: one function per experiment, used by the CLI (next to
results.json) and by the report's sections. Experiments compute; drawing lives here and in `plots`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..experiments.qa import LECTURE_DRCD_F1
from . import plots


def senses_figures(result, out_dir: str | Path, title: str | None = None) -> list[Path]:
    """Similarity heatmap; separation per layer (a static model has one 'layer', so no curve)."""
    out_dir = Path(out_dir)
    figs = [plots.similarity_heatmap(result, out_dir / "similarity.png", title=title)]
    if not result.static:
        figs.append(plots.separation_per_layer(result, out_dir / "separation.png", title=title))
    return figs


def pretrain_figures(train_log: list[dict], history: list[dict], out_dir: str | Path) -> Path:
    return plots.plot_pretrain_curves(train_log, history, Path(out_dir) / "loss_curve.png")


def fill_mask_figures(result, out_dir: str | Path) -> Path:
    return plots.plot_fill_mask(result.items, Path(out_dir) / "fill_mask.png")


def crossdomain_figures(result, out_dir: str | Path) -> list[Path]:
    """Bars per condition and learning curves; their paths are recorded in `result.figures` (results.json
    lists them), so draw before saving."""
    out = Path(out_dir)
    title = f"{result.task} · {Path(result.model).name}"
    figs = [plots.plot_condition_bars(result.summary, out / "conditions.png", title=title,
                                      majority=result.majority_accuracy.get("test"))]
    if any(len(r.dev_curve) >= 2 for r in result.runs):   # one epoch is a number (the section says it), not a curve
        figs.append(plots.plot_learning_curves([asdict(r) for r in result.runs], out / "learning_curves.png",
                                               title=title, majority=result.majority_accuracy.get("dev")))
    result.figures = [str(f) for f in figs]
    return figs


def qa_figures(result, out_dir: str | Path, title: str | None = None) -> list[Path]:
    """Scores per eval set (with the lecture's DRCD numbers beside a cross-lingual run) and the training
    curve, where they apply."""
    out_dir = Path(out_dir)
    figs = []
    if result.scores and result.command != "score":
        figs.append(plots.plot_qa_scores(result.scores, LECTURE_DRCD_F1 if result.command == "crosslingual" else None,
                                         out_dir / "qa_scores.png",
                                         title=title or f"{Path(str(result.model)).name}: extractive QA"))
    if result.train is not None and len(result.train.train_log) >= 2:   # a line needs two points
        figs.append(plots.plot_qa_training(result.train, out_dir / "qa_training.png"))
    return figs


def align_figures(result, out_dir: str | Path) -> Path:
    return plots.plot_alignment_mrr(result, Path(out_dir) / "mrr_per_layer.png")


def langvec_figures(result, out_dir: str | Path) -> Path:
    return plots.plot_langvec(result, Path(out_dir) / "langvec_grid.png")


def data_scale_figures(result, out_dir: str | Path) -> Path:
    """The comparison figure, and each run's own loss curve in its directory (as `pretrain` draws it)."""
    out_dir = Path(out_dir)
    for run in result.runs:
        pretrain_figures(run.train_log, run.history, out_dir / f"n{run.sentences_per_lang}")
    return plots.plot_data_scale(result, out_dir / "data_scale.png")
