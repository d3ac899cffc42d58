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


def test_report_page_in_chromium(tmp_path, tiny_model, tiny_encoder):
    out = tmp_path / "report"
    # the encoder has no MLM head: fill-mask runs on the fallback model, and the verdict table says so
    assert main(["report", "--model", str(tiny_encoder), "--fallback-model", str(tiny_model), "--only", "senses",
                 "--only", "pretrain", "--out", str(out)]) == 0
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto((out / "index.html").as_uri())
        page.wait_for_load_state("load")
        rows = page.locator("table.verdicts tr")
        claims = json.loads((out / "results.json").read_text(encoding="utf-8"))["claims"]
        assert rows.count() == 1 + len(claims) and len(claims) >= 7      # header + one row per claim and model
        assert page.locator("p.summary").inner_text().startswith(
            json.loads((out / "results.json").read_text(encoding="utf-8"))["summary"][:20])
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
        phone = browser.new_page(viewport={"width": 420, "height": 800})
        phone.goto((out / "index.html").as_uri())
        phone.wait_for_load_state("load")
        assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        browser.close()
