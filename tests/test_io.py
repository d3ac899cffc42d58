"""io: every input format's loader (sentences, corpora, sequences, SQuAD, dictionaries) and storage, on small
files written here. Bad input must raise UserError naming the file and line (or question id)."""

from __future__ import annotations

import gzip
import json

import pytest

from bertology.errors import UserError
from bertology.io.corpora import parse_corpus_spec, read_corpora, read_corpus
from bertology.io.dictionaries import convert_dictionary, load_dictionary, load_muse_dictionary
from bertology.io.sentences import DEMO_SETS, read_sentences
from bertology.io.sequences import SEQUENCE_FORMATS, SEQUENCE_READERS, load_sequences
from bertology.io.squad import load_squad
from bertology.io.storage import (atomic_write_json, find_dataset, load_results, read_lines, replace_dir,
                                  save_results)


# --------------------------------------------------------------------------------------------- sentences
def test_demo_sentence_sets_ship_with_the_package():
    # TSV, plain text and bad rows: tests/test_senses.py
    for name in DEMO_SETS:
        sents, labels, _ = read_sentences(name)
        assert len(sents) >= 20 and len(set(labels)) == 2


# --------------------------------------------------------------------------------------------- corpora
def test_corpus_spec_column_cap_and_dedupe(tmp_path):
    f = tmp_path / "pairs.txt.gz"
    with gzip.open(f, "wt", encoding="utf-8") as g:
        g.write("a\tA\na\tA\nb\tB\nc\tC\n")
    spec = parse_corpus_spec(f"zh={f}#1@2")
    assert (spec.lang, spec.column, spec.max_lines) == ("zh", 1, 2)
    assert read_corpus(spec) == ["A", "B"]                      # distinct lines, capped
    assert read_corpora([f"en={f}#0", f"en={f}#1"])["en"] == ["a", "b", "c", "A", "B", "C"]
    with pytest.raises(UserError, match="expected LANG=FILE"):
        parse_corpus_spec("no-language")
    with pytest.raises(UserError, match=r"pairs.txt.gz:1: no column 5"):
        read_corpus(parse_corpus_spec(f"en={f}#5"))


def test_corpus_from_squad_json(tmp_path):
    f = tmp_path / "sq.json"
    f.write_text(json.dumps({"data": [{"paragraphs": [{"context": "one  context", "qas": []}]}]}))
    assert read_corpus(parse_corpus_spec(f"en={f}")) == ["one context"]


# --------------------------------------------------------------------------------------------- sequences
def test_every_sequence_format_has_a_reader(tmp_path):
    assert SEQUENCE_FORMATS == ("auto", *SEQUENCE_READERS)
    files = {
        "splice": ("class,name,seq\nEI, x1, ACGT\nN, x2, TTGA\n", "splice.csv"),
        "protein-tsv": ("label\tid\tsequence\ncyto\tp1\tMKV\n", "prot.tsv"),
        "fasta": (">p1 cyto\nMK\nV\n>p2|nucleus\nAAA\n", "x.fasta"),
        "music": ("composer\tpiece\tpart\tnotes\nbach\tp1\t0\tC4 D4\nbach\tp1\t1\tE4 F4\n", "m.tsv"),
        "table": ("label,sequence\nx,ACG\n", "t.csv"),
    }
    for fmt, (text, name) in files.items():
        path = tmp_path / name
        path.write_text(text)
        data = load_sequences(path)                       # auto-detected
        assert data.format == fmt, fmt
        assert load_sequences(path, fmt=fmt).labels == data.labels
    assert load_sequences(tmp_path / "x.fasta").sequences == [list("MKV"), list("AAA")]
    assert load_sequences(tmp_path / "t.csv").sequences == [list("ACG")]     # header order honoured
    assert load_sequences(tmp_path / "m.tsv").groups == ["p1", "p1"]


def test_sequence_format_must_be_known(tmp_path):
    # bad rows naming file and line, --skip-bad: tests/test_crossdomain.py
    f = tmp_path / "t.csv"
    f.write_text("ACG,a\n")
    with pytest.raises(UserError, match="format must be one of auto, splice"):
        load_sequences(f, fmt="xml")


# --------------------------------------------------------------------------------------------- SQuAD
def _squad(qas, context="The cat sat on the mat."):
    return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}


