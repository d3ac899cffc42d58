"""`bertology report`: run every experiment on one or more models and write a self-contained index.html.

Each module of `report.sections` provides `report_section(ctx: ReportContext) -> Section | list[Section]`: it
runs its experiment at report settings and presents the result. The report runs them in order; a section that raises `UserError` (e.g. Chinese on an English-only vocabulary, no MLM head) appears
with the reason instead of crashing the report. Figures are embedded as base64 PNGs, so the single HTML
file can be mailed or opened anywhere.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import importlib
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..config import MODEL_HELP, DataDir, ModelRun, Out, setting
from ..errors import UserError
from ..io.storage import atomic_write_text, save_results
from .claims import VERDICTS, claim_verdicts, summary_line, verdicts


@dataclass
class ReportContext:
    model: str
    out_dir: Path            # this section's own directory (results.json, figures)
    data_dir: str | None
    precision: str = "fp32"
    seed: int = 0
    quick: bool = True       # small, minutes-scale settings; --full for the paper-scale ones
    trust_remote_code: bool = False
    describe_error: Callable[[UserError], str] = str   # how a UserError reads here (the CLI: fields as flags)
    fallback_model: str | None = None   # runs the sections `model` cannot (no Chinese vocabulary, no MLM head)
    keep_models: bool = False           # keep models a section trains (QA) in its folder; else only results
    other_models: list[str] = field(default_factory=list)   # further --model models, each shown beside `model`

    @property
    def chosen_models(self) -> list[str]:
        """The models the report was asked for (--model, in order): every section shows each one that can run it."""
        return list(dict.fromkeys([self.model, *self.other_models]))

    @property
    def models(self) -> list[str]:
        """Every model of the report (the chosen ones, then the fallback): a claim is tested on each one that can
        test it."""
        return list(dict.fromkeys([*self.chosen_models, *([self.fallback_model] if self.fallback_model else [])]))

    def model_dir(self, model: str, *parts: str) -> Path:
        """Where a section keeps one model's results: OUT/SECTION/PARTS/SLUG when the report has several chosen
        models, else OUT/SECTION/PARTS (where a one-model report always wrote them)."""
        where = self.out_dir.joinpath(*parts)
        return where / model_slug(model) if len(self.chosen_models) > 1 else where


@dataclass
class Section:
    title: str
    explanation: str = ""                       # a short paragraph (HTML allowed) saying what to look at
    figures: list[Path] = field(default_factory=list)
    tables: list[tuple[str, list[dict]]] = field(default_factory=list)   # (caption, rows)
    error: str | None = None                    # why the model could not run this experiment
    seconds: float = 0.0
    model: str | None = None                    # set when the section ran on the fallback model
    claim_ids: list[str] = field(default_factory=list)       # the verdict-table claims this section decides
    measures: dict[str, dict] = field(default_factory=dict)  # {claim id: the numbers its rule needs}


def model_slug(model: str) -> str:
    """A model name as one folder name (a section's per-model results: OUT/SECTION/SLUG/results.json)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(model).rstrip("/").split("/")[-1])


def with_fallback(ctx: ReportContext, run: Callable[[str], Section]) -> Section:
    """`run(ctx.model)`; when that model cannot run the section (a UserError: no MLM head, the target word is
    [UNK] to its vocabulary, ...) and the report has a fallback model, the section runs on the fallback model
    and says so at its top. A section the fallback cannot run either keeps the first model's reason."""
    try:
        return run(ctx.model)
    except UserError as e:
        if not ctx.fallback_model or ctx.fallback_model == ctx.model:
            raise
        reason = ctx.describe_error(e)
        try:
            sec = run(ctx.fallback_model)
        except UserError:
            raise e from None
    sec.model = ctx.fallback_model
    sec.title += f" (on {ctx.fallback_model})"
    sec.explanation = (f"<b>Run on {html.escape(ctx.fallback_model)}</b>, the bilingual model shipped with bertology, "
                       f"because {html.escape(ctx.model)} cannot run this section: "
                       f"{html.escape(reason.rstrip('.'), quote=False)}. "
                       + sec.explanation)
    return sec


def on_each_model(ctx: ReportContext, run: Callable[[str], Section]) -> list[Section]:
    """`run(model)` on every chosen model of the report, one section each, titled with its model when there are
    several. The models that cannot run it (a UserError) are named with their reason at the top of the first
    section that ran; when none can, the fallback model runs it (`with_fallback`). One chosen model: exactly
    `with_fallback`."""
    chosen = ctx.chosen_models
    if len(chosen) == 1:
        return [with_fallback(ctx, run)]
    done, refused = [], []
    for model in chosen:
        try:
            sec = run(model)
        except UserError as e:
            refused.append((model, e))
            continue
        sec.model = model
        sec.title += f" (on {model})"
        done.append(sec)
    if not done:
        first, error = refused[0]
        if not ctx.fallback_model or ctx.fallback_model in chosen:
            raise error
        return [with_fallback(dataclasses.replace(ctx, model=first, other_models=[]), run)]
    if refused:
        done[0].explanation = ("".join(f"<b>Not run on {html.escape(m)}</b>: "
                                       f"{html.escape(ctx.describe_error(e).rstrip('.'), quote=False)}. "
                                       for m, e in refused) + done[0].explanation)
    return done


# (module, title used when the section fails before producing its own). Order = order in the report.
SECTIONS: list[tuple[str, str]] = [
    ("bertology.report.sections.senses", "Contextual embeddings: word senses"),
    ("bertology.report.sections.cbow", "Static baseline: word2vec CBOW"),
    ("bertology.report.sections.pretrain", "Masked-LM: fill in the blank"),
    ("bertology.report.sections.crossdomain", "Cross-disciplinary transfer: DNA, protein, music"),
    ("bertology.report.sections.qa", "Cross-lingual zero-shot QA"),
    ("bertology.report.sections.align", "Cross-lingual alignment and language vectors"),
]


def run_section(module: str, title: str, ctx: ReportContext) -> list[Section]:
    t0 = time.perf_counter()
    try:
        mod = importlib.import_module(module)
        fn: Callable[[ReportContext], Section] = mod.report_section
    except (ImportError, AttributeError) as e:
        return [Section(title, error=f"not available in this version ({e.__class__.__name__}: {e})")]
    claim_ids = list(getattr(mod, "CLAIM_IDS", []))   # the claims a failure of the whole module leaves undecided
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        sec = fn(ctx)
    except UserError as e:
        sec = Section(title, error=ctx.describe_error(e), claim_ids=claim_ids)
    except Exception as e:  # a bug in one section must not lose the others; keep the traceback visible
        sec = Section(title, error=f"failed: {e.__class__.__name__}: {e}\n{traceback.format_exc()}",
                      claim_ids=claim_ids)
    secs = sec if isinstance(sec, list) else [sec]   # a module may contribute several sections
    # A module that contributes several sections times each itself; what it did not attribute is shared.
    untimed = [s for s in secs if not s.seconds]
    rest = time.perf_counter() - t0 - sum(s.seconds for s in secs)
    for s in untimed:
        s.seconds = max(rest, 0.0) / len(untimed)
    return secs


def _table_html(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)

    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<div class='wide'><table><tr>{head}</tr>{body}</table></div>"   # wide tables scroll in their box


def embedded_cjk_font(text: str) -> str:
    """A @font-face rule carrying just the CJK glyphs the page uses (subset of the Noto Sans CJK font that
    mplfonts ships), so Chinese renders even where the reader has no CJK font installed. A few KB."""
    chars = sorted({ch for ch in text if ord(ch) > 0x2E7F})
    if not chars:
        return ""
    try:
        import io

        import mplfonts
        from fontTools import subset

        path = Path(mplfonts.__file__).parent / "fonts" / "NotoSansCJKsc-Regular.otf"
        opts = subset.Options()
        font = subset.load_font(str(path), opts)
        sub = subset.Subsetter(opts)
        sub.populate(text="".join(chars))
        sub.subset(font)
        buf = io.BytesIO()
        subset.save_font(font, buf, opts)
    except Exception:  # no font available: the browser falls back to the reader's own fonts
        return ""
    data = base64.b64encode(buf.getvalue()).decode()
    return (f"@font-face{{font-family:'bertology-cjk';src:url(data:font/otf;base64,{data}) format('opentype');}}")


def _verdict_entry(c: dict) -> str:
    """One claim's row on one model: the verdict, this run's figure, the baselines it had to beat, the 95% CI
    of the effect, and the reason where there is one."""
    base = "<br>".join(f"{html.escape(k)}: {v:.3f}" if isinstance(v, float) else f"{html.escape(k)}: {html.escape(str(v))}"
                       for k, v in c["baselines"].items())
    ci = "" if not c.get("ci") else f"<br>95% CI of the effect [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]"
    parts = [f"<b>{html.escape(c['verdict'])}</b>"]
    if c.get("this_run"):
        parts.append(html.escape(c["this_run"]))
    if base:
        parts.append(f"<small>baselines: {base}{ci}</small>")
    if c.get("reason"):
        parts.append(f"<small>{html.escape(c['reason'])}</small>")
    return "<br>".join(parts)


def _verdict_cell(rows: list[dict], colspan: int = 1) -> str:
    """A model's cell: its rows of the claim (one per language where a claim is measured per language), coloured
    by the best verdict among them, the rule on hover."""
    best = next(v for v in VERDICTS if any(r["verdict"] == v for r in rows))
    span = f" colspan='{colspan}'" if colspan > 1 else ""
    return (f"<td{span} class='v-{best.replace(' ', '-')}' title='{html.escape(rows[0]['rule'])}'>"
            + "<hr>".join(_verdict_entry(r) for r in rows) + "</td>")


def verdict_columns(claims: list[dict], models: list[str] | None = None) -> list[str]:
    """The verdict table's model columns: the report's models in their order, then any other model a row names
    (a recorded run)."""
    named = [str(c["model"]) for c in claims if c["model"]]
    return list(dict.fromkeys([m for m in (models or []) if m in named] + named))


def _verdict_html(claims: list[dict], summary: str = "", models: list[str] | None = None) -> str:
    """The verdict table: one row per claim, one column per model: the paper's figure, then on each model this
    run's figure, the baselines it had to beat, the 95% CI of the effect and the verdict (its rule on hover),
    and a link to the section."""
    if not claims:
        return ""
    columns = verdict_columns(claims, models)
    rows = []
    for cid in dict.fromkeys(c["id"] for c in claims):
        mine = [c for c in claims if c["id"] == cid]
        head = mine[0]
        link = f"<br><small><a href='#s{head['section']}'>section {head['section']}</a></small>" if head["section"] else ""
        by_model: dict[str, list[dict]] = {}
        for c in mine:
            if c["model"]:
                by_model.setdefault(str(c["model"]), []).append(c)
        if by_model:
            cells = "".join(_verdict_cell(by_model[m]) if m in by_model else "<td class='v-none'>–</td>"
                            for m in columns)
        else:      # no model tested it: one cell across the model columns says why
            cells = _verdict_cell(mine, colspan=max(1, len(columns)))
        rows.append(f"<tr><th scope='row'>{html.escape(head['claim'])}{link}</th><td>{html.escape(head['paper'])}</td>"
                    f"{cells}</tr>")
    top = f"<p class='summary'><b>{html.escape(summary)}</b></p>" if summary else ""
    heads = "".join(f"<th scope='col'>{html.escape(m)}</th>" for m in columns) or "<th>model</th>"
    return ("<h2 id='verdicts'>Verdicts</h2>" + top + "<p class='cap'>Each claim of the lecture and its papers, on "
            "every model of this report that can test it (one column per model), against the strongest cheap "
            "explanation of the same number. A verdict follows a rule written before the numbers (hover it; "
            "docs/results.md), not a judgement: <i>shown</i> needs the effect's 95% confidence interval (bootstrap "
            "over test items, and seeds where there are seeds) clear of every baseline.</p>"
            f"<div class='wide'><table class='verdicts'><tr><th scope='col'>claim</th><th scope='col'>lecture / paper"
            f"</th>{heads}</tr>" + "".join(rows) + "</table></div>")


# What each figure shows, by file name (every section draws its figures under these names); a figure not listed
# is captioned by its file name.
CAPTIONS = {
    "similarity.png": "Cosine similarity of every pair of occurrences of the target at the last layer, sentences "
                      "ordered by sense; the colour scale is fixed to 0–1, so weak structure looks weak.",
    "separation.png": "Per layer: mean within-sense cosine minus mean between-sense cosine (layer 0: the input "
                      "embeddings, before any context).",
    "static_vs_contextual.png": "Separation per layer of the contextual model beside CBOW's (one vector per word: "
                                "exactly 0).",
    "fill_mask.png": "The five most probable tokens for each [MASK], with their probabilities.",
    "conditions.png": "Test accuracy per condition (mean ± std over seeds); the dotted line is the majority class.",
    "learning_curves.png": "Dev accuracy after each epoch, per condition and seed.",
    "qa_scores.png": "EM and F1 per evaluation set of this run (top); the lecture's DRCD dev F1, another data set, "
                     "on its own axis below, for scale only.",
    "qa_training.png": "Training loss of the QA fine-tuning.",
    "mrr_per_layer.png": "Dictionary MRR per layer (cosine and CSLS), with the random-ranking and random-vector "
                         "baselines.",
    "langvec_grid.png": "Token-translation precision for every (layer, α) of the language-vector shift.",
}


def closing_paragraph(claims: list[dict]) -> str:
    """'What this shows', written from the verdicts: which claims held, on which model, and which could not be
    tested here and why."""
    from .claims import CLAIMS, SHOWN, claim_verdicts

    per = claim_verdicts(claims)
    names = {c.id: c.claim for c in CLAIMS}

    def models(cid, verdict):
        return sorted({str(r["model"]) for r in claims if r["id"] == cid and r["verdict"] == verdict and r["model"]})

    shown = [f"{names[c]} (on {', '.join(models(c, SHOWN))})" for c, v in per.items() if v == SHOWN]
    not_shown = [names[c] for c, v in per.items() if v == "not shown"]
    other = [f"{names[c]} ({v})" for c, v in per.items() if v in ("not applicable", "not run")]
    parts = [f"<b>Shown against its baselines:</b> {html.escape('; '.join(shown))}." if shown else
             "<b>No claim</b> was shown against its baselines in this run."]
    if not_shown:
        parts.append(f"<b>Tested and not shown:</b> {html.escape('; '.join(not_shown))}: the effect did not clear the "
                     f"strongest cheap explanation, which is the honest result for models this small and runs this "
                     f"short (each section says by how much).")
    if other:
        parts.append(f"<b>Not tested here:</b> {html.escape('; '.join(other))}: the rows give the reason.")
    return "<h2 id='what-this-shows'>What this shows</h2><p>" + " ".join(parts) + "</p>"


def render_html(model: str, sections: list[Section], claims: list[dict] | None = None, summary: str = "",
                models: list[str] | None = None) -> str:
    parts = []
    for i, s in enumerate(sections, 1):
        body = [f"<h2 id='s{i}'>{i}. {html.escape(s.title)}</h2>"]
        if s.error:
            body.append(f"<p class='skip'>Not run on this model: {html.escape(s.error.splitlines()[0])}</p>")
            if len(s.error.splitlines()) > 1:
                body.append(f"<pre>{html.escape(s.error)}</pre>")
        if s.explanation:
            body.append(f"<p>{s.explanation}</p>")
        for caption, rows in s.tables:
            body.append(f"<p class='cap'>{html.escape(caption)}</p>{_table_html(rows)}")
        for fig in s.figures:
            data = base64.b64encode(Path(fig).read_bytes()).decode()
            body.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(CAPTIONS.get(Path(fig).name, Path(fig).name))}'>"
                        f"<figcaption>{html.escape(CAPTIONS.get(Path(fig).name, Path(fig).name))}</figcaption></figure>")
        body.append(f"<p class='time'>{s.seconds:.1f} s</p>")
        parts.append("<section>" + "\n".join(body) + "</section>")
    toc = "".join(f"<li><a href='#s{i}'>{html.escape(s.title)}</a>{' (not run)' if s.error else ''}</li>"
                  for i, s in enumerate(sections, 1))
    verdict_table = _verdict_html(claims or [], summary, models)
    text = model + verdict_table + "".join(s.title + s.explanation + (s.error or "") + "".join(
        str(v) for _, rows in s.tables for r in rows for v in list(r) + list(r.values())) for s in sections)
    font = embedded_cjk_font(text)
    closing = closing_paragraph(claims) if claims else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bertology report: {html.escape(model)}</title>
