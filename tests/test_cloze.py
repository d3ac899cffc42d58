"""Cloze accuracy: the built-in item set, scoring against fill-mask, the n-gram baselines of the verdict, the
CLI and the report on one run, and bad item files."""

from __future__ import annotations

import gzip
import json

import pytest

from bertology.cli import main
from bertology.experiments import cloze
from bertology.experiments.cloze import ClozeConfig, ClozeItem, cloze_accuracy, read_cloze_items
from bertology.experiments.pretrain import fill_mask


def test_builtin_set_has_both_languages_and_scripts():
    items = read_cloze_items()
    langs = [it.lang for it in items]
    assert langs.count("zh") >= 30 and langs.count("en") >= 20
    assert any("蘋[MASK]" in it.sentence for it in items) and any("苹[MASK]" in it.sentence for it in items)


def test_scores_agree_with_fill_mask(tiny_model):
    items = [ClozeItem("zh", "今天買了蘋[MASK]來吃", "果"), ClozeItem("en", "i ate an [MASK]", "apple"),
             ClozeItem("en", "a [MASK] here", "xylophone")]          # not in the tiny vocabulary
    res = cloze_accuracy(str(tiny_model), items)
    top5 = [[c["token"] for c in it["masks"][0]["candidates"]]
            for it in fill_mask(str(tiny_model), [i.sentence for i in items]).items]
    assert [r["top5"] for r in res.items] == top5
    assert [r["hit5"] for r in res.items[:2]] == [top5[0].count("果") == 1, "apple" in top5[1]]
    assert res.summary["en"]["n"] == 2 and res.summary["en"]["unscorable"] == 1
    assert not res.items[2]["hit5"]


@pytest.mark.parametrize("text,message", [("lang\tsentence\n", "expected the header"),
                                          ("lang\tsentence\tanswer\nzh\t沒有遮罩\t果\n", ":2: the sentence must hold"),
                                          ("lang\tsentence\tanswer\nzh\t[MASK]\n", ":2: expected 3")])
