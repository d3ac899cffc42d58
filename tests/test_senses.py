"""Word senses, the CBOW baseline and the report: real numbers on the real MiniLM, hand-checked metrics,
exit code 2 with a precise message for user mistakes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bertology.experiments.cbow import segment_line, train_cbow
from bertology.cli import main
from bertology.io.sentences import read_sentences
from bertology.errors import UserError
from bertology.metrics import sense_separation
from bertology.experiments.senses import static_senses, word_senses


def test_sense_separation_hand_checked():
    # two tight groups at right angles: within = 1, between = 0
    v = np.array([[1, 0], [2, 0], [0, 1], [0, 3]], dtype=float)
    s = sense_separation(v, ["a", "a", "b", "b"])
    assert s["within"] == pytest.approx(1.0) and s["between"] == pytest.approx(0.0)
    assert s["separation"] == pytest.approx(1.0) and s["purity"] == 1.0 and s["silhouette"] == pytest.approx(1.0)
    # identical vectors (a static embedding): nothing separates
    s = sense_separation(np.ones((4, 3)), ["a", "a", "b", "b"])
    assert s["within"] == pytest.approx(1.0) and s["between"] == pytest.approx(1.0) and s["separation"] == pytest.approx(0.0)
    assert s["purity"] == 0.5
    # without two labels nothing label-based is defined
    assert sense_separation(v, ["", "", "", ""])["separation"] is None


def test_read_sentences_formats_and_errors(tmp_path):
    tsv = tmp_path / "s.tsv"
    tsv.write_text("label\tsentence\nfruit\tI ate an apple\n\nco\tApple stock\n", encoding="utf-8")
    assert read_sentences(tsv)[:2] == (["I ate an apple", "Apple stock"], ["fruit", "co"])
    txt = tmp_path / "s.txt"
    txt.write_text("one apple\ntwo apples apple\n", encoding="utf-8")
    assert read_sentences(txt)[:2] == (["one apple", "two apples apple"], ["", ""])
    bad = tmp_path / "bad.tsv"
    bad.write_text("label\tsentence\nfruit\tok apple\nfruit\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.tsv:3: expected 2 tab-separated fields"):
        read_sentences(bad)
    sents, labels, _ = read_sentences("apple-zh")
    assert len(sents) >= 20 and sorted(set(labels)) == ["公司", "水果"] and min(labels.count(l) for l in set(labels)) >= 10


def test_minilm_separates_apple_senses_through_context():
    sents, labels, _ = read_sentences("apple-en")
    res = word_senses("minilm", sents, labels, "apple")
    assert len(res.layers) == 7 and len(res.occurrences) == len(sents)
    sep = [l.separation for l in res.layers]
    # layer 0 is (nearly) context-free: the senses only separate after self-attention mixes in context
    assert sep[0] < 0.02 and max(sep[1:]) > 0.1
    assert res.layers[res.best_layer].purity == 1.0
    m = np.asarray(res.similarity["matrix"])
    assert res.similarity["layer"] == 6 and m.shape == (len(sents), len(sents)) and np.allclose(np.diag(m), 1, atol=1e-4)


def test_cbow_static_vectors_cannot_separate(tmp_path, data_dir):
    lines = [l for l in (data_dir / "tatoeba" / "cmn-eng.txt").read_text(encoding="utf-8").splitlines()[:3000]]
    zh = [l.split("\t")[1] for l in lines]
    sents, labels, _ = read_sentences("apple-zh")
    res = train_cbow(zh + sents * 3, tmp_path / "cbow", segment="char", min_count=1, epochs=3)
    assert res.vocab_size > 500 and (tmp_path / "cbow" / "cbow.bin").exists()
    st = static_senses(tmp_path / "cbow", sents, labels, "果")
    assert st.static and st.layers[0].separation == pytest.approx(0.0, abs=1e-6)
    assert st.layers[0].within == pytest.approx(1.0) and len(st.neighbours) == 10
    assert "果" not in [w for w, _ in st.neighbours]
    # training is repeatable with the same seed
    train_cbow(zh + sents * 3, tmp_path / "cbow2", segment="char", min_count=1, epochs=3)
    assert (tmp_path / "cbow" / "cbow.bin").read_bytes() == (tmp_path / "cbow2" / "cbow.bin").read_bytes()
    assert segment_line("我買了iPhone 15", "char") == ["我", "買", "了", "iphone", "15"]
    assert "蘋果" in segment_line("我喜歡吃蘋果", "word")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")   # the worker dies on purpose
def test_cbow_worker_failure_ends_training(tmp_path, monkeypatch):
    """A gensim worker that dies must end the command, not leave it waiting on the worker's queue forever."""
    import faulthandler
    from gensim.models import Word2Vec
    from bertology.experiments import cbow

    def broken_job(self, *args, **kwargs):
        raise ValueError("worker boom")

    monkeypatch.setattr(Word2Vec, "_do_train_job", broken_job)
    faulthandler.dump_traceback_later(120, exit=True)   # if the guard breaks, fail CI instead of hanging it
    try:
        with pytest.raises(cbow.WorkerFailure, match="worker boom"):
            train_cbow(["a b c d e f"] * 50, tmp_path / "cbow", segment="word", min_count=1, epochs=2, progress=False)
    finally:
        faulthandler.cancel_dump_traceback_later()


