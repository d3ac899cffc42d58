"""The explorer in a real browser: Playwright for Python driving Debian's chromium (no browser download).

Each view: the pre-filled example shows a result on first load, changing an input updates it, a bad input
shows its message in place. The screenshots the README shows are taken here: into a temporary directory, or
into docs/img with BERTOLOGY_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bertology.serve import Explorer, ServeConfig
from conftest import SHARED_DATA
from serve_support import LiveServer

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_WIDTH, SCREENSHOT_HEIGHT = 1100, 800


def chromium_path() -> str | None:
    for candidate in (os.environ.get("BERTOLOGY_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="browser tests need Debian's chromium package: apt-get install -y chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install -e '.[test]')")


def _installed(alias: str) -> bool:
    from bertology.core.models import list_models

    return any(r["alias"] == alias and r["offline"] for r in list_models())


def _mlm_alias() -> str | None:
    """An installed alias with a masked-LM head (the bilingual model once `bertology models` lists it)."""
    from bertology.core.models import has_mlm_head, list_models

    for row in list_models():
        if row["offline"] and has_mlm_head(row["alias"]):
            return row["alias"]
    return None


@pytest.fixture(scope="module")
def models(tiny_model, tiny_encoder):
    """(default model, a model with an MLM head, one without): the real ones when installed. The default is
    what `bertology serve` opens on: zh-en-mini, which runs every view."""
    mlm = "zh-en-mini" if _installed("zh-en-mini") else (_mlm_alias() or str(tiny_model))
    return mlm, mlm, str(tiny_encoder)



def _data_dir() -> str | None:
    return str(SHARED_DATA) if SHARED_DATA.exists() else None


@pytest.fixture(scope="module")
def server(models):
    # the neighbours and language-vector tests ask for `data_dir` too: they skip without the real data
    explorer = Explorer(ServeConfig(models=list(dict.fromkeys(models)), data_dir=_data_dir(), corpus_lines=2000,
                                    neighbour_candidates=500))
    with LiveServer(explorer) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": SCREENSHOT_WIDTH, "height": SCREENSHOT_HEIGHT})
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url + "/")
    yield pg
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("BERTOLOGY_UPDATE_SCREENSHOTS"):
        return ROOT / "docs" / "img"
    return tmp_path_factory.mktemp("screenshots")


def wait_state(page, view: str, state: str = "ready", timeout: float = 120_000):
    page.wait_for_selector(f"#view-{view}[data-state={state}]", timeout=timeout)


def run_and_wait(page, view: str, state: str = "ready"):
    """Submit the view's form and wait for its answer (the state leaves 'loading' for ready or error)."""
    form = {"senses": "#senses-form", "fill-mask": "#fm-form", "neighbours": "#nb-form", "langvec": "#lv-form"}[view]
    page.eval_on_selector(f"#view-{view}", "e => e.dataset.state = 'submitted'")
    page.click(f"{form} button[type=submit]")
    wait_state(page, view, state)


def pick_model(page, name: str):
    """Choose a model; the active view reruns (its state is reset first, so waiting on it sees the new answer)."""
    page.eval_on_selector_all(".view", "vs => vs.forEach(v => v.dataset.state = 'switching')")
    page.select_option("#model", name)
    page.wait_for_function("m => document.querySelector('#model-info').textContent.includes('layers') && "
                           "document.querySelector('#model').value === m", arg=name)


def screenshot(page, shots: Path, name: str) -> Path:
    """A small PNG: the viewport, reduced to a 256-colour palette (the UI has few colours)."""
    from PIL import Image

    path = shots / f"serve-{name}.png"
    page.evaluate("window.cjkFontSettled().then(() => document.fonts.ready)")
    raw = page.screenshot()
    import io

    Image.open(io.BytesIO(raw)).convert("RGB").quantize(256).save(path, optimize=True)
    assert path.stat().st_size > 5_000
    return path


