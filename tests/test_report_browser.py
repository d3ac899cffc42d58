"""The report read in a real browser (Debian's chromium through Playwright, as the explorer's tests): the verdict
table renders with every row that names a section linked to a section that exists, every figure loads, and
Chinese text renders with the page's embedded CJK font."""

from __future__ import annotations

import json

import pytest

from bertology.cli import main
from test_serve_browser import chromium_path

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="browser tests need Debian's chromium package: apt-get install -y chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install -e '.[test]')")


def _open(browser, path, width=1400):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page


def test_report_page_in_chromium(tmp_path, tiny_model, tiny_encoder):
    out = tmp_path / "report"
    # the encoder has no MLM head: fill-mask runs on the fallback model, and the verdict table says so
    assert main(["report", "--model", str(tiny_encoder), "--fallback-model", str(tiny_model), "--only", "senses",
                 "--only", "pretrain", "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        page = _open(browser, out / "index.html")
        rows = page.locator("table.verdicts tr")
        claims = doc["claims"]
        assert rows.count() == 1 + len({c["id"] for c in claims}) == 8      # header + one row per claim
        assert page.locator("p.summary").inner_text().startswith(doc["summary"][:20])
        hrefs = page.eval_on_selector_all("table.verdicts a", "els => els.map(e => e.getAttribute('href'))")
        assert hrefs and all(page.locator(h).count() == 1 for h in hrefs)   # every link lands on a section
        assert str(tiny_model) in page.locator("table.verdicts").inner_text()
        broken = page.eval_on_selector_all("img", "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).length")
        assert page.locator("img").count() >= 3 and broken == 0
        # the embedded face itself must be there and loaded (fonts.check alone is true for an unknown family)
        assert page.evaluate("async () => { await document.fonts.load('16px bertology-cjk', '蘋果');"
                             " return Array.from(document.fonts).some(f => f.family.includes('bertology-cjk')"
                             " && f.status === 'loaded'); }")
        # a phone: at 420 px the page itself does not scroll sideways (the wide table scrolls in its own box)
        phone = _open(browser, out / "index.html", width=420)
        assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        browser.close()


def test_two_models_side_by_side_in_chromium(tmp_path, tiny_model, tiny_encoder):
    """`report --model A --model B`: the verdict table has a column per model, each section shows each model
    that can run it, the heatmaps' labels are shown at the size drawn (>= 10 px at a 1400 px window), a run of one
    epoch draws no line, and at 420 px nothing scrolls sideways but the tables in their boxes."""
    from bertology.report import plots

    out = tmp_path / "report"
    assert main(["report", "--model", str(tiny_encoder), "--model", str(tiny_model), "--fallback-model", "",
                 "--only", "senses", "--only", "pretrain", "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["models"] == [str(tiny_encoder), str(tiny_model)]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        page = _open(browser, out / "index.html")
        heads = page.eval_on_selector_all("table.verdicts tr:first-child th", "els => els.map(e => e.innerText)")
        assert heads[2:4] == [str(tiny_encoder), str(tiny_model)]
        # every claim row has a cell per model column, or one cell across them (nobody could test it)
        spans = page.eval_on_selector_all(
            "table.verdicts tr:not(:first-child)",
            "rows => rows.map(r => Array.from(r.querySelectorAll('td')).slice(1)"
            ".reduce((n, td) => n + (td.colSpan || 1), 0))")
        assert len(spans) == 7 and set(spans) == {2}
        fill_mask = page.locator("table.verdicts tr", has_text="Masked-LM fills blanks").inner_text()
        assert "no masked-LM head" in fill_mask          # the encoder's cell says why it could not test it
        # the English senses demo ran on both models: one section each, titled with its model
        titles = page.eval_on_selector_all("section h2", "els => els.map(e => e.innerText)")
        assert sum("'apple' the fruit" in t for t in titles) == 2
        assert any(t.endswith(f"(on {tiny_encoder})") for t in titles)
        # heatmap labels: drawn at LABEL_PT, shown at no less than MIN_LABEL_PX (the image is not scaled down
        # below that)
        scales = page.eval_on_selector_all("img[alt^='Cosine similarity']",
                                           "els => els.map(e => e.clientWidth / e.naturalWidth)")
        assert len(scales) >= 2
        label_px = plots.LABEL_PT * plots.DPI / 72
        assert all(label_px * min(scale, 1.0) >= plots.MIN_LABEL_PX for scale in scales), scales
        phone = _open(browser, out / "index.html", width=420)
        assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        # the verdict table's box scrolls, not the page: it is no wider than the window
        assert phone.evaluate("() => document.querySelector('table.verdicts').parentElement.clientWidth"
                              " <= window.innerWidth")
        browser.close()
