"""report: the page built from sections, whatever each section's fate (ran, refused with a reason, crashed),
and the figures drawn from experiment results. Fast: fake sections, no model runs."""

from __future__ import annotations

import json
import sys
import types

import pytest

from bertology import report
from bertology.errors import UserError
from bertology.report import ReportContext, Section, build_report, render_html, run_section


def _fake_sections(monkeypatch, tmp_path):
    png = tmp_path / "fig.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 16)

    def ok(ctx):
        return [Section("First", "why <i>this</i> matters", [png], [("numbers", [{"layer": 1, "mrr": 0.25}])]),
                Section("Second", "more")]

    def refused(ctx):
        raise UserError("model has no masked-LM head")

    def crashed(ctx):
        raise RuntimeError("a bug")

    for name, fn in (("ok", ok), ("refused", refused), ("crashed", crashed)):
        mod = types.ModuleType(f"fake_section_{name}")
        mod.report_section = fn
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setattr(report, "SECTIONS", [("fake_section_ok", "OK"), ("fake_section_refused", "Refused"),
                                             ("fake_section_crashed", "Crashed"), ("no_such_module", "Missing")])


def test_sections_run_refuse_crash_or_are_missing(monkeypatch, tmp_path):
    _fake_sections(monkeypatch, tmp_path)
    ctx = ReportContext(model="m", out_dir=tmp_path / "s", data_dir=None)
    assert [s.title for s in run_section("fake_section_ok", "OK", ctx)] == ["First", "Second"]
    (refused,) = run_section("fake_section_refused", "Refused", ctx)
    assert refused.title == "Refused" and refused.error == "model has no masked-LM head"
    (crashed,) = run_section("fake_section_crashed", "Crashed", ctx)
    assert crashed.error.startswith("failed: RuntimeError: a bug") and "Traceback" in crashed.error
    (missing,) = run_section("no_such_module", "Missing", ctx)
    assert missing.error.startswith("not available")


def page_written(tmp_path) -> bool:
    return (tmp_path / "out" / "index.html").exists()


def test_build_report_writes_page_and_results(monkeypatch, tmp_path):
    _fake_sections(monkeypatch, tmp_path)
    seen = []
    page, sections = build_report("m", tmp_path / "out", only=["fake_section_ok", "fake_section_refused"],
                                  on_section=lambda s: seen.append((s.title, page_written(tmp_path))))
    assert [s.title for s in sections] == ["First", "Second", "Refused"]
    # each section is reported as it ends, before the page exists
    assert seen == [("First", False), ("Second", False), ("Refused", False)]
    html = page.read_text(encoding="utf-8")
    assert html.count("<section>") == 3 and "data:image/png;base64," in html
    assert "why <i>this</i> matters" in html and "<td>0.250</td>" in html
    assert "Not run on this model: model has no masked-LM head" in html and "(not run)" in html
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["schema"] == "bertology.report/1" and [s["title"] for s in doc["sections"]] == ["First", "Second",
                                                                                              "Refused"]


def test_render_html_escapes_titles_and_tables():
    page = render_html("<model>", [Section("a < b", tables=[("t", [{"x": "<script>"}])])])
    assert "&lt;model&gt;" in page and "a &lt; b" in page and "&lt;script&gt;" in page and "<script>" not in page


def test_section_modules_are_registered_in_page_order():
    import importlib

    for module, _ in report.SECTIONS:
        assert callable(importlib.import_module(module).report_section)
    assert [m.rsplit(".", 1)[-1] for m, _ in report.SECTIONS] == ["senses", "cbow", "pretrain", "crossdomain",
                                                                 "qa", "align"]