def test_senses_view(page, models, shots):
    wait_state(page, "senses")                 # the pre-filled lecture example, on first load
    n = len(page.eval_on_selector("#senses-sentences", "e => e.value.trim().split('\\n')"))
    assert page.locator("#heatmap-svg rect.cell").count() >= n * n
    # hover: both sentences and the cosine
    page.hover("#heatmap-svg rect.cell[data-i='10'][data-j='3']")
    tip = page.inner_text("#tooltip")
    assert tip.count("#") == 2 and "cosine" in tip
    cos = page.get_attribute("#heatmap-svg rect.cell[data-i='10'][data-j='3']", "data-cos")
    assert f"{float(cos):.3f}" in tip
    screenshot(page, shots, "senses")
    # the layer slider redraws the heatmap from that layer's matrix
    page.eval_on_selector("#senses-layer", "e => { e.value = 0; e.dispatchEvent(new Event('input')); }")
    assert "layer 0 of" in page.inner_text("#senses-layer-label")
    cos0 = page.get_attribute("#heatmap-svg rect.cell[data-i='10'][data-j='3']", "data-cos")
    assert cos0 != cos
    assert page.locator("#curve-svg circle.point").count() >= 2 and page.locator("#pca-svg circle.point").count() >= n
    # new sentences, new result
    # typed as a user would on a phone: `label: sentence`, and the label list for the last line
    page.fill("#senses-sentences", "")
    page.type("#senses-sentences", "fruit: i ate an apple\nfruit: apple juice is sweet\napple sells phones")
    page.fill("#senses-label", "company")
    page.click("#senses-label-apply")                   # the cursor is on the last line
    assert page.input_value("#senses-sentences").splitlines()[-1] == "company: apple sells phones"
    page.fill("#senses-target", "apple")
    run_and_wait(page, "senses")
    assert page.locator("#heatmap-svg rect.cell").count() == 9
    assert page.locator("#senses-legend .swatch").count() == 2
    # its yardstick: n per sense and the small-sample warning
    assert "fruit 2" in page.inner_text("#senses-result") and "under 6" in page.inner_text("#senses-result")
    # Tab is not captured in the sentence box: it moves on to the next input
    page.focus("#senses-sentences")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") != "senses-sentences"
    # bad input, explained in place
    page.fill("#senses-sentences", "i ate an apple\nthe sky is blue")
    run_and_wait(page, "senses", "error")
    assert "missing from line 2" in page.inner_text("#senses-error")
    assert page.get_attribute("#senses-sentences", "aria-invalid") == "true"
    assert page.is_hidden("#senses-result")


def test_senses_unknown_target_and_cjk_font(page, models):
    wait_state(page, "senses")
    pick_model(page, models[2])                # the tiny encoder: its vocabulary has 蘋 and 果, not 龍
    wait_state(page, "senses")
    page.fill("#senses-sentences", "我吃了龍果\n龍果手機")
    page.fill("#senses-target", "龍")
    run_and_wait(page, "senses", "error")
    assert "[UNK]" in page.inner_text("#senses-error")
    assert page.get_attribute("#senses-target", "aria-invalid") == "true"
    # the machine need not have a CJK font: the page loads its own subset for the characters it shows
    page.evaluate("window.cjkFontSettled()")
    assert page.evaluate("[...document.fonts].some(f => f.family.includes('bertology-cjk') && f.status === 'loaded')")
    assert page.evaluate("document.fonts.check('16px bertology-cjk', '龍果')")


def test_fill_mask_view(page, models, shots):
    wait_state(page, "senses")
    pick_model(page, models[1])
    page.click("#tabs button[data-view=fill-mask]")
    wait_state(page, "fill-mask")
    assert page.locator("#fm-list-0 li").count() == 5
    screenshot(page, shots, "fill-mask")
    page.fill("#fm-text", "i ate a [MASK] for [MASK] today")
    page.fill("#fm-k", "3")
    run_and_wait(page, "fill-mask")
    assert page.locator("#fm-result ol.topk").count() == 2 and page.locator("#fm-list-1 li").count() == 3
    probs = [float(t) for t in page.locator("#fm-list-0 .prob").all_inner_texts()]
    assert probs == sorted(probs, reverse=True) and all(0 < p <= 1 for p in probs)
    page.fill("#fm-text", "no blank here")
    run_and_wait(page, "fill-mask", "error")
    assert "at least one [MASK]" in page.inner_text("#fm-error")
    assert page.get_attribute("#fm-text", "aria-invalid") == "true"
    # a model without an MLM head: the view says so in one line, with a button to switch
    pick_model(page, models[2])
    wait_state(page, "fill-mask", "unavailable")
    assert "masked-LM head" in page.inner_text("#fm-notice") and page.is_hidden("#fm-error")
    page.fill("#fm-text", "the [MASK] is red")
    page.eval_on_selector("#view-fill-mask", "e => e.dataset.state = 'switching'")
    page.click("#fm-notice button.switch")
    wait_state(page, "fill-mask")
    assert page.input_value("#model") == models[1]


