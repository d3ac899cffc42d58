"""Every figure the toolkit draws. Computation lives in the experiment modules; these functions only draw
result objects / plain arrays and save PNGs (atomically). Chinese renders with the Noto Sans CJK font that
the `mplfonts` package ships (no system font needed)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io.storage import atomic_write_bytes  # noqa: E402

_FONT_READY = False
_FONT_WARNED = False
# What went wrong while drawing (a missing CJK font, a glyph the font lacks), in the order first seen. Recorded
# here instead of printed: matplotlib's warnings would otherwise fill stderr; the report lists them in its
# results.json ("figure_warnings").
FIGURE_WARNINGS: list[str] = []


def _note(message: str) -> None:
    if message not in FIGURE_WARNINGS:
        FIGURE_WARNINGS.append(message)


def use_cjk_font() -> str | None:
    """Register Noto Sans CJK (from mplfonts) and put it first in the sans-serif list. Returns its name, or None
    (with a RuntimeWarning, once per process) when the font is missing."""
    global _FONT_READY, _FONT_WARNED
    from matplotlib import font_manager

    name = None
    try:
        import mplfonts

        font = Path(mplfonts.__file__).parent / "fonts" / "NotoSansCJKsc-Regular.otf"
        if font.exists():
            font_manager.fontManager.addfont(str(font))
            name = font_manager.FontProperties(fname=str(font)).get_name()
    except ImportError:
        pass
    if not name and not _FONT_WARNED:
        import warnings

        _FONT_WARNED = True
        message = ("no CJK font (the mplfonts package with NotoSansCJKsc-Regular.otf): Chinese text in the "
                   "figures will render as empty boxes; `pip install mplfonts`")
        _note(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    if name and not _FONT_READY:
        plt.rcParams["font.sans-serif"] = [name, "DejaVu Sans"] + list(plt.rcParams["font.sans-serif"])
        plt.rcParams["font.family"] = "sans-serif"
        plt.rcParams["axes.unicode_minus"] = False
        _FONT_READY = True
    return name


# The report shows a figure at its natural size up to its text column (body max-width 60rem = 960 px), scaled
# down beyond: figures whose labels matter stay within it, drawn at LABEL_PT (at save_figure's 120 dpi: 13 px).
PAGE_WIDTH_PX = 960
DPI = 120
MIN_LABEL_PX = 10
LABEL_PT = 8
HEATMAP_SIDE_IN = 4.6


def save_figure(fig, path: str | Path, dpi: int = DPI) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:   # glyph and layout warnings are drawn at save time
        warnings.simplefilter("always")
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    for w in caught:
        _note(f"{Path(path).name}: {w.message}")
    return atomic_write_bytes(path, buf.getvalue())


def new_figure(width: float = 6.4, height: float = 4.0):
    use_cjk_font()
    return plt.subplots(figsize=(width, height))


# ==== word senses, CBOW =======================================================================================
def _short(text: str, n: int = 22) -> str:
    """At most n columns of text, a CJK character counting two (it is drawn about twice as wide)."""
    import unicodedata

    widths = [2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text]
    if sum(widths) <= n:
        return text
    kept, used = 0, 0
    while used + widths[kept] <= n - 1:         # room for the ellipsis
        used += widths[kept]
        kept += 1
    return text[:kept] + "…"


def heatmap_labels(labels: list[str], sentences: list[str]) -> tuple[list[float], list[str], bool]:
    """(tick positions, tick labels, one per row?) for a heatmap of rows in this label order: a numbered
    sentence per row while a row of the HEATMAP_SIDE_IN square is tall enough for a LABEL_PT line, else one
    label per sense block, at its centre, with its count."""
    rows = len(labels)
    if HEATMAP_SIDE_IN * 72 / max(rows, 1) >= LABEL_PT * 1.2:
        return list(range(rows)), [f"{k + 1}. {t}" for k, t in enumerate(sentences)], True
    starts = [k for k in range(rows) if k == 0 or labels[k] != labels[k - 1]]
    ends = starts[1:] + [rows]
    return ([(a + b - 1) / 2 for a, b in zip(starts, ends)],
            [f"{labels[a] or '(no label)'} ({b - a})" for a, b in zip(starts, ends)], False)


def similarity_heatmap(result, path, title: str | None = None) -> Path:
    """Cosine similarity of every pair of occurrences, ordered by label, sentences as tick labels."""
    occ = result.occurrences
    sim = result.similarity
    # At most MAX_HEATMAP occurrences (a seeded sample stratified by label; when the figure grew 0.28 inch per
    # occurrence, 400 drew an 11,079 x 10,131 px PNG). Older results carry only the full matrix.
    heat = sim.get("heatmap") or {"occurrences": list(range(len(occ))), "sampled": False}
    shown = heat["occurrences"]
    if heat.get("matrix") is not None:
        m_shown = np.asarray(heat["matrix"])
    else:
        m_shown = np.asarray(sim["matrix"])[np.ix_(shown, shown)]
    pos = sorted(range(len(shown)), key=lambda j: (occ[shown[j]]["label"], shown[j]))
    order = [shown[j] for j in pos]
    m = m_shown[np.ix_(pos, pos)]
    seen: dict[int, int] = {}
    ticks = []
    for i in order:
        s = occ[i]["sentence"]
        seen[s] = seen.get(s, 0) + 1
        tag = f"[{occ[i]['label']}] " if occ[i]["label"] else ""
        ticks.append(tag + _short(result.sentences[s], 28) + (f" #{seen[s]}" if seen[s] > 1 else ""))
    # The figure fits the report's text column at its natural size (PAGE_WIDTH_PX), so its labels are shown at the
    # size drawn, LABEL_PT (>= MIN_LABEL_PX on the page): a fixed square for the cells, a label per sentence while
    # a row is tall enough to hold one, else one label per sense block.
    rows = len(order)
    fig, ax = new_figure(HEATMAP_SIDE_IN + 1.2, HEATMAP_SIDE_IN + 0.6)
    # pcolormesh, not imshow: imshow resamples to the output size in float64 RGBA (~1 GB for 200 rows when a row
    # was 0.28 inch), a mesh draws one quad per cell; cells centred on the ticks as imshow's
    edges = np.arange(rows + 1) - 0.5
    im = ax.pcolormesh(edges, edges, m, cmap="viridis", vmin=min(0.0, float(m.min())), vmax=1.0)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(edges[-1], edges[0])          # first row at the top, as an image
    ax.set_aspect("equal")
    positions, names, per_row = heatmap_labels([occ[i]["label"] for i in order], ticks)
    ax.set_yticks(positions, names, fontsize=LABEL_PT)
    ax.set_xticks(positions, [str(k + 1) for k in positions] if per_row else names, fontsize=LABEL_PT,
                  rotation=90 if per_row else 0)
    labels = [occ[i]["label"] for i in order]
    for k in range(1, len(labels)):           # lines between the label blocks
        if labels[k] != labels[k - 1]:
            ax.axhline(k - 0.5, color="white", lw=1.5)
            ax.axvline(k - 0.5, color="white", lw=1.5)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("cosine similarity", fontsize=LABEL_PT)
    bar.ax.tick_params(labelsize=LABEL_PT)
    layer = "static" if result.static else f"layer {result.similarity['layer']}"
    sampled = (f"\n({len(shown)} of {len(occ)} occurrences: a seeded sample, stratified by label)"
               if heat.get("sampled") else "")
    ax.set_title(f"{title or result.target}: {layer}{sampled}", fontsize=LABEL_PT + 1)
    return save_figure(fig, path)


def separation_per_layer(result, path, title: str | None = None) -> Path:
    """Within-sense and between-sense mean cosine, and their difference, at every layer."""
    layers = [s.layer for s in result.layers]
    fig, ax = new_figure(6.4, 4.0)
    for key, style in (("within", "-o"), ("between", "-s"), ("separation", "-^")):
        vals = [getattr(s, key) for s in result.layers]
        if any(v is not None for v in vals):
            ax.plot(layers, [np.nan if v is None else v for v in vals], style, label=key)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("layer (0 = embedding output)")
    ax.set_ylabel("mean cosine")
    ax.set_xticks(layers)
    ax.legend()
    ax.set_title(f"{title or result.target}: how well the senses separate")
    return save_figure(fig, path)


def static_vs_contextual(static, contextual: dict | list[dict] | None, path) -> Path:
    """Separation per layer of each contextual model (a senses results.json; one or several) next to the static
    CBOW baseline (always 0)."""
    fig, ax = new_figure(6.4, 4.0)
    runs = [contextual] if isinstance(contextual, dict) else list(contextual or [])
    for i, run in enumerate(runs):
        layers = [l["layer"] for l in run["layers"]]
        ax.plot(layers, [np.nan if l["separation"] is None else l["separation"] for l in run["layers"]],
                "-o", color=f"C{i}", label=f"contextual ({_short(str(run['model']), 30)})")
        ax.set_xticks(layers)
    sep = static.layers[0].separation
    ax.axhline(0.0 if sep is None else sep, color="C3", ls="--", label="CBOW (static): every occurrence identical")
    ax.set_xlabel("layer")
    ax.set_ylabel("separation (within − between cosine)")
    ax.legend()
    ax.set_title(f"{static.target}: contextual vs static")
    return save_figure(fig, path)

# ==== pretraining =============================================================================================
def plot_pretrain_curves(train_log: list[dict], history: list[dict], path: str | Path) -> Path:
    """Masked-LM loss over steps: training loss (every log interval), held-out loss, and held-out
    masked-token accuracy (right axis), with the sense probe's purity and separation when tracked."""
    fig, ax = new_figure(7, 4)
    by_step = {e["step"]: e for e in train_log}          # a resumed run may log a step twice: keep the last
    steps = sorted(by_step)
    ax.plot(steps, [by_step[s]["loss"] for s in steps], lw=1, alpha=0.7, label="train loss")
    ev = sorted({h["step"]: h for h in history if h.get("eval_loss") is not None}.values(), key=lambda h: h["step"])
    if ev:
        ax.plot([h["step"] for h in ev], [h["eval_loss"] for h in ev], "o-", label="held-out loss")
        ax2 = ax.twinx()
        ax2.plot([h["step"] for h in ev], [h["eval_acc"] for h in ev], "s--", color="tab:green",
                 label="held-out masked-token accuracy")
        senses = [h for h in ev if h.get("sense_separation") is not None]      # pretrain --track-senses
        if senses:
            ax2.plot([h["step"] for h in senses], [h["sense_purity"] for h in senses], "^-", color="tab:purple",
                     label="sense 2-means purity (best layer)")
            ax2.plot([h["step"] for h in senses], [h["sense_separation"] for h in senses], "v:",
                     color="tab:purple", label="sense separation (best layer)")
        ax2.set_ylabel("masked-token accuracy" + (", sense purity / separation" if senses else ""))
        ax2.set_ylim(0, 1)
        ax2.legend(loc="center right", fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("masked-LM loss (nats / masked token)")
    ax.set_title("Masked-LM pretraining")
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)


