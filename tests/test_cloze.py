"""Cloze accuracy: the built-in item set, scoring against fill-mask, and bad item files."""

from __future__ import annotations

import json

import pytest

from bertology.cli import main
from bertology.experiments.cloze import ClozeItem, cloze_accuracy, read_cloze_items
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
    assert doc["schema"] == "bertology.cloze/1" and set(doc["summary"]) == {"en", "zh"}