def test_neighbours_view(page, models, shots, data_dir):
    wait_state(page, "senses")
    page.click("#tabs button[data-view=neighbours]")
    wait_state(page, "neighbours")
    layers = next(m for m in page.evaluate("fetch('/api/models').then(r => r.json())")["models"]
                  if m["name"] == models[0])["layers"]
    assert page.locator("#nb-table tr.nb-row").count() == layers + 1
    assert "apple" in page.inner_text("#nb-result")
    if page.locator("#nb-rank-svg").count():       # the translation is ranked: its chance line is drawn
        assert page.locator("#nb-rank-svg line.chance").count() == 1 and "chance ≈" in page.inner_text("#nb-result")
    screenshot(page, shots, "neighbours")
    page.fill("#nb-word", "water")
    page.fill("#nb-k", "3")
    run_and_wait(page, "neighbours")
    assert "“water”" in page.inner_text("#nb-result")
    assert page.locator("#nb-table tr.nb-row").first.locator(".chip-word").count() == 3
    page.fill("#nb-word", "qwzxv")
    run_and_wait(page, "neighbours", "error")
    assert "qwzxv" in page.inner_text("#nb-error")


def test_langvec_view(page, models, shots, data_dir):
    wait_state(page, "senses")
    pick_model(page, models[1])
    page.click("#tabs button[data-view=langvec]")
    wait_state(page, "langvec")
    rows = page.locator("#lv-table tr.lv-row")
    assert rows.count() == 3
    n_tokens = rows.nth(0).locator("td").count()
    assert n_tokens >= 5 and rows.nth(2).locator("td").count() == n_tokens
    precision = page.inner_text("#lv-precision")
    assert "precision" in precision and ("constant token" in precision or "none of this sentence" in precision)
    screenshot(page, shots, "langvec")
    # alpha 0: the decoded tokens are the unshifted ones
    page.eval_on_selector("#view-langvec", "e => e.dataset.state = 'submitted'")
    page.eval_on_selector("#lv-alpha", "e => { e.value = 0; e.dispatchEvent(new Event('input')); }")
    wait_state(page, "langvec")
    assert "α = 0 at layer" in rows.nth(2).inner_text()
    assert rows.nth(1).locator("td").all_inner_texts() == rows.nth(2).locator("td").all_inner_texts()
    page.fill("#lv-sentence", "the cat sat on the river bank")
    run_and_wait(page, "langvec")
    assert rows.nth(0).locator("td").all_inner_texts()[:2] == ["the", "cat"]
    page.fill("#lv-sentence", "")
    run_and_wait(page, "langvec", "error")
    assert "enter an English sentence" in page.inner_text("#lv-error")


# ------------------------------------------------------------------------------------------------ issue 28
YARDSTICK = {"senses": ("#senses-result", "n = "), "fill-mask": ("#fm-filled", "top answers filled in"),
             "neighbours": ("#nb-result", "rank"), "langvec": ("#lv-precision", "precision"),
             "attention": ("#at-result", "heads")}


def test_default_model_runs_every_view(page, models, server, data_dir):
    """A new user's first click in every view returns a result with its yardstick, on the default model."""
    assert page.input_value("#model") == models[0]
    for view, (box, words) in YARDSTICK.items():
        page.goto(f"{server.url}/#{view}")
        page.reload()
        wait_state(page, view)
        assert page.is_hidden(f"#{view_prefix(view)}-error") and page.is_hidden(f"#{view_prefix(view)}-notice")
        assert words in page.inner_text(box), view


def view_prefix(view: str) -> str:
    return {"senses": "senses", "fill-mask": "fm", "neighbours": "nb", "langvec": "lv", "attention": "at"}[view]