def test_with_fallback_runs_what_the_model_cannot_and_says_so(tmp_path):
    from bertology.report import with_fallback

    def run(model):
        if model == "english-only":
            raise UserError("target '果' is [UNK] in this vocabulary")
        return Section("Senses of 果", f"ran on {model}")

    ctx = ReportContext(model="english-only", out_dir=tmp_path, data_dir=None, fallback_model="zh-en-mini")
    sec = with_fallback(ctx, run)
    assert sec.model == "zh-en-mini" and sec.title == "Senses of 果 (on zh-en-mini)"
    assert "because english-only cannot run this section: target '果' is [UNK]" in sec.explanation
    assert sec.explanation.endswith("ran on zh-en-mini")
    # a model that can run it is used as it is; without a fallback the reason stands
    ok = with_fallback(ReportContext(model="bilingual", out_dir=tmp_path, data_dir=None, fallback_model="x"), run)
    assert ok.model is None and ok.explanation == "ran on bilingual"
    ctx.fallback_model = None
    with pytest.raises(UserError, match="is \\[UNK\\]"):
        with_fallback(ctx, run)

    def nobody_can(model):
        raise UserError(f"{model} cannot")
    ctx.fallback_model = "zh-en-mini"
    with pytest.raises(UserError, match="english-only cannot"):        # the first model's reason is kept
        with_fallback(ctx, nobody_can)


def test_sections_that_time_themselves_keep_their_own_seconds(monkeypatch, tmp_path):
    import time as _time

    def two(ctx):
        _time.sleep(0.05)
        return [Section("timed", seconds=7.0), Section("untimed")]

    mod = types.ModuleType("fake_section_timed")
    mod.report_section = two
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    timed, untimed = run_section("fake_section_timed", "T", ReportContext(model="m", out_dir=tmp_path, data_dir=None))
    assert timed.seconds == 7.0 and untimed.seconds == 0.0     # 0.05 s in all, less than the 7 s attributed


def test_missing_cjk_font_is_warned(monkeypatch):
    import builtins

    from bertology.report import plots

    real_import = builtins.__import__

    def no_mplfonts(name, *a, **k):
        if name == "mplfonts":
            raise ImportError("no mplfonts")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mplfonts)
    monkeypatch.setattr(plots, "_FONT_WARNED", False)
    with pytest.warns(RuntimeWarning, match="no CJK font"):
        assert plots.use_cjk_font() is None


def test_figure_warnings_are_recorded_not_printed(tmp_path, capsys):
    """matplotlib's warnings (a glyph the font lacks) stay off stderr and are listed for results.json."""
    from bertology.report import plots

    fig, ax = plots.new_figure()
    ax.set_title("\U0001F600 \u0BF5")                  # glyphs no bundled font has
    plots.save_figure(fig, tmp_path / "glyphs.png")
    assert any(w.startswith("glyphs.png: ") and "missing" in w.lower() for w in plots.FIGURE_WARNINGS), \
        plots.FIGURE_WARNINGS
    assert "missing" not in capsys.readouterr().err.lower()


@pytest.mark.parametrize("rows", [32, 200])
def test_heatmap_labels_are_readable_on_the_page(tmp_path, rows):
    """The similarity heatmap fits the report's text column at its natural size, so its labels (drawn at
    LABEL_PT) are shown at >= MIN_LABEL_PX; too many rows to label each get one label per sense block."""
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image

    from bertology.report import plots

    rng = np.random.default_rng(0)
    occ = [{"sentence": i, "label": "fruit" if i % 2 else "company"} for i in range(rows)]
    result = SimpleNamespace(occurrences=occ, sentences=[f"sentence number {i} about the apple and more" for i in range(rows)],
                             similarity={"matrix": rng.uniform(0, 1, (rows, rows)).tolist(), "layer": 6},
                             static=False, target="apple")
    path = plots.similarity_heatmap(result, tmp_path / "similarity.png")
    width = Image.open(path).size[0]
    assert width <= plots.PAGE_WIDTH_PX, width            # shown unscaled in the page's column
    assert plots.LABEL_PT * plots.DPI / 72 >= plots.MIN_LABEL_PX
    # the tick labels as drawn: a sentence per row when the rows leave room, else the sense blocks with counts
    order = sorted(range(rows), key=lambda i: (occ[i]["label"], i))
    positions, names, per_row = plots.heatmap_labels([occ[i]["label"] for i in order], ["s"] * rows)
    if rows == 32:
        assert per_row and len(names) == 32 and names[0] == "1. s"
    else:
        assert not per_row and names == ["company (100)", "fruit (100)"] and positions == [49.5, 149.5]