def test_bad_item_files_exit_2(tmp_path, tiny_model, text, message, capsys):
    f = tmp_path / "items.tsv"
    f.write_text(text, encoding="utf-8")
    assert main(["cloze", "--model", str(tiny_model), "--items", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cloze_command_writes_results(tmp_path, tiny_model):
    assert main(["cloze", "--model", str(tiny_model), "--out", str(tmp_path / "c")]) == 0
    doc = json.loads((tmp_path / "c" / "results.json").read_text())
    assert doc["schema"] == "bertology.cloze/2" and set(doc["summary"]) == {"en", "zh"}
    assert doc["baselines"] is None and doc["lecture"]["sentence"] == "今天買了蘋[MASK]來吃"


# A corpus whose n-gram predictors are known: the most frequent English token is `the`, `an` is followed by
# `apple`; in Chinese 我 is the most frequent and 了 is followed by 果.
CORPUS = {"en": ["i ate an apple", "i ate an apple", "the dog is red", "the cat", "the the"],
          "zh": ["我吃了果", "我吃了果", "我是人"]}
ITEMS = ("lang\tsentence\tanswer\n"
         "en\ti ate an [MASK]\tapple\n"         # unigram `the`: miss; bigram after `an`: apple, a hit
         "en\t[MASK] dog is red\tthe\n"         # no left neighbour: the bigram falls back on the unigram, both hit
         "en\ta [MASK] here\txylophone\n"       # not in the tiny vocabulary: unscorable, left out
         "zh\t我吃了[MASK]\t果\n")               # unigram 我: miss; bigram after 了: 果, a hit


def _data_dir(root, corpus=CORPUS):
    """A data directory holding corpus-en and corpus-zh (corpora/LANG/*.txt.gz) with `corpus`'s lines."""
    for lang, lines in corpus.items():
        (root / "corpora" / lang).mkdir(parents=True)
        with gzip.open(root / "corpora" / lang / "part.txt.gz", "wt", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
    return root


@pytest.fixture
def items_file(tmp_path):
    f = tmp_path / "items.tsv"
    f.write_text(ITEMS, encoding="utf-8")
    return f


def test_baselines_on_a_tiny_model(tiny_model, tmp_path, items_file):
    cfg = ClozeConfig(model=str(tiny_model), items=str(items_file), baselines=True,
                      data_dir=str(_data_dir(tmp_path / "data")))
    res = cloze.run(cfg)
    b = res.baselines
    assert [(r["unigram"], r["bigram"]) for r in res.items] == [(False, True), (True, True), (None, None),
                                                                (False, True)]
    assert (b["items"], b["unscorable"]) == (3, 1)
    assert b["corpus_lines"] == {"en": 5, "zh": 6}           # the Chinese lines once more in Traditional
    assert (b["unigram"], b["bigram"], b["stronger"]) == (pytest.approx(1 / 3), 1.0, "bigram")
    model_top1 = [r["hit1"] for r in res.items if r["scorable"]]
    assert b["top1"] == pytest.approx(sum(model_top1) / 3) and b["effect"] == pytest.approx(b["top1"] - 1.0)
    assert b["ci"][0] <= b["effect"] <= b["ci"][1]
    assert b["per_language"] == [{"lang": "en", "items": 2, "model": pytest.approx(sum(model_top1[:2]) / 2),
                                  "unigram": 0.5, "bigram": 1.0},
                                 {"lang": "zh", "items": 1, "model": float(model_top1[2]), "unigram": 0.0,
                                  "bigram": 1.0}]
    # the corpus lines are read once and shared: a second model (here the same one again) reads nothing
    hits = cloze.baseline_corpora.cache_info().hits
    cloze.run(cfg)
    assert cloze.baseline_corpora.cache_info().hits == hits + 1


def test_simplified_copies_are_added_after_the_items(tiny_model):
    res = cloze.run(ClozeConfig(model=str(tiny_model), items="cloze-items", add_simplified=True))
    # 2 of the 40 zh items read the same in both scripts: they get no copy (they would be counted twice)
    assert res.summary["zh"]["n"] == 78 and res.summary["en"]["n"] == 40
    assert len({(r["sentence"], r["answer"]) for r in res.items}) == len(res.items)
    assert res.items[0]["sentence"] == "太陽每天早上從[MASK]方升起。" and res.items[80]["sentence"] == "太阳每天早上从[MASK]方升起。"
    assert res.baselines is None and res.settings["add_simplified"] is True


def test_command_writes_what_run_returns(tiny_model, tmp_path, items_file, capsys):
    data = _data_dir(tmp_path / "data")
    assert main(["cloze", "-m", str(tiny_model), "--items", str(items_file), "--baselines", "--data-dir", str(data),
                 "--baseline-lines", "100", "-o", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out
    assert "unigram 0.333, left-neighbour bigram 1.000 (counted on 5 en, 6 zh corpus lines)" in printed
    assert "model − bigram: " in printed and "95% CI [" in printed
    res = cloze.run(ClozeConfig(model=str(tiny_model), items=str(items_file), baselines=True, data_dir=str(data),
                                baseline_lines=100))
    cloze.save(res, tmp_path / "lib")
    written = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert written == json.loads((tmp_path / "lib" / "results.json").read_text())
    assert written["schema"] == "bertology.cloze/2" and written["settings"]["baseline_lines"] == 100


def test_no_scorable_item_is_not_applicable_with_its_count(tiny_model, tmp_path, capsys):
    from bertology.report.sections.pretrain import present_cloze

    f = tmp_path / "items.tsv"
    f.write_text("lang\tsentence\tanswer\nen\tthe [MASK] is red\tzebra\nen\ta [MASK] ran\tgiraffe\n",
                 encoding="utf-8")
    empty = tmp_path / "no-corpus"       # never read: nothing to compare
    empty.mkdir()
    assert main(["cloze", "-m", str(tiny_model), "--items", str(f), "--baselines", "--data-dir", str(empty),
                 "-o", str(tmp_path / "o")]) == 0
    why = "none of the 2 items' answers is a single token of its vocabulary"
    assert f"baselines: not applicable: {why}" in capsys.readouterr().out
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    assert doc["baselines"] == {"not_applicable": why, "items": 0, "unscorable": 2}
    res = cloze.run(ClozeConfig(model=str(tiny_model), items=str(f), baselines=True, data_dir=str(empty)))
    assert present_cloze(res) == ({"model": str(tiny_model), "not_applicable": why}, None)


def test_missing_items_or_corpus_exit_2(tiny_model, tmp_path, items_file, capsys):
    assert main(["cloze", "-m", str(tiny_model), "--items", str(tmp_path / "nope.tsv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.tsv: no such cloze file" in err and len(err.splitlines()) == 1
    no_lines = _data_dir(tmp_path / "data", {"en": [], "zh": ["我吃了果"]})
    assert main(["cloze", "-m", str(tiny_model), "--items", str(items_file), "--baselines",
                 "--data-dir", str(no_lines)]) == 2
    err = capsys.readouterr().err.strip()
    assert "corpus-en: no text lines found" in err and len(err.splitlines()) == 1