def test_spinner_and_disabled_run_while_busy(page, server):
    wait_state(page, "senses")
    queue = server.explorer.queue
    queue._model_lock.acquire()             # the model is busy: the request waits
    try:
        page.eval_on_selector("#view-senses", "e => e.dataset.state = 'submitted'")
        page.click("#senses-form button[type=submit]")
        wait_state(page, "senses", "loading")
        assert page.is_visible("#senses-status .spinner")
        assert "running" in page.inner_text("#senses-status") or "loading" in page.inner_text("#senses-status")
        assert page.is_disabled("#senses-form button[type=submit]")
    finally:
        queue._model_lock.release()
    wait_state(page, "senses")
    assert page.is_hidden("#senses-status") and page.is_enabled("#senses-form button[type=submit]")
    # an edit clears the old error at once
    page.fill("#senses-target", "")
    run_and_wait(page, "senses", "error")
    page.fill("#senses-target", "x")
    assert page.is_hidden("#senses-error")


def test_url_state_survives_reload(page, server):
    wait_state(page, "senses")
    page.click("#tabs button[data-view=fill-mask]")
    wait_state(page, "fill-mask")
    page.fill("#fm-text", "the [MASK] is red")
    page.fill("#fm-k", "3")
    run_and_wait(page, "fill-mask")
    assert "#fill-mask?" in page.url and "k=3" in page.url
    page.reload()
    wait_state(page, "fill-mask")
    assert page.input_value("#fm-text") == "the [MASK] is red" and page.input_value("#fm-k") == "3"
    assert page.get_attribute("#tabs button[data-view=fill-mask]", "aria-selected") == "true"
    assert page.locator("#fm-list-0 li").count() == 3
    # a plain #view link opens that view; the arrow keys move between tabs
    page.goto(server.url + "/#neighbours")
    page.reload()
    page.wait_for_selector("#tabs button[data-view=neighbours][aria-selected=true]")
    page.focus("#tabs button[data-view=neighbours]")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#tabs button[data-view=langvec]", "aria-selected") == "true"


def test_attention_view(page, models, shots):
    wait_state(page, "senses")
    page.click("#tabs button[data-view=attention]")
    wait_state(page, "attention")
    info = next(m for m in page.evaluate("fetch('/api/models').then(r => r.json())")["models"] if m["name"] == models[0])
    page.eval_on_selector("#view-attention", "e => e.dataset.state = 'submitted'")
    page.click("#at-chips button.chip >> nth=0")        # the lecture's pair: 我吃了蘋果 vs 蘋果發表了新手機
    wait_state(page, "attention")
    assert page.locator(".attn-block").count() == 2
    for s in range(2):
        grid = page.locator(f"#at-grid-{s} svg.head")
        assert grid.count() == info["layers"] * info["heads"]
        assert page.locator(f"#at-grid-{s} rect.target-row").count() == info["layers"] * info["heads"]
    table = page.inner_text("#at-block-0 table.attn-target")
    assert "果" in table and "吃" in table
    page.click("#at-grid-0 svg.head >> nth=1")
    assert "layer 1, head 1" in page.inner_text("#at-block-0 .attn-detail")
    screenshot(page, shots, "attention")


def test_two_models_side_by_side(page, models, shots):
    wait_state(page, "senses")
    page.eval_on_selector_all(".view", "vs => vs.forEach(v => v.dataset.state = 'switching')")
    page.select_option("#model2", models[2])
    wait_state(page, "senses")
    assert page.locator("#senses-columns .column").count() == 2
    assert page.locator("#heatmap-svg rect.cell").count() > 0 and page.locator("#heatmap-svg-b rect.cell").count() > 0
    names = page.locator("#senses-columns h2.model-name").all_inner_texts()
    assert names == [models[0], models[2]]
    screenshot(page, shots, "compare")
    # a view the second model cannot run: its column says so, the first still answers
    page.click("#tabs button[data-view=fill-mask]")
    wait_state(page, "fill-mask")
    assert page.locator("#fm-list-0 li").count() == 5
    assert "cannot run this view" in page.inner_text("#fm-columns .column[data-slot='1']")
    assert "compare=" in page.url


def test_narrow_screen_has_no_horizontal_scroll(browser, server, shots, data_dir):
    context = browser.new_context(viewport={"width": 420, "height": 900})
    pg = context.new_page()
    try:
        for view in YARDSTICK:
            pg.goto(f"{server.url}/#{view}")
            pg.reload()
            wait_state(pg, view)
            width = pg.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], (view, width)
        pg.goto(f"{server.url}/#senses")
        pg.reload()
        wait_state(pg, "senses")
        screenshot(pg, shots, "narrow")
    finally:
        context.close()