<style>{font}
body{{font-family:system-ui,sans-serif,'Noto Sans CJK TC','PingFang TC','Microsoft JhengHei','bertology-cjk';max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}
img{{max-width:100%}} table{{border-collapse:collapse;margin:.5rem 0}} td,th{{border:1px solid #ccc;padding:.2rem .5rem;
text-align:right}} .verdicts td,.verdicts th{{text-align:left;vertical-align:top}} .verdicts td{{min-width:9rem}} .v-shown{{background:#e8f5e9}}
.v-not-shown{{background:#fff8e1}} .v-not-applicable,.v-not-run{{background:#f3f3f3}} .wide{{overflow-x:auto}} .skip{{color:#a00}} .time,.cap{{color:#666;font-size:.9em}} hr{{border:0;border-top:1px dashed #bbb}} pre{{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.8em}} p{{overflow-wrap:anywhere}}</style>
</head><body><h1>Why BERT works — {html.escape(model)}</h1>
<p>Generated by bertology: the experiments of Hung-yi Lee's lecture "Self-supervised learning: BERT explained"
(ML 2021) and the papers behind it, run on {'these models' if models and len(models) > 1 else 'this model'}.</p>{verdict_table}<ol>{toc}</ol>
{''.join(parts)}{closing}</body></html>"""


@dataclass(kw_only=True)
class ReportConfig(ModelRun, DataDir, Out):
    """`bertology report`."""

    model: list[str] = setting(help=MODEL_HELP + " Repeatable: every model runs every section it can, and the "
                                                 "verdict table has a column per model.",
                               factory=lambda: ["minilm"], short="-m", metavar="MODEL")
    full: bool = setting(False, "Paper-scale settings instead of the quick ones (~8 min). Estimated time "
                                "(docs/results.md): about 2 h 45 min on a 2-core CPU with --precision bf16, about "
                                "4 h in fp32; about 15 min on one GPU.")
    only: list[str] = setting(help="Run only these sections (senses, cbow, pretrain, crossdomain, qa, align).",
                              factory=list)
    fallback_model: str = setting("zh-en-mini", "Model that runs the sections --model cannot (Chinese text, an MLM "
                                                "head); each such section says so. '' for none.")
    keep_models: bool = setting(False, "Keep the models sections fine-tune (QA) in OUT; by default the report "
                                       "folder holds results and figures only.")

    def __post_init__(self):
        super().__post_init__()
        known = [m.rsplit(".", 1)[-1] for m, _ in SECTIONS]
        bad = [o for o in self.only if o not in known]
        if bad:
            raise UserError(f"`only` {bad[0]!r}: unknown section (known: {', '.join(known)})", ("only",))


def build_report(model: str | list[str], out_dir: str | Path, data_dir: str | None = None, precision: str = "fp32",
                 seed: int = 0, quick: bool = True, only: list[str] | None = None,
                 trust_remote_code: bool = False, describe_error: Callable[[UserError], str] = str,
                 fallback_model: str | None = None, keep_models: bool = False,
                 on_section: Callable[[Section], None] | None = None) -> tuple[Path, list[Section]]:
    """Run every section and write out_dir/index.html (+ each section's results under out_dir/<name>/).
    model: one model, or several shown side by side (the verdict table has a column per model).
    fallback_model: runs the sections no chosen model can (see `on_each_model`). on_section: called with each
    section as soon as it is done (a full report runs for hours: the CLI reports progress through it)."""
    out_dir = Path(out_dir)
    chosen = [model] if isinstance(model, str) else list(dict.fromkeys(model))
    sections = []
    for module, title in SECTIONS:
        short = module.rsplit(".", 1)[-1]
        if only and short not in only:
            continue
        ctx = ReportContext(model=chosen[0], other_models=chosen[1:], out_dir=out_dir / short, data_dir=data_dir,
                            precision=precision, seed=seed, quick=quick, trust_remote_code=trust_remote_code,
                            describe_error=describe_error, fallback_model=fallback_model,
                            keep_models=keep_models)
        done = run_section(module, title, ctx)
        sections += done
        if on_section:
            for section in done:
                on_section(section)
    from .plots import FIGURE_WARNINGS

    claims = verdicts(sections)
    models = list(dict.fromkeys(chosen + ([fallback_model] if fallback_model else [])))
    summary = summary_line(claims, models, quick, datetime.date.today().isoformat())
    page = atomic_write_text(out_dir / "index.html", render_html(" and ".join(chosen), sections, claims, summary,
                                                                 models))
    save_results(out_dir, "bertology.report/1", {
        "model": chosen[0], "models": models, "quick": quick, "fallback_model": fallback_model, "summary": summary,
        "claim_verdicts": claim_verdicts(claims), "claims": claims,
        "figure_warnings": list(FIGURE_WARNINGS),
        "sections": [{"title": s.title, "model": s.model or chosen[0], "error": s.error, "seconds": s.seconds,
                      "figures": [str(Path(f).relative_to(out_dir)) if Path(f).is_relative_to(out_dir) else str(f)
                                  for f in s.figures]} for s in sections]})
    return page, sections
