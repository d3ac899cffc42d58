"""Bad input, table-driven (issue 14): every command, through `main([...])` as a user runs it, on inputs an
adversarial user tried. Each must end with exit 2 and one line on stderr that names the flag or file at fault,
never a traceback, and before any work starts (so every case here takes well under a second or two).

The table is the contract: a new command or flag with a bound gets its rows here.
"""

from __future__ import annotations

import gzip
import json
import pickle
import re
from pathlib import Path

import pytest

from bertology.cli import main

CORPUS = ["the apple is red", "i ate an apple today", "the bank sells shares", "a new phone was launched",
          "the river bank is green", "he bought a book", "she read the book", "we eat apple pie"] * 4


class _Evil:
    """A pickle that would run code when loaded: torch.load(weights_only=True) must refuse it."""

    def __reduce__(self):
        import os

        return (os.getcwd, ())


@pytest.fixture(scope="module")
def bad(tmp_path_factory, tiny_model):
    """The files the table refers to by name: good ones to isolate one fault, and broken ones."""
    d = tmp_path_factory.mktemp("bad")
    (d / "afile").write_text("not a directory\n")
    (d / "corpus.txt").write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    # invalid UTF-8 throughout (bytes 0x80-0xff alone are never valid)
    (d / "garbage.txt").write_bytes(bytes(range(128, 256)) * 8)
    (d / "garbage.json").write_bytes(b"\xff\xfe{" + bytes(range(128, 256)))
    full = gzip.compress(("\n".join(CORPUS * 40) + "\n").encode())
    (d / "trunc.txt.gz").write_bytes(full[: len(full) // 2])
    (d / "trunc.json.gz").write_bytes(gzip.compress(b'{"a": "' + b"x" * 5000 + b'"}')[:40])
    ctx = "the apple is red and the bank is green"
    squad = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": ctx, "qas": [
        {"id": "q1", "question": "what is red", "answers": [{"text": "the apple", "answer_start": 0}]}]}]}]}
    (d / "squad.json").write_text(json.dumps(squad))
    (d / "preds.json").write_text(json.dumps({"q1": "the apple"}))
    (d / "dict.txt").write_text("apple\t蘋果\nbank\t銀行\n", encoding="utf-8")
    # sequence tasks: one class only; an empty sequence on line 3; a symbol that is no letter on line 3
    (d / "one-class.csv").write_text("sequence,label\nACGT,a\nACGA,a\nACGG,a\n")
    (d / "empty-seq.csv").write_text("sequence,label\nACGT,a\n,b\nACGG,a\n")
    (d / "bad-symbol.csv").write_text("sequence,label\nACGT,a\nAC1T,b\nACGG,a\n")
    # issue 27.5: a task file; a repeated header row (two files joined); a mapping with two symbols on one token
    two = "sequence,label\n" + "".join(f"{format(i, '06b').replace('0', 'A').replace('1', 'C')}GT,{'ab'[i % 2]}\n"
                                        for i in range(40))      # 40 distinct sequences, two classes
    (d / "two-class.csv").write_text(two)
    (d / "rep-header.csv").write_text(two + two)
    (d / "dup-map.json").write_text(json.dumps({"A": "apple", "C": "apple", "G": "bank", "T": "river"}))
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (d / "paras-str.json").write_text(json.dumps({"data": [{"title": "t", "paragraphs": "oops"}]}))
    (d / "answers-str.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": ctx, "qas": [
        {"id": "q1", "question": "what", "answers": ["the apple"]}]}]}]}))
    # damaged models: each a copy of the tiny model with one file spoilt
    import shutil

    for name in ("trunc-st", "garbage-st", "config-list", "pickle"):
        shutil.copytree(tiny_model, d / name)
    st = (d / "trunc-st" / "model.safetensors").read_bytes()
    (d / "trunc-st" / "model.safetensors").write_bytes(st[: len(st) // 2])
    (d / "garbage-st" / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    (d / "config-list" / "config.json").write_text("[1, 2, 3]")
    (d / "pickle" / "model.safetensors").unlink()
    with open(d / "pickle" / "pytorch_model.bin", "wb") as f:
        pickle.dump({"w": _Evil()}, f)
    return d


M = "{model}"          # the tiny model with an MLM head
O = "{tmp}/out"        # a fresh output directory that does not exist yet
# (case id, argv with {bad}/{model}/{tmp} filled in, a string the one-line message must contain)
CASES = [
    # --out is a file, or lies under a file: refused before any work, for every command that writes
    *[(f"out-file-{cmd[0]}{'-' + cmd[1] if len(cmd) > 1 and not cmd[1].startswith('-') else ''}",
       [*cmd, "--out", "{bad}/afile"], "--out")
      for cmd in (["senses", "-s", "apple-en", "-m", M], ["cbow", "-c", "{bad}/corpus.txt"],
                  ["report", "-m", M], ["tokenizer", "train", "-c", "en={bad}/corpus.txt"],
                  ["pretrain", "-c", "en={bad}/corpus.txt"], ["fill-mask", "the [MASK]", "-m", M],
                  ["cloze", "-m", M], ["crossdomain", "-m", M],
                  ["qa", "score", "-d", "{bad}/squad.json", "-p", "{bad}/preds.json"],
                  ["qa", "train", "-t", "{bad}/squad.json", "-m", M],
                  ["qa", "predict", "-d", "{bad}/squad.json", "-m", M],
                  ["qa", "eval", "-d", "{bad}/squad.json", "-m", M],
                  ["qa", "crosslingual", "-t", "en={bad}/squad.json", "-e", "x={bad}/squad.json", "-m", M],
                  ["align", "-c", "en={bad}/corpus.txt", "-m", M],
                  ["langvec", "-c", "en={bad}/corpus.txt", "-m", M],
                  ["align-scale", "-c", "en={bad}/corpus.txt"])],
    ("out-under-file", ["cbow", "-c", "{bad}/corpus.txt", "--out", "{bad}/afile/sub"], "--out"),
    # numbers out of range: named by flag, refused before the data is read
    ("serve-port", ["serve", "--port", "70000"], "--port"),
    ("serve-threads-0", ["serve", "--threads", "0"], "--threads"),
    ("serve-model", ["serve", "-m", "{bad}/no-such-model"], "no-such-model"),
    ("cbow-window-0", ["cbow", "-c", "{bad}/corpus.txt", "-o", O, "--window", "0"], "--window"),
    ("cbow-dim-0", ["cbow", "-c", "{bad}/corpus.txt", "-o", O, "--dim", "0"], "--dim"),
    ("cbow-epochs-0", ["cbow", "-c", "{bad}/corpus.txt", "-o", O, "--epochs", "0"], "--epochs"),
    ("cbow-max-lines", ["cbow", "-c", "{bad}/corpus.txt", "-o", O, "--max-lines", "-1"], "--max-lines"),
    ("senses-batch-0", ["senses", "-s", "apple-en", "-m", M, "-o", O, "--batch-size", "0"], "--batch-size"),
    ("tok-budget-0", ["tokenizer", "train", "-c", "en={bad}/corpus.txt", "-o", O, "--budget-tokens", "0"],
     "--budget-tokens"),
    ("tok-alpha-5", ["tokenizer", "train", "-c", "en={bad}/corpus.txt", "-o", O, "--alpha", "5"], "--alpha"),
    ("pretrain-warmup", ["pretrain", "-c", "en={bad}/corpus.txt", "-o", O, "--warmup", "-5"], "--warmup"),
    ("pretrain-lr", ["pretrain", "-c", "en={bad}/corpus.txt", "-o", O, "--lr", "-1"], "--lr"),
    ("pretrain-batch-0", ["pretrain", "-c", "en={bad}/corpus.txt", "-o", O, "--batch-size", "0"], "--batch-size"),
    ("fill-k-neg", ["fill-mask", "the [MASK]", "-m", M, "-k", "-3"], "--top-k"),
    ("fill-k-huge", ["fill-mask", "the [MASK]", "-m", M, "-k", "100000"], "--top-k"),
    ("cross-epochs-0", ["crossdomain", "-m", M, "-o", O, "--epochs", "0"], "--epochs"),
    ("cross-seeds-0", ["crossdomain", "-m", M, "-o", O, "--seeds", "0"], "--seeds"),
    ("cross-warmup", ["crossdomain", "-m", M, "-o", O, "--warmup", "-1"], "--warmup"),
    ("cross-one-class", ["crossdomain", "-m", M, "-o", O, "--task", "{bad}/one-class.csv"], "one-class.csv"),
    ("cross-empty-seq", ["crossdomain", "-m", M, "-o", O, "--task", "{bad}/empty-seq.csv"], "empty-seq.csv:3"),
    ("cross-bad-symbol", ["crossdomain", "-m", M, "-o", O, "--task", "{bad}/bad-symbol.csv"], "bad-symbol.csv:3"),
    ("cross-lr", ["crossdomain", "-m", M, "-o", O, "--lr", "-1"], "--lr"),
    ("cross-max-length", ["crossdomain", "-m", M, "-o", O, "--max-length", "2"], "--max-length"),
    ("cross-limit", ["crossdomain", "-m", M, "-o", O, "--limit", "-1"], "--limit"),
    ("cross-batch-0", ["crossdomain", "-m", M, "-o", O, "--batch-size", "0"], "--batch-size"),
    ("qa-train-steps", ["qa", "train", "-t", "{bad}/squad.json", "-m", M, "-o", O, "--max-steps", "-1"],
     "--max-steps"),
    ("qa-train-epochs", ["qa", "train", "-t", "{bad}/squad.json", "-m", M, "-o", O, "--epochs", "0"], "--epochs"),
    ("qa-train-lr", ["qa", "train", "-t", "{bad}/squad.json", "-m", M, "-o", O, "--lr", "-1"], "--lr"),
    ("qa-train-batch", ["qa", "train", "-t", "{bad}/squad.json", "-m", M, "-o", O, "--batch-size", "0"],
     "--batch-size"),
    ("qa-predict-limit-0", ["qa", "predict", "-d", "{bad}/squad.json", "-m", M, "-o", O, "--limit", "0"],
     "--limit"),
    ("qa-predict-limit-neg", ["qa", "predict", "-d", "{bad}/squad.json", "-m", M, "-o", O, "--limit", "-1"],
     "--limit"),
    ("qa-predict-batch-0", ["qa", "predict", "-d", "{bad}/squad.json", "-m", M, "-o", O,
                            "--eval-batch-size", "0"], "--eval-batch-size"),
    ("qa-eval-limit-0", ["qa", "eval", "-d", "{bad}/squad.json", "-m", M, "-o", O, "--limit", "0"], "--limit"),
    ("qa-eval-convert", ["qa", "eval", "-d", "{bad}/squad.json", "-m", M, "-o", O, "--convert", "zz"],
     "--convert"),
    ("qa-predict-convert", ["qa", "predict", "-d", "{bad}/squad.json", "-m", M, "-o", O, "--convert", "zz"],
     "--convert"),
    ("align-csls-k", ["align", "-c", "en={bad}/corpus.txt", "-m", M, "-o", O, "--csls-k", "-1"], "--csls-k"),
    ("align-max-length", ["align", "-c", "en={bad}/corpus.txt", "-m", M, "-o", O, "--max-length", "2"],
     "--max-length"),
    ("align-k-neg", ["align", "-c", "en={bad}/corpus.txt", "-m", M, "-o", O, "--k", "-3"], "--k"),
    ("align-max-lines", ["align", "-c", "en={bad}/corpus.txt", "-m", M, "-o", O, "--max-lines", "-1"],
     "--max-lines"),
    # named by this command's flag, not the library field's default spelling (issue 14.9)
    ("align-layers", ["align", "-c", "en={bad}/corpus.txt", "-c", "zh={bad}/corpus.txt", "-d", "{bad}/dict.txt",
                      "-m", M, "-o", O, "--layers", "0,99", "--no-cbow"], "--layers"),
    ("langvec-sentences-spec", ["langvec", "-c", "en={bad}/corpus.txt", "-c", "zh={bad}/corpus.txt",
                                "-d", "{bad}/dict.txt", "-m", M, "-o", O, "--sentences", "nolang"], "--sentences"),
    ("langvec-mean-0", ["langvec", "-c", "en={bad}/corpus.txt", "-m", M, "-o", O, "--mean-sentences", "0"],
     "--mean-sentences"),
    ("scale-steps-0", ["align-scale", "-c", "en={bad}/corpus.txt", "-o", O, "--max-steps", "0"], "--max-steps"),
    ("scale-old-steps-0", ["align-scale", "-c", "en={bad}/corpus.txt", "-o", O, "--steps=0"], "--max-steps"),
    # numbers that are not finite (issue 27.1): float() reads inf, nan and 1e400, and click's min= lets them by
    ("qa-train-lr-inf", ["qa", "train", "-t", "{bad}/squad.json", "-m", M, "-o", O, "--lr", "inf"], "--lr"),
    ("qa-train-epochs-inf", ["qa", "train", "-t", "{bad}/squad.json", "-m", M, "-o", O, "--epochs", "inf"],
     "--epochs"),
    ("qa-cross-lr-nan", ["qa", "crosslingual", "-t", "en={bad}/squad.json", "-e", "x={bad}/squad.json", "-m", M,
                         "-o", O, "--lr", "nan"], "--lr"),
    ("pretrain-lr-inf", ["pretrain", "-c", "en={bad}/corpus.txt", "-o", O, "--lr", "inf"], "--lr"),
    ("pretrain-warmup-inf", ["pretrain", "-c", "en={bad}/corpus.txt", "-o", O, "--warmup", "inf"], "--warmup"),
    ("pretrain-dropout-nan", ["pretrain", "-c", "en={bad}/corpus.txt", "-o", O, "--dropout", "nan"], "--dropout"),
    # bounds that exclude an end, which pretrain checks itself (a setting's bounds include theirs)
    ("pretrain-dropout-1", ["pretrain", "-c", "en={bad}/corpus.txt", "-o", O, "--dropout", "1"], "--dropout"),
    ("pretrain-mask-rate-1", ["pretrain", "-c", "en={bad}/corpus.txt", "-o", O, "--mask-rate", "1"], "--mask-rate"),
    ("tok-alpha-nan", ["tokenizer", "train", "-c", "en={bad}/corpus.txt", "-o", O, "--alpha", "nan"], "--alpha"),
    ("cross-lr-inf", ["crossdomain", "-m", M, "-o", O, "--lr", "inf"], "--lr"),
    ("cross-lr-1e400", ["crossdomain", "-m", M, "-o", O, "--lr", "1e400"], "--lr"),
    ("cross-warmup-inf", ["crossdomain", "-m", M, "-o", O, "--warmup", "inf"], "--warmup"),
    ("cross-lr-grid-nan", ["crossdomain", "-m", M, "-o", O, "--lr-grid", "1e-4,nan"], "--lr-grid"),
    ("scale-lr-inf", ["align-scale", "-c", "en={bad}/corpus.txt", "-o", O, "--lr", "inf"], "--lr"),
    ("qa-predict-margin-nan", ["qa", "predict", "-d", "{bad}/squad.json", "-m", M, "-o", O, "--precision",
                               "bf16-verified", "--verify-margin", "nan"], "--verify-margin"),
    ("langvec-alphas-nan", ["langvec", "-c", "en={bad}/corpus.txt", "-m", M, "-o", O, "--alphas", "nan,inf"],
     "--alphas"),
    ("senses-seed-neg", ["senses", "-s", "apple-en", "-m", M, "-o", O, "--seed", "-1"], "--seed"),
    # issue 27.5: tracebacks, silently ignored flags and silently wrong results, each now one line
    ("out-unwritable", ["cbow", "-c", "{bad}/corpus.txt", "-o", "/proc/bertology-out"], "--out"),
    ("align-layers-empty", ["align", "-c", "en={bad}/corpus.txt", "-c", "zh={bad}/corpus.txt", "-d",
                            "{bad}/dict.txt", "-m", M, "-o", O, "--layers", ""], "--layers"),
    ("cbow-min-count-huge", ["cbow", "-c", "{bad}/corpus.txt", "-o", O, "--min-count", "1000000"], "--min-count"),
    ("cross-kmer-100", ["crossdomain", "-m", M, "-o", O, "-t", "{bad}/two-class.csv", "--kmer", "100"], "--kmer"),
    ("cross-repeated-header", ["crossdomain", "-m", M, "-o", O, "-t", "{bad}/rep-header.csv"], "rep-header.csv:42"),
    ("cross-mapping-dup", ["crossdomain", "-m", M, "-o", O, "-t", "{bad}/two-class.csv", "--mapping",
                           "{bad}/dup-map.json"], "dup-map.json"),
    ("cross-data-dir-file", ["crossdomain", "-m", M, "-o", O, "--data-dir", "{bad}/afile"], "--data-dir"),
    ("serve-data-dir-file", ["serve", "--data-dir", "{bad}/afile"], "--data-dir"),
    ("qa-eval-data-dir-file", ["qa", "eval", "-d", "cmrc-trial", "-m", M, "-o", O, "--data-dir", "{bad}/afile"],
     "--data-dir"),
    ("score-deep-json", ["qa", "score", "-d", "{bad}/deep.json", "-p", "{bad}/preds.json"], "deep.json"),
    ("score-preds-deep-json", ["qa", "score", "-d", "{bad}/squad.json", "-p", "{bad}/deep.json"], "deep.json"),
    ("squad-paragraphs-str", ["qa", "score", "-d", "{bad}/paras-str.json", "-p", "{bad}/preds.json"],
     "paras-str.json"),
    ("squad-answers-str", ["qa", "train", "-t", "{bad}/answers-str.json", "-m", M, "-o", O], "answers-str.json"),
    ("fill-mask-surrogate", ["fill-mask", "the \udced\udca0\udc80 [MASK]", "-m", M], "the text"),
    ("qa-cross-eval-twice", ["qa", "crosslingual", "-t", "en={bad}/squad.json", "-e", "x={bad}/squad.json",
                             "-e", "x={bad}/squad.json", "-m", M, "-o", O], "--eval"),
    ("langvec-sentences-zh", ["langvec", "-c", "en={bad}/corpus.txt", "-c", "zh={bad}/corpus.txt",
                              "-d", "{bad}/dict.txt", "-m", M, "-o", O, "--sentences", "zh={bad}/corpus.txt"],
     "--sentences"),
    ("scale-sentences-twice", ["align-scale", "-c", "en={bad}/corpus.txt", "-o", O, "--sentences", "10,10"],
     "--sentences"),
    # garbage bytes / a truncated .gz as each kind of input file: named by file
    ("cbow-garbage", ["cbow", "-c", "{bad}/garbage.txt", "-o", O], "garbage.txt"),
    ("cbow-trunc-gz", ["cbow", "-c", "{bad}/trunc.txt.gz", "-o", O], "trunc.txt.gz"),
    ("tok-garbage", ["tokenizer", "train", "-c", "en={bad}/garbage.txt", "-o", O], "garbage.txt"),
    ("tok-trunc-gz", ["tokenizer", "train", "-c", "en={bad}/trunc.txt.gz", "-o", O], "trunc.txt.gz"),
    ("senses-garbage", ["senses", "-s", "{bad}/garbage.txt", "-t", "x", "-m", M, "-o", O], "garbage.txt"),
    ("senses-trunc-gz", ["senses", "-s", "{bad}/trunc.txt.gz", "-t", "x", "-m", M, "-o", O], "trunc.txt.gz"),
    ("align-dict-garbage", ["align", "-c", "en={bad}/corpus.txt", "-c", "zh={bad}/corpus.txt",
                            "-d", "{bad}/garbage.txt", "-m", M, "-o", O], "garbage.txt"),
    ("score-preds-garbage", ["qa", "score", "-d", "{bad}/squad.json", "-p", "{bad}/garbage.json"],
     "garbage.json"),
    ("score-preds-trunc-gz", ["qa", "score", "-d", "{bad}/squad.json", "-p", "{bad}/trunc.json.gz"],
     "trunc.json.gz"),
    ("score-data-garbage", ["qa", "score", "-d", "{bad}/garbage.json", "-p", "{bad}/preds.json"], "garbage.json"),
    ("score-data-trunc-gz", ["qa", "score", "-d", "{bad}/trunc.json.gz", "-p", "{bad}/preds.json"],
     "trunc.json.gz"),
    ("cross-task-garbage", ["crossdomain", "-t", "{bad}/garbage.txt", "-m", M, "-o", O], "garbage.txt"),
    ("cloze-garbage", ["cloze", "--items", "{bad}/garbage.txt", "-m", M], "garbage.txt"),
    # damaged models and refused pickles: named by file, never a suggestion to turn safety off
    *[(f"model-{name}-{cmd[0]}", [*cmd, "-m", f"{{bad}}/{name}"], name)
      for name in ("trunc-st", "garbage-st", "config-list", "pickle")
      for cmd in (["fill-mask", "the [MASK]"], ["senses", "-s", "apple-en", "-o", O])],
]


def _fill(arg: str, bad: Path, model: Path, tmp: Path) -> str:
    return arg.replace("{bad}", str(bad)).replace("{model}", str(model)).replace("{tmp}", str(tmp))


@pytest.mark.parametrize("argv,needle", [pytest.param(a, n, id=i) for i, a, n in CASES])
def test_bad_input_exits_2_with_one_line(argv, needle, bad, tiny_model, tmp_path, capsys):
    args = [_fill(a, bad, tiny_model, tmp_path) for a in argv]
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("bertology: error: "), err
    # the flag or file named as a whole word: `--steps` is not satisfied by `--max-steps`
    needle = re.escape(_fill(needle, bad, tiny_model, tmp_path))
    assert re.search(rf"(?<![\w-]){needle}(?![\w-])", lines[0]), lines[0]
    assert "weights_only=False" not in err
    # refused before the work: nothing was written under a fresh --out
    assert not (tmp_path / "out" / "results.json").exists()


def test_table_covers_every_command():
    """A new command joins the table: each top-level command (and qa/tokenizer subcommand) has a row."""
    from bertology.cli import app, qa_app, tokenizer_app

    names = {c.name or c.callback.__name__ for c in app.registered_commands} - {"models"}
    names |= {f"qa {c.name}" for c in qa_app.registered_commands}
    names |= {f"tokenizer {c.name}" for c in tokenizer_app.registered_commands}
    used = {(a[0] + " " + a[1]) if a[0] in ("qa", "tokenizer") else a[0] for _, a, _ in CASES}
    assert names <= used, names - used


# --------------------------------------------------------------------------------------------- right results
def _squad_file(path: Path, qas: list[tuple[str, str, str, int]], context: str) -> Path:
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": i, "question": q, "answers": [{"text": a, "answer_start": s}]} for i, q, a, s in qas]}]}]},
        ensure_ascii=False), encoding="utf-8")
    return path


def test_qa_score_scores_answer_texts_of_every_question(tmp_path, capsys):
    """issue 14.7: as the official SQuAD v1.1 / CMRC 2018 scripts, `qa score` compares answer texts, over all
    questions, whatever answer_start says: an answer absent from its context (174 in CMRC 2018 dev) is scored,
    not rejected, and not dropped (dropping changed EM 41.75 -> 41.38)."""
    ctx = "2008年夏季奥运会在北京举行，这是中国第一次举办奥运会。"
    data = _squad_file(tmp_path / "d.json", [("q1", "奥运会在哪里举行？", "北京", 12),
                                             ("q2", "哪一届奥运会？", "第29届夏季奥运会", 999)], ctx)
    (tmp_path / "p.json").write_text(json.dumps({"q1": "北京", "q2": "第29届夏季奥运会"}, ensure_ascii=False))
    assert main(["qa", "score", "-d", str(data), "-p", str(tmp_path / "p.json"), "-o", str(tmp_path / "o")]) == 0
    sc = json.loads((tmp_path / "o" / "results.json").read_text())["scores"][0]
    assert (sc["total"], sc["exact_match"], sc["f1"], sc["skipped"]) == (2, 100.0, 100.0, 0)
    # a wrong answer to the out-of-context question counts 0 for it: EM 1/2 over both questions; CMRC F1 of
    # "第29届" against "第29届夏季奥运会": segments 第 29 届 | 第 29 届 夏 季 奥 运 会 (8), LCS 3: P 1, R 3/8
    (tmp_path / "p.json").write_text(json.dumps({"q1": "北京", "q2": "第29届"}, ensure_ascii=False))
    assert main(["qa", "score", "-d", str(data), "-p", str(tmp_path / "p.json"), "-o", str(tmp_path / "o")]) == 0
    sc = json.loads((tmp_path / "o" / "results.json").read_text())["scores"][0]
    assert sc["exact_match"] == pytest.approx(50.0)
    assert sc["f1"] == pytest.approx(100 * (1 + 2 * (3 / 8) / (1 + 3 / 8)) / 2)


def test_qa_score_without_a_common_question_id_is_refused(tmp_path, capsys):
    """issue 14.5: predictions that answer none of the questions (another data set's) scored 0, silently."""
    data = _squad_file(tmp_path / "d.json", [("q1", "what is red", "the apple", 0)], "the apple is red")
    (tmp_path / "p.json").write_text(json.dumps({"other-id": "the apple"}))
    assert main(["qa", "score", "-d", str(data), "-p", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert "no question id in common" in err and "d.json" in err


def test_tokenizer_train_gives_the_same_vocabulary_in_two_processes(tmp_path, data_dir):
    """issue 14.6: the tokenizers trainer numbered pieces and cut its alphabet in HashMap order, which changes
    with every process, so the same command gave another vocabulary (and `pretrain` another model) each run.
    Two processes, as a user runs the command twice; a small vocabulary and alphabet make ties certain."""
    import os
    import subprocess
    import sys

    import bertology

    zh = gzip.open(data_dir / "corpora" / "zh" / "thucnews_titles.txt.gz", "rt", encoding="utf-8")
    en = gzip.open(data_dir / "corpora" / "en" / "bbc_news.txt.gz", "rt", encoding="utf-8")
    (tmp_path / "zh.txt").write_text("".join(next(zh) for _ in range(2000)), encoding="utf-8")
    (tmp_path / "en.txt").write_text("".join(next(en) for _ in range(1000)), encoding="utf-8")
    src = str(Path(bertology.__file__).resolve().parents[1])
    for run in ("a", "b"):
        args = ["tokenizer", "train", "-c", f"zh={tmp_path}/zh.txt", "-c", f"en={tmp_path}/en.txt",
                "--out", str(tmp_path / run), "--vocab-size", "800", "--alphabet-size", "300"]
        subprocess.run([sys.executable, "-c", f"import sys; from bertology.cli import main; sys.exit(main({args!r}))"],
                       check=True, capture_output=True, env={**os.environ, "PYTHONPATH": src})
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


# --------------------------------------------------------------------------------------------- resume
def test_qa_train_refuses_to_resume_with_other_settings(bad, tiny_encoder, tmp_path, capsys):
    """issue 14.2: `qa train` resumed its checkpoint whatever --train / --max-len / --lr said, and exported the
    old run's model under results.json's new settings. Now it refuses, naming the setting."""
    run = ["qa", "train", "-t", str(bad / "squad.json"), "-m", str(tiny_encoder), "-o", str(tmp_path / "o"),
           "--max-steps", "2", "--checkpoint-every", "1", "--max-length", "32", "--doc-stride", "8"]
    assert main(run) == 0
    assert main(run) == 2                                         # resuming is opt-in, as in pretrain
    assert "--resume" in capsys.readouterr().err
    run += ["--resume"]
    assert main(run + ["--lr", "1e-3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--lr" in err and "0.001" in err, err
    assert main(run[:-5] + ["--max-len", "48", "--doc-stride", "8", "--resume"]) == 2     # the old spelling
    assert "--max-length" in capsys.readouterr().err
    assert main(run[:-1] + ["--lr", "1e-3", "--out", str(tmp_path / "fresh")]) == 0   # a fresh start is fine


def test_pretrain_resume_refuses_another_seq_len_corpus_or_size(tiny_model, tmp_path, capsys):
    """issue 14.2 / 14.8: `pretrain --resume` accepted a changed --seq-len or --corpus, and another --size
    ended in a traceback loading the checkpoint."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"{s} number {i}" for i, s in enumerate(CORPUS * 3)) + "\n")
    other = tmp_path / "d.txt"
    other.write_text(corpus.read_text()[::-1])
    run = ["pretrain", "-c", f"en={corpus}", "-o", str(tmp_path / "o"), "--tokenizer", str(tiny_model),
           "--size", "tiny", "--max-length", "16", "--batch-size", "4", "--max-steps", "2", "--eval-every", "1",
           "--no-progress"]
    assert main(run) == 0
    for changed, flag in ((["--max-length", "32"], "--max-length"), (["--size", "mini"], "--size"),
                          ([], "--corpus")):
        argv = run + ["--resume", "--max-steps", "3"] + changed
        if flag == "--corpus":
            argv[2] = f"en={other}"
        assert main(argv) == 2, flag
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert flag in err and "Traceback" not in err, err
    assert main(run + ["--resume", "--max-steps", "3"]) == 0     # more steps, same settings: resumes
    # a checkpoint cut short: exit 2 naming it, not a traceback from safetensors or torch.load
    for name in ("state.pt", "model.safetensors"):
        f = tmp_path / "o" / "checkpoint" / name
        good = f.read_bytes()
        f.write_bytes(good[: len(good) // 2])
        assert main(run + ["--resume", "--max-steps", "4"]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert name in err and "damaged checkpoint" in err, err
        f.write_bytes(good)


# --------------------------------------------------------------------------------------------- silently wrong
def test_senses_refuses_labelled_lines_without_header(tmp_path, tiny_model, capsys):
    """issue 14.5: `label<TAB>sentence` lines without the header were read as plain sentences that began
    with their labels."""
    f = tmp_path / "s.tsv"
    f.write_text("fruit\tI ate an apple\ncompany\tthe apple phone\nfruit\tapple pie\ncompany\tapple shares rose\n",
                 encoding="utf-8")
    assert main(["senses", "-s", str(f), "-t", "apple", "-m", str(tiny_model), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "s.tsv:1" in err and "header" in err
    f.write_text("label\tsentence\n" + f.read_text(), encoding="utf-8")    # with the header: fine
    assert main(["senses", "-s", str(f), "-t", "apple", "-m", str(tiny_model), "-o", str(tmp_path / "o")]) == 0


def test_fill_mask_refuses_a_mask_cut_off_by_truncation(tiny_model, capsys):
    """issue 14.5: a [MASK] beyond the model's length gave no prediction and no message."""
    text = "the apple " * 40 + "[MASK]"      # the tiny model takes 64 positions
    assert main(["fill-mask", text, "-m", str(tiny_model)]) == 2
    assert "[MASK] lies beyond" in capsys.readouterr().err


def test_data_sets_found_from_any_folder(tmp_path, monkeypatch, data_dir):
    """issue 14.10: the default data folder was looked up from the current directory only."""
    from bertology.io.storage import find_dataset

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BERTOLOGY_DATA", raising=False)
    assert find_dataset("cmrc-trial", download=False).resolve() == (data_dir / "cmrc2018" / "cmrc2018_trial.json")