def test_squad_relocates_offsets_and_skips_bad(tmp_path):
    f = tmp_path / "sq.json"
    f.write_text(json.dumps(_squad([
        {"id": "q1", "question": "Where?", "answers": [{"text": "mat", "answer_start": 3}]},    # off: relocated
        {"id": "q2", "question": "Who?", "answers": [{"text": "dog", "answer_start": 0}]},     # not in context
    ])))
    with pytest.raises(UserError, match=r"sq.json: question 'q2': answer 0: .*does not occur"):
        load_squad(f)
    ds = load_squad(f, skip_bad=True)
    assert [e.id for e in ds.examples] == ["q1"] and ds.skipped == 1 and ds.relocated == 1
    assert ds.examples[0].answer_starts == [19]
    no_answers = tmp_path / "na.json"
    no_answers.write_text(json.dumps(_squad([{"id": "q", "question": "?", "answers": []}])))
    assert load_squad(no_answers, require_answers=False).examples[0].answers == []
    with pytest.raises(UserError, match="no answers"):
        load_squad(no_answers)


# --------------------------------------------------------------------------------------------- dictionaries
def test_muse_dictionary_and_conversion(tmp_path):
    f = tmp_path / "d.txt"
    f.write_text("apple\t蘋果\napple\t蘋果\nbook\t書\n", encoding="utf-8")
    d = load_muse_dictionary(f)
    assert d.pairs == [("apple", "蘋果"), ("book", "書")] and d.translations() == {"apple": ["蘋果"], "book": ["書"]}
    s = convert_dictionary(d, "t2s")
    assert s.pairs == [("apple", "苹果"), ("book", "书")] and (s.converted_words, s.chinese_words) == (2, 2)
    assert convert_dictionary(d, None) is d
    assert load_dictionary(str(f), fmt="auto").format == "muse"
    bad = tmp_path / "bad.txt"
    bad.write_text("apple\n")
    with pytest.raises(UserError, match=r"bad.txt:1: expected 'source<TAB>target'"):
        load_muse_dictionary(bad)
    with pytest.raises(UserError, match="`dict_format`"):
        load_dictionary(str(f), fmt="xml")


# --------------------------------------------------------------------------------------------- storage
def test_results_are_versioned_and_checked(tmp_path):
    save_results(tmp_path, "bertology.test/1", {"x": 1.5, "nan": float("nan"), "path": tmp_path})
    doc = load_results(tmp_path, "bertology.test/")
    assert doc["schema"] == "bertology.test/1" and doc["bertology_version"] and doc["nan"] is None
    assert doc["path"] == str(tmp_path)
    with pytest.raises(UserError, match="field 'schema'"):
        load_results(tmp_path, "bertology.other/")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{oops")
    with pytest.raises(UserError, match=r"results.json:1: not valid JSON"):
        load_results(tmp_path / "broken")


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / "a" / "x.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "a" / "x.json").read_text()) == {"k": [1, 2]}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.json"]
    new, target = tmp_path / "new", tmp_path / "target"
    for d, text in ((target, "old"), (new, "new")):
        d.mkdir()
        (d / "f").write_text(text)
    replace_dir(new, target)
    assert (target / "f").read_text() == "new" and not new.exists() and not (tmp_path / "target.old").exists()


def test_read_lines_and_find_dataset(tmp_path):
    f = tmp_path / "t.txt.gz"
    with gzip.open(f, "wt", encoding="utf-8") as g:
        g.write(" a \n\nb\nc\n")
    assert list(read_lines(f)) == ["a", "b", "c"] and list(read_lines(f, limit=2)) == ["a", "b"]
    assert find_dataset(f) == f
    with pytest.raises(UserError, match="not a known data set name"):
        find_dataset(tmp_path / "missing.txt")
    with pytest.raises(UserError, match="no such file"):
        list(read_lines(tmp_path / "missing.txt"))


def test_leftover_tmp_files_of_killed_writes_are_removed(tmp_path):
    """issue 14.11: a write killed between mkstemp and rename leaves `.NAME.xxxx.tmp`; the next write of NAME
    removes it once it is old enough that no live writer can own it, and leaves other files alone."""
    import os
    import time

    from bertology.io.storage import STALE_TMP_SECONDS, atomic_write_text

    stale = tmp_path / ".results.json.abc123.tmp"
    fresh = tmp_path / ".results.json.def456.tmp"          # a writer still at work
    other = tmp_path / ".other.json.abc123.tmp"
    for f in (stale, fresh, other):
        f.write_text("partial")
    old = time.time() - STALE_TMP_SECONDS - 5
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic_write_text(tmp_path / "results.json", "{}")
    assert not stale.exists() and fresh.exists() and other.exists()
    assert (tmp_path / "results.json").read_text() == "{}"