def test_cbow_progress_bar_and_window_check(tmp_path, capsys):
    assert main(["cbow", "--corpus", str(_write(tmp_path / "c.txt", "我 喜歡 吃 蘋果\n" * 20)), "--out",
                 str(tmp_path / "o"), "--epochs", "2", "--min-count", "1"]) == 0
    assert "cbow" in capsys.readouterr().err                      # the epoch bar
    with pytest.raises(UserError, match="`window`"):
        train_cbow(["a b"], tmp_path / "x", window=0)


def test_cbow_sentences_join_the_corpus_so_senses_static_finds_the_target(tmp_path):
    """--sentences trains on a sense set too (the report's CBOW baseline): 'apple', absent from the corpus, gets
    a vector and neighbours, and `senses --static` on the same set runs."""
    corpus = _write(tmp_path / "c.txt", "the cat sat on the mat\n" * 20)
    base = ["cbow", "--corpus", str(corpus), "--epochs", "1", "--min-count", "1", "--target", "apple"]
    assert main(base + ["--out", str(tmp_path / "without")]) == 2        # 'apple' is not in the vocabulary
    assert main(base + ["--out", str(tmp_path / "o"), "--sentences", "apple-en"]) == 0
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert len(saved["neighbours"]["apple"]) == 10 and all(w != "apple" for w, _ in saved["neighbours"]["apple"])
    assert main(["senses", "--sentences", "apple-en", "--static", str(tmp_path / "o"), "--out",
                 str(tmp_path / "s")]) == 0


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_senses_writes_results_and_figures(tmp_path, tiny_model):
    out = tmp_path / "out"
    assert main(["senses", "--model", str(tiny_model), "--sentences", "apple-zh", "--layer", "1",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "bertology.senses/1" and doc["target"] == "果"
    assert [l["layer"] for l in doc["layers"]] == [0, 1, 2] and doc["similarity"]["layer"] == 1
    assert set(doc["layers"][0]) == {"layer", "within", "between", "separation", "silhouette", "purity"}
    assert {"sentence", "label", "start", "end"} <= set(doc["occurrences"][0])
    assert (out / "similarity.png").stat().st_size > 10_000 and (out / "separation.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--sentences", "apple-zh"], "tokenises '果' as ['[UNK]']"),
    (["--sentences", "apple-en", "--target", "banana"], "apple-en (en_apple.tsv): sentence 1 does not contain the target 'banana'"),
    (["--sentences", "nonexistent.tsv", "--target", "x"], "nonexistent.tsv: no such file"),
    (["--sentences", "apple-en", "--layer", "9"], "--layer 9 is out of range"),
    (["--sentences", "apple-en", "--model", "/nonexistent/model"], "could not load model"),
])
def test_cli_user_errors_exit_2_with_one_line(tmp_path, args, message):
    r = subprocess.run([sys.executable, "-m", "bertology.cli", "senses", "--out", str(tmp_path / "o"), *args],
                       capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_report_on_minilm_shows_every_section_and_why_zh_cannot_run(tmp_path, data_dir):
    out = tmp_path / "report"
    assert main(["report", "--out", str(out), "--only", "senses", "--only", "cbow",
                 "--data-dir", str(data_dir)]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "bertology.report/1" and len(doc["sections"]) == 5
    assert all(s["error"] is None for s in doc["sections"])
    zh = [s for s in doc["sections"] if "蘋果" in s["title"]][0]
    # minilm has no 蘋/果: the section runs on the shipped bilingual model and says why
    assert zh["model"] == "zh-en-mini" and "(on zh-en-mini)" in zh["title"]
    assert "because minilm cannot run this section" in page and "[UNK]" in page
    # the verdict's sense study runs on both models: Chinese on zh-en-mini; on minilm it is not applicable
    senses = {(c["model"], c["this_run"][:3] or c["reason"][:3]): c for c in doc["claims"] if c["id"] == "senses"}
    assert senses[("zh-en-mini", "zh:")]["verdict"] in ("shown", "not shown")
    assert senses[("minilm", "en:")]["ci"] and senses[("minilm", "en:")]["baselines"]["position-only purity"] <= 0.7
    minilm_zh = [c for c in doc["claims"] if c["id"] == "senses" and c["model"] == "minilm"
                 and c["verdict"] == "not applicable"]
    assert minilm_zh and "[UNK]" in minilm_zh[0]["reason"]
    assert doc["summary"].endswith(f"on minilm and zh-en-mini, quick settings, {doc['summary'][-10:]}")
    assert page.count("data:image/png;base64,") >= 4
    assert "<th>position purity</th>" in page     # the study's table keeps its columns when row 1 is not applicable
    assert "@font-face{font-family:'bertology-cjk'" in page      # Chinese renders without a system CJK font
    # without a fallback model the section says why it did not run
    assert main(["report", "--out", str(tmp_path / "nofb"), "--only", "senses", "--fallback-model", "",
                 "--data-dir", str(data_dir)]) == 0
    nofb = json.loads((tmp_path / "nofb" / "results.json").read_text(encoding="utf-8"))
    assert "[UNK]" in [s for s in nofb["sections"] if "蘋果" in s["title"]][0]["error"]


def test_cli_cbow_then_senses_static(tmp_path, data_dir, capsys):
    """`bertology cbow` on a slice of real Chinese text, then `senses --static` on its vectors: one vector per
    character whatever the context, so every occurrence of 果 is the same vector (separation exactly 0)."""
    lines = (data_dir / "tatoeba" / "cmn-eng.txt").read_text(encoding="utf-8").splitlines()[:1500]
    sents, _, _ = read_sentences("apple-zh")
    corpus = tmp_path / "zh.txt"
    corpus.write_text("\n".join([l.split("\t")[1] for l in lines] + sents * 3) + "\n", encoding="utf-8")
    cb = tmp_path / "cbow"
    assert main(["cbow", "--corpus", str(corpus), "--min-count", "1", "--epochs", "2", "--dim", "32",
                 "-t", "果", "--out", str(cb)]) == 0
    doc = json.loads((cb / "results.json").read_text(encoding="utf-8"))
    assert doc["vocab_size"] > 300 and doc["segment"] == "char" and (cb / "cbow.bin").exists()
    assert len(doc["neighbours"]["果"]) == 10 and "果:" in capsys.readouterr().out
    out = tmp_path / "static"
    assert main(["senses", "--sentences", "apple-zh", "--static", str(cb), "--out", str(out)]) == 0
    st = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [l["layer"] for l in st["layers"]] == [0]
    assert st["layers"][0]["separation"] == pytest.approx(0.0, abs=1e-6)
    assert st["layers"][0]["within"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("rows, message", [
    ("fruit\tI ate an apple\nfruit\tAn apple a day\n", "only one sense, 'fruit' (2 sentences)"),
    ("fruit\tI ate an apple\nco\tApple stock fell\nco\tApple shares rose\n", "sense 'fruit' has 1 sentence; at least 2"),
])
def test_sense_file_needs_two_senses_of_two_sentences(tmp_path, rows, message, capsys):
    bad = tmp_path / "one.tsv"
    bad.write_text("label\tsentence\n" + rows, encoding="utf-8")
    assert main(["senses", "--sentences", str(bad), "--target", "apple", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "one.tsv" in err and len(err.splitlines()) == 1


def test_typed_sentences_are_read_as_the_file_is_but_not_refused_for_one_per_sense():
    """`SensesSettings.typed` (the explorer's sentences box): the same sentences, labels and target as the file
    would give; one sentence per sense is the explorer's first experiment, not an error; none at all is."""
    from bertology.experiments.configs import SensesSettings
    from bertology.experiments.senses import resolve_sentences

    typed = (("fruit", "I ate an apple"), ("co", "Apple stock fell"))
    assert resolve_sentences("sentences", "apple", typed) == (["I ate an apple", "Apple stock fell"], ["fruit", "co"],
                                                              "sentences", "apple")
    with pytest.raises(UserError, match="^sentences: no sentences$"):
        resolve_sentences("sentences", "apple", ())
    with pytest.raises(UserError, match="`target` is required"):
        resolve_sentences("sentences", None, typed)
    assert SensesSettings(sentences="sentences", typed=typed, target="apple").typed == typed    # no --out needed