def plot_fill_mask(items: list[dict], path: str | Path) -> Path:
    """One horizontal bar chart per [MASK]: the top-k tokens and their probabilities."""
    panels = [(it["text"], m) for it in items for m in it["masks"]]
    use_cjk_font()
    fig, axes = plt.subplots(len(panels), 1, figsize=(6, 1.6 * max(1, len(panels))), squeeze=False)
    for ax, (text, m) in zip(axes[:, 0], panels):
        cands = m["candidates"][::-1]
        ax.barh([c["token"] for c in cands], [c["prob"] for c in cands], color="tab:blue")
        ax.set_xlim(0, 1)
        ax.set_title(text, fontsize=9)
    axes[-1, 0].set_xlabel("probability")
    fig.tight_layout()
    return save_figure(fig, path)


# ==== cross-disciplinary transfer =============================================================================
# The lecture's colours: pretrained red, scratch blue; the controls in greys/greens.
_CONDITION_COLOURS = {"pretrained": "#d62728", "scratch": "#1f77b4", "rand-embed": "#ff9896",
                      "shuffled": "#7f7f7f", "frozen": "#2ca02c", "composition": "#bcbd22"}


def plot_condition_bars(summary: dict, path, title: str = "", majority: float | None = None) -> Path:
    """Test accuracy and macro-F1 per condition: mean over seeds, error bars = std over seeds."""
    conds = list(summary)
    fig, ax = new_figure(1.2 + 1.1 * len(conds), 3.6)
    x = np.arange(len(conds))
    for off, metric, hatch in ((-0.2, "accuracy", None), (0.2, "macro_f1", "//")):
        means = [summary[c][f"{metric}_mean"] for c in conds]
        stds = [summary[c][f"{metric}_std"] for c in conds]
        ax.bar(x + off, means, 0.38, yerr=stds, capsize=3, hatch=hatch, edgecolor="white",
               color=[_CONDITION_COLOURS.get(c, "#9467bd") for c in conds],
               label="accuracy" if metric == "accuracy" else "macro-F1 (hatched)")
        for xi, m in zip(x + off, means):
            ax.text(xi, m + 0.01, f"{m:.2f}", ha="center", va="bottom", fontsize=7)
    if majority is not None:
        ax.axhline(majority, color="black", ls=":", lw=1, label=f"majority class accuracy ({majority:.2f})")
    ax.set_xticks(x, [f"{c}\n(n={summary[c]['n']})" for c in conds])
    lo = min(min(summary[c]["accuracy_mean"], summary[c]["macro_f1_mean"]) for c in conds)
    ax.set_ylim(max(0.0, lo - 0.15), 1.05)
    ax.set_ylabel("test score (mean ± std over seeds)")
    ax.set_title(title or "cross-disciplinary transfer")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path)


def plot_learning_curves(runs: list[dict], path, title: str = "", majority: float | None = None) -> Path:
    """Dev accuracy after each epoch: one thin line per seed, a thick line for the mean per condition."""
    fig, ax = new_figure(6.4, 3.8)
    by_cond: dict[str, list[dict]] = {}
    for r in runs:
        if r["dev_curve"]:
            by_cond.setdefault(r["condition"], []).append(r)
    for cond, rs in by_cond.items():
        colour = _CONDITION_COLOURS.get(cond, "#9467bd")
        for r in rs:
            ax.plot([p["epoch"] for p in r["dev_curve"]], [p["accuracy"] for p in r["dev_curve"]],
                    color=colour, alpha=0.3, lw=0.8)
        n = min(len(r["dev_curve"]) for r in rs)   # early stopping: average over the epochs every seed ran
        ax.plot([rs[0]["dev_curve"][i]["epoch"] for i in range(n)],
                [np.mean([r["dev_curve"][i]["accuracy"] for r in rs]) for i in range(n)],
                color=colour, lw=2, marker="o", ms=3, label=cond)
    if majority is not None:
        ax.axhline(majority, color="black", ls=":", lw=1, label="majority class")
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev accuracy")
    ax.set_title(title or "learning curves")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


# ==== question answering ======================================================================================
def plot_qa_scores(scores, reference: dict[str, float] | None, path, title: str = "") -> Path:
    """Horizontal bars: EM and F1 of each eval set of this run (qa.QAScore objects); the lecture's DRCD F1 table,
    a different data set, on its own axis beside it (grey), for scale only."""
    rows = [(sc.name, sc.exact_match, sc.f1) for sc in scores]
    refs = list((reference or {}).items())
    use_cjk_font()
    heights = [max(len(rows), 1) + 0.6] + ([len(refs) + 0.6] if refs else [])
    fig, axes = plt.subplots(len(heights), 1, figsize=(7.5, 0.5 * sum(heights) + 1.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    ax = axes[0, 0]
    y = np.arange(len(rows))[::-1]
    for k, (name, em, f1) in enumerate(rows):
        ax.barh(y[k] + 0.18, f1 or 0, height=0.36, color="tab:blue", label="F1" if k == 0 else None)
        ax.barh(y[k] - 0.18, em or 0, height=0.36, color="tab:orange", label="EM" if k == 0 else None)
        ax.text((f1 or 0) + 1, y[k] + 0.18, f"{f1:.1f}", va="center", fontsize=LABEL_PT)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=LABEL_PT)
    ax.set_xlim(0, 105)
    ax.set_xlabel("score (0-100) on these questions")
    ax.set_title(title or "Extractive QA", fontsize=LABEL_PT + 2)
    ax.legend(loc="lower right", fontsize=LABEL_PT)
    if refs:
        ax2 = axes[1, 0]
        yr = np.arange(len(refs))[::-1]
        for k, (name, f1) in enumerate(refs):
            ax2.barh(yr[k], f1, height=0.5, color="0.75")
            ax2.text(f1 + 1, yr[k], f"{f1:.1f}", va="center", fontsize=LABEL_PT)
        ax2.set_yticks(yr, [r[0] for r in refs], fontsize=LABEL_PT)
        ax2.set_xlim(0, 105)
        ax2.set_xlabel("F1 (0-100) on DRCD dev: another data set, not comparable bar for bar")
        ax2.set_title("The lecture's figures (Hsu, Liu & Lee 2019), for scale", fontsize=LABEL_PT + 1)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_qa_training(train_result, path) -> Path:
    """Training loss against steps, with dev F1 at each evaluation on a second axis (qa.QATrainResult)."""
    fig, ax = new_figure(6.4, 3.6)
    log = train_result.train_log
    ax.plot([e["step"] for e in log], [e["loss"] for e in log], color="tab:blue", label="train loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("span loss (start + end CE / 2)")
    hist = [h for h in train_result.history if h.get("f1") is not None]
    if hist:
        ax2 = ax.twinx()
        ax2.plot([h["step"] for h in hist], [h["f1"] for h in hist], "o-", color="tab:red", label="dev F1")
        ax2.set_ylabel("dev F1")
        ax2.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("QA fine-tuning")
    return save_figure(fig, path)


# ==== alignment and language vectors ==========================================================================
def plot_alignment_mrr(result, path: str | Path) -> Path:
    """MRR per layer (contextual and context-free, cosine and CSLS) with the CBOW and random baselines."""
    fig, ax = new_figure(7, 4.2)
    layers = result.layers
    styles = {"cosine": "-o", "csls": "--s"}
    for scoring, rows in result.contextual.items():
        ax.plot(layers, [r["mrr"] for r in rows], styles[scoring], color="C0", label=f"contextual, {scoring}")
    for scoring, rows in (result.context_free or {}).items():
        ax.plot(layers, [r["mrr"] for r in rows], styles[scoring], color="C1", label=f"word alone, {scoring}")
    base = result.baselines
    if "cbow" in base:
        ax.axhline(base["cbow"]["cosine"]["mrr"], color="C2", ls=":", label="CBOW per language, cosine")
    ax.axhline(base["random_vectors"]["cosine"]["mrr"], color="grey", ls="-.", label="random vectors")
    ax.axhline(base["random_expected_mrr"], color="black", lw=0.8, ls=":", label="random ranking (expected)")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("MRR")
    ax.set_xticks(layers)
    cov = result.coverage
    ax.set_title(f"{result.source_lang}→{result.target_lang} alignment: {cov['source_words']} words, "
                 f"{cov['candidates']} candidates", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_data_scale(result, path: str | Path) -> Path:
    """Masked-LM loss and alignment MRR against steps, one line per data size."""
    use_cjk_font()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for i, run in enumerate(result.runs):
        label = f"{run.sentences_per_lang:,} sentences/lang"
        if run.train_log:
            a1.plot([r["step"] for r in run.train_log], [r.get("loss") for r in run.train_log], color=f"C{i}",
                    alpha=0.35, lw=0.8)
        ev = [h for h in run.history if h.get("eval_loss") is not None]
        a1.plot([h["step"] for h in ev], [h["eval_loss"] for h in ev], "-o", color=f"C{i}", label=label + " (held out)")
        mr = [h for h in run.history if h.get("mrr") is not None]
        a2.plot([h["step"] for h in mr], [h["mrr"] for h in mr], "-o", color=f"C{i}", label=label + ", last layer")
        if mr and "mrr_best" in mr[0]:
            a2.plot([h["step"] for h in mr], [h["mrr_best"] for h in mr], ":", color=f"C{i}", label=label + ", best layer")
    if result.random_expected_mrr is not None:
        a2.axhline(result.random_expected_mrr, color="black", lw=0.8, ls=":", label="random ranking")
    if result.init_alignment.get("mrr") is not None:
        a2.axhline(result.init_alignment["mrr"], color="grey", lw=0.8, ls="--", label="untrained model (step 0)")
    a1.set_xlabel("step"); a1.set_ylabel("masked-LM loss"); a1.legend(fontsize=7); a1.grid(alpha=0.3)
    a2.set_xlabel("step"); a2.set_ylabel("alignment MRR"); a2.legend(fontsize=7); a2.grid(alpha=0.3)
    fig.suptitle(f"Data scale: identical '{result.size}' models, {result.steps} steps", fontsize=10)
    return save_figure(fig, path)


def plot_langvec(result, path: str | Path) -> Path:
    """Heatmaps over (layer, alpha): token-translation precision and the share of outputs in Chinese."""
    use_cjk_font()
    grid = result.grid
    layers, alphas = result.layers, result.alphas
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, title in zip(axes, ("precision", "target_script_rate"),
                              ("token-translation precision", f"share of output tokens in {result.target_lang} script")):
        m = np.array([[next(g[key] for g in grid if g["layer"] == l and g["alpha"] == a) for a in alphas]
                      for l in layers], dtype=float)
        im = ax.imshow(m, aspect="auto", origin="lower", cmap="viridis")
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas]); ax.set_yticks(range(len(layers)), layers)
        ax.set_xlabel("α"); ax.set_ylabel("layer L"); ax.set_title(title, fontsize=10)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < m.max() / 2 else "k")
        fig.colorbar(im, ax=ax)
    fig.suptitle(f"{result.source_lang} + α·(μ_{result.target_lang} − μ_{result.source_lang}) at layer L", fontsize=10)
    return save_figure(fig, path)
