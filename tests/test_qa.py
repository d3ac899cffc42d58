"""Extractive QA: official metrics on hand-worked cases, the SQuAD loader's validation, window labelling,
exact span search, training that actually learns, and the CLI's exit codes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from bertology.core import cpu_fusion
from bertology.experiments import qa
from bertology.cli import main
from bertology.io.squad import load_squad
from bertology.errors import UserError
from bertology.metrics import (cmrc_em, cmrc_f1, cmrc_segment, longest_common_run, qa_scores, squad_em, squad_f1,
                               squad_normalize)


# --------------------------------------------------------------------------------------------- metrics: English
def test_squad_normalisation_and_scores():
    assert squad_normalize("The  Apple, Inc.!") == "apple inc"
    assert squad_em("the Denver Broncos", "Denver Broncos.") == 1.0
    # pred {cat, sat}, ref {cat, sat, down}: P = 1, R = 2/3 -> F1 = 0.8 (articles dropped)
    assert squad_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    # bag of tokens, order ignored (SQuAD), unlike CMRC's contiguous run
    assert squad_f1("sat cat", "cat sat") == 1.0
    assert squad_f1("dog", "cat") == 0.0
    # repeated tokens count with multiplicity: common = min counts
    assert squad_f1("paris paris", "paris") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_qa_scores_max_over_references_and_missing():
    refs = {"q1": ["Denver Broncos", "Broncos"], "q2": ["1973"], "q3": ["x"]}
    r = qa_scores(refs, {"q1": "the Broncos", "q2": "in 1973"}, "en")
    # q1: EM 1 (matches "Broncos"); q2: EM 0, F1 2*(1/2*1)/(1.5) = 2/3; q3 missing -> 0
    assert r["total"] == 3 and r["missing"] == 1
    assert r["exact_match"] == pytest.approx(100 / 3)
    assert r["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)


# --------------------------------------------------------------------------------------------- metrics: Chinese
def test_cmrc_mixed_segmentation():
    assert cmrc_segment("2008年北京奥运会Olympic Games") == ["2008", "年", "北", "京", "奥", "运", "会",
                                                         "olympic", "games"]
    assert cmrc_segment("3.5億美元") == ["3.5", "億", "美", "元"]
    # listed punctuation is a token of its own, and removed with remove_punct
    assert cmrc_segment("《紅樓夢》") == ["《", "紅", "樓", "夢", "》"]
    assert cmrc_segment("《紅樓夢》", remove_punct=True) == ["紅", "樓", "夢"]


def test_cmrc_f1_uses_longest_contiguous_run():
    assert longest_common_run(list("abcxbc"), list("zbcq")) == 2
    # ref 北京奥运会 (5 tokens), pred 在北京举行奥运会 (8): the longest common run 奥运会 is 3 tokens,
    # not the 5 tokens they share
    p, r = 3 / 8, 3 / 5
    assert cmrc_f1("在北京举行奥运会", "北京奥运会") == pytest.approx(2 * p * r / (p + r))


def test_cmrc_traditional_and_mixed_cases():
    # Traditional Chinese: 臺 and 台 are different tokens; 灣大學 is the common run
    assert cmrc_f1("臺灣大學", "台灣大學") == pytest.approx(0.75)
    assert cmrc_em("臺灣大學", "台灣大學") == 0.0
    # punctuation from the official list does not count for EM
    assert cmrc_em("《紅樓夢》", "紅樓夢") == 1.0
    # a space is not punctuation: EM fails, but both segment to [1997, 年], so F1 is perfect
    assert cmrc_em("1997 年", "1997年") == 0.0
    assert cmrc_f1("1997 年", "1997年") == 1.0
    # mixed English words inside Chinese are lower-cased word tokens: [iphone, 6, plus] vs [iphone, 6]
    assert cmrc_f1("iPhone 6 Plus", "iphone 6") == pytest.approx(0.8)
    assert cmrc_em("iPhone 6", "iphone 6") == 1.0
    r = qa_scores({"a": ["台灣大學", "臺灣大學"]}, {"a": "臺灣大學"}, "zh")
    assert r["exact_match"] == 100.0 and r["f1"] == 100.0


# --------------------------------------------------------------------------------------------- loader
def _squad(qas, context="The cat sat on the mat in 1997."):
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}


def _write(tmp_path, doc, name="d.json"):
    p = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(p, "wt", encoding="utf-8") as f:
            json.dump(doc, f)
    else:
        p.write_text(json.dumps(doc), encoding="utf-8")
    return p


def test_loader_validates_and_relocates(tmp_path):
    good = {"id": "q1", "question": "Where?", "answers": [{"text": "the mat", "answer_start": 15}]}
    off = {"id": "q2", "question": "When?", "answers": [{"text": "1997", "answer_start": 3}]}
    ds = load_squad(_write(tmp_path, _squad([good, off]), "d.json.gz"))
    assert [e.id for e in ds.examples] == ["q1", "q2"]
    assert ds.relocated == 1 and ds.examples[1].answer_starts == [26]
    assert ds.examples[1].context[26:30] == "1997"

    absent = {"id": "q3", "question": "Who?", "answers": [{"text": "a dog", "answer_start": 4}]}
    with pytest.raises(UserError, match=r"question 'q3'.*does not occur"):
        load_squad(_write(tmp_path, _squad([good, absent])))
    ds = load_squad(_write(tmp_path, _squad([good, absent])), skip_bad=True)
    assert ds.skipped == 1 and len(ds.examples) == 1

    with pytest.raises(UserError, match=r"question 'q4'.*missing field 'answer_start'"):
        load_squad(_write(tmp_path, _squad([{"id": "q4", "question": "?", "answers": [{"text": "cat"}]}])))
    with pytest.raises(UserError, match=r"question 'q1'.*empty context"):
        load_squad(_write(tmp_path, _squad([good], context="  ")))
    with pytest.raises(UserError, match=r"missing field 'id'"):
        load_squad(_write(tmp_path, _squad([{"question": "?", "answers": []}])))
    with pytest.raises(UserError, match=r"missing field 'data'"):
        load_squad(_write(tmp_path, {"version": "1.1"}))
    # prediction-only data may come without answers
    ds = load_squad(_write(tmp_path, _squad([{"id": "q5", "question": "?", "answers": []}])), require_answers=False)
    assert ds.examples[0].answers == []


def test_real_files_load(data_dir):
    cmrc = load_squad(data_dir / "cmrc2018/cmrc2018_trial.json")
    assert len(cmrc.examples) == 1002 and cmrc.relocated == 5       # the trial file's known off offsets
    for e in cmrc.examples:
        assert all(e.context[s:s + len(a)] == a for s, a in zip(e.answer_starts, e.answers))
    xen, xzh = qa.load_data("xquad-en", data_dir), qa.load_data("xquad-zh", data_dir)
    assert qa.detect_lang(xen.examples) == "en" and qa.detect_lang(xzh.examples) == "zh"
    # seeded samples of parallel files pick the same questions
    assert [e.id for e in xen.sample(50, 3).examples] == [e.id for e in xzh.sample(50, 3).examples]


# --------------------------------------------------------------------------------------------- windows & spans
@pytest.fixture(scope="module")
def minilm_tokenizer():
    from bertology.core.models import load_tokenizer

    try:
        return load_tokenizer("minilm")
    except UserError as e:
        pytest.skip(str(e))


def test_train_windows_label_the_answer(minilm_tokenizer, data_dir):
    ds = qa.load_data("squad-dev", data_dir).sample(150, 0)
    s = qa.QASettings(max_length=128, doc_stride=48, max_query_len=32)   # short windows: many contexts split
    feats = qa.train_features(minilm_tokenizer, ds.examples, s)
    ef = qa.eval_features(minilm_tokenizer, ds.examples, s)
    assert len(feats) == len(ef.items) > 1.5 * len(ds.examples)
    labelled_per_example = np.zeros(len(ds.examples), int)
    exact = 0
    for f, ex_i, (first, last), offs in zip(feats, ef.example_index, ef.context_range, ef.offsets):
        assert len(f["input_ids"]) <= 128
        if f["start_positions"] == 0:
            assert f["end_positions"] == 0
            continue
        ex = ds.examples[ex_i]
        a, b = f["start_positions"], f["end_positions"]
        assert first <= a <= b <= last
        span = ex.context[offs[a - first][0]:offs[b - first][1]]
        assert ex.answers[0] in span or span in ex.answers[0]
        exact += span == ex.answers[0]
        labelled_per_example[ex_i] += 1
    assert (labelled_per_example >= 1).all()          # every answer lies whole in some window
    assert exact / labelled_per_example.sum() > 0.95   # and token bounds reproduce it exactly


def test_top_spans_is_exact():
    rng = np.random.default_rng(0)
    for n, L in [(1, 30), (7, 3), (50, 30), (200, 15)]:
        st, en = rng.normal(size=n), rng.normal(size=n)
        brute = sorted(((st[i] + en[j], i, j) for i in range(n) for j in range(i, min(n, i + L))), reverse=True)[:20]
        sc, i, j = qa.top_spans(st, en, L, 20)
        assert np.allclose(sc, [b[0] for b in brute])
        assert list(zip(i.tolist(), j.tolist())) == [(b[1], b[2]) for b in brute]


def _toy_examples(n, seed=0):
    """A task a tiny model can learn in a minute: the answer is the word after 'is'."""
    rng = np.random.default_rng(seed)
    colours = ["red", "green", "sweet", "new", "tasty"]
    things = ["apple", "tree", "phone", "book", "house", "river"]
    out = []
    for k in range(n):
        t, c = things[rng.integers(len(things))], colours[rng.integers(len(colours))]
        filler = " ".join(rng.choice(["we", "ate", "today", "market", "the", "bank"], size=rng.integers(2, 6)))
        ctx = f"{filler} the {t} is {c} . {filler}"
        out.append(qa.QAExample(f"q{k}", f"what is the {t} ?", ctx, [c], [ctx.index(f" is {c}") + 4]))
    return out


def test_training_learns_and_predictions_are_exact_substrings(tiny_encoder, tmp_path):
    train = qa.QADataset("toy", _toy_examples(96, 0))
    dev = qa.QADataset("toy-dev", _toy_examples(32, 1))
    s = qa.QASettings(max_length=64, doc_stride=16, max_query_len=16, max_answer_len=5)
    from bertology.core.models import load_model, load_tokenizer

    tok = load_tokenizer(str(tiny_encoder))
    before = qa.score(dev, qa.predict(load_model(str(tiny_encoder), head="qa"), tok, dev.examples, s,
                                      progress=False).answers, "en").f1
    t = qa.TrainSettings(epochs=7, batch_size=16, lr=3e-3, warmup=0.05, seed=0, eval_every=14,
                         checkpoint_every=10**6)
    model, tok, tr = qa.train(str(tiny_encoder), [train], dev, tmp_path / "run", s, t, progress=False)
    p = qa.predict(model, tok, dev.examples, s, progress=False)
    after = qa.score(dev, p.answers, "en").f1
    assert after > 80 and after > before + 30, (before, after)
    assert tr.best_dev_f1 == pytest.approx(after)
    for e in dev.examples:
        top = p.nbest[e.id][0]
        assert e.context[top["start"]:top["end"]] == p.answers[e.id]
        assert len(p.nbest[e.id]) <= s.n_best
    assert (tmp_path / "run" / "model" / "config.json").exists()


def test_answer_margins_count_only_different_texts():
    ctx = "the cat sat on the cat mat"
    # the two "cat" spans are the same answer; "cat sat" overlaps the best span, "sat" and "mat" do not
    c = {(4, 7): 3.0, (19, 22): 2.9, (4, 11): 2.8, (8, 11): 2.0, (23, 26): 1.0}
    assert qa.answer_margins(ctx, c) == pytest.approx((0.2, 1.0))
    assert qa.needs_fp32(ctx, c, 0.5) and not qa.needs_fp32(ctx, c, 0.39)   # overlapping: half the margin
    assert qa.needs_fp32(ctx, c, 0.99 * 2) and qa.needs_fp32(ctx, {(4, 7): 3.0, (8, 11): 2.5}, 0.6)
    assert qa.answer_margins(ctx, {(4, 7): 3.0, (19, 22): 1.0}) == (float("inf"), float("inf"))
    assert qa.answer_margins(ctx, {}) == (float("inf"), float("inf"))


def _tiny_qa(tiny_encoder):
    from bertology.core.models import load_model, load_tokenizer

    return load_model(str(tiny_encoder), head="qa").eval(), load_tokenizer(str(tiny_encoder))


def test_bf16_verified_matches_fp32_where_it_reruns(tiny_encoder):
    import torch

    model, tok = _tiny_qa(tiny_encoder)
    with torch.no_grad():   # a random head scores spans in a narrow range; widen it so margins vary
        model.qa_outputs.weight.mul_(40)
    exs = _toy_examples(24, 3)
    base = dict(max_length=64, doc_stride=16, max_query_len=16, max_answer_len=5, span_score="window-prob")
    fp32 = qa.predict(model, tok, exs, qa.QASettings(**base), progress=False)
    bf16 = qa.predict(model, tok, exs, qa.QASettings(**base, precision="bf16"), progress=False)
    # margin inf: every question re-run in fp32 -> exactly the fp32 answers and n-best
    every = qa.predict(model, tok, exs, qa.QASettings(**base, precision="bf16-verified", verify_margin=float("inf")),
                       progress=False)
    assert every.rerun == len(exs) and every.answers == fp32.answers and every.nbest == fp32.nbest
    # margin 0: nothing re-run -> the bf16 answers
    none = qa.predict(model, tok, exs, qa.QASettings(**base, precision="bf16-verified", verify_margin=0.0),
                      progress=False)
    assert none.rerun == 0 and none.answers == bf16.answers
    # in between: re-run questions carry fp32's n-best, the others bf16's, which clear the margin
    mid = qa.predict(model, tok, exs, qa.QASettings(**base, precision="bf16-verified", verify_margin=0.5),
                     progress=False)
    assert 0 < mid.rerun < len(exs)
    for e in exs:
        if mid.nbest[e.id] == fp32.nbest[e.id]:
            continue
        assert mid.nbest[e.id] == bf16.nbest[e.id]
        c = {(d["start"], d["end"]): d["score"] for d in bf16.nbest[e.id]}
        assert not qa.needs_fp32(e.context, c, 0.5)
    with pytest.raises(UserError):
        qa.predict(model, tok, exs, qa.QASettings(**base, precision="fp16"), progress=False)


def test_onednn_fusion_keeps_logits(tiny_encoder):
    import copy

    import torch

    from bertology.core.engine import pad_batch

    model, tok = _tiny_qa(tiny_encoder)
    feats = qa.eval_features(tok, _toy_examples(8, 4), qa.QASettings(max_length=64, doc_stride=16, max_query_len=16))
    batch = pad_batch(feats.items, 0)
    with torch.inference_mode():
        ref = model(**batch).start_logits
        fused = copy.deepcopy(model)
        swapped = cpu_fusion.fuse_onednn(fused)
        if torch.backends.mkldnn.is_available():
            assert swapped == 6      # 2 layers x (dense+GELU, 2 x dense+residual+LayerNorm), fp32
        assert torch.allclose(fused(**batch).start_logits, ref, atol=1e-4)
        b16 = cpu_fusion.fused_bf16_copy(model)
        assert isinstance(b16.qa_outputs, cpu_fusion.Fp32Head)
        got = b16(**batch).start_logits
        assert got.dtype == torch.float32 and torch.allclose(got, ref, atol=0.1)
    # the caller's model is untouched
    assert next(model.parameters()).dtype == torch.float32 and isinstance(model.qa_outputs, torch.nn.Linear)


def test_onednn_swap_skipped_is_warned_and_recorded(tiny_encoder, monkeypatch):
    """A fused op that fails (or disagrees) keeps the module unfused, and says so: no silent fallback."""
    import copy

    import torch

    if not torch.backends.mkldnn.is_available():
        pytest.skip("no oneDNN in this torch")

    class Broken:
        def __init__(self, *a, **k):
            raise RuntimeError("no such oneDNN op")

    model, _ = _tiny_qa(tiny_encoder)
    monkeypatch.setattr(cpu_fusion, "OneDnnLinear", Broken)
    fused = copy.deepcopy(model)
    with pytest.warns(RuntimeWarning, match="oneDNN fusion: 6 module"):
        assert cpu_fusion.fuse_onednn(fused) == 0
    assert len(fused.onednn_skipped) == 6 and all("no such oneDNN op" in r for r in fused.onednn_skipped)
    # and a bf16 evaluation keeps that warning in its notes, which results.json carries
    _, tok = _tiny_qa(tiny_encoder)
    ds = qa.QADataset("toy", _toy_examples(4, 3))
    with pytest.warns(RuntimeWarning, match="oneDNN fusion"):
        _, _, notes = qa.evaluate_sets(model, tok, {"toy": ds}, qa.QASettings(max_length=64, doc_stride=16,
                                                                            precision="bf16"), progress=False)
    assert any(n.startswith("oneDNN fusion: ") and "kept unfused" in n for n in notes), notes


def test_convert_keeps_offsets(data_dir):
    ds = qa.QADataset("drcd", qa.load_data("drcd-dev", data_dir).examples[:30])
    conv, aligned = qa.convert_dataset(ds, "t2s")
    assert all(aligned)
    assert conv.examples[0].question != ds.examples[0].question     # Traditional -> Simplified changed it
    for e in conv.examples:
        assert all(e.context[s:s + len(a)] == a for s, a in zip(e.answer_starts, e.answers))


# --------------------------------------------------------------------------------------------- CLI
def test_cli_score_and_errors(tmp_path, capsys):
    good = {"id": "q1", "question": "Where?", "answers": [{"text": "the mat", "answer_start": 15}]}
    other = {"id": "q2", "question": "When?", "answers": [{"text": "1997", "answer_start": 26}]}
    data = _write(tmp_path, _squad([good, other]))
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps({"q1": "mat"}))
    assert main(["qa", "score", "--data", str(data), "--predictions", str(preds), "--out", str(tmp_path / "o")]) == 0
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    assert doc["schema"] == "bertology.qa/2"
    sc = doc["scores"][0]
    assert (sc["exact_match"], sc["f1"], sc["total"], sc["missing"], sc["lang"]) == (50.0, 50.0, 2, 1, "en")

    # an answer absent from its context is scored like any other (issue 14.7: the official scripts do);
    # a question without its text is a broken file
    bad = _write(tmp_path, _squad([good, {"id": "q9", "answers": [{"text": "dog", "answer_start": 0}]}]), "bad.json")
    capsys.readouterr()
    assert main(["qa", "score", "--data", str(bad), "--predictions", str(preds)]) == 2
    err = capsys.readouterr().err
    assert "q9" in err and "bad.json" in err and "Traceback" not in err
    assert main(["qa", "score", "--data", str(bad), "--predictions", str(preds), "--skip-bad"]) == 0
    preds.write_text("{oops")
    assert main(["qa", "score", "--data", str(data), "--predictions", str(preds)]) == 2


def test_cli_eval_and_predict(tiny_encoder, tmp_path):
    from bertology.core.models import load_model, load_tokenizer

    # a QA model directory (random span head) that `qa eval` / `qa predict` accept as --model
    mdir = tmp_path / "qa-model"
    load_model(str(tiny_encoder), head="qa").save_pretrained(mdir)
    load_tokenizer(str(tiny_encoder)).save_pretrained(mdir)
    ds = qa.QADataset("toy", _toy_examples(12, 2))
    doc = {"data": [{"title": "", "paragraphs": [{"context": e.context, "qas": [
        {"id": e.id, "question": e.question, "answers": [{"text": e.answers[0], "answer_start": e.answer_starts[0]}]}]}
        for e in ds.examples]}]}
    data = _write(tmp_path, doc, "toy.json")
    args = ["--model", str(mdir), "--data", str(data), "--max-length", "64", "--doc-stride", "16"]
    assert main(["qa", "eval", *args, "--out", str(tmp_path / "e")]) == 0
    res = json.loads((tmp_path / "e" / "results.json").read_text())
    assert res["command"] == "eval" and res["scores"][0]["total"] == 12
    preds = json.loads((tmp_path / "e" / "predictions.json").read_text())
    assert set(preds) == {e.id for e in ds.examples}
    assert all(preds[e.id] in e.context for e in ds.examples)
    assert main(["qa", "predict", *args, "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "predictions.json").read_text()) == preds    # same model, same answers
    # one window per context: normalising scores per window cannot change the ranking
    assert main(["qa", "predict", *args, "--span-score", "window-prob", "--out", str(tmp_path / "w")]) == 0
    assert json.loads((tmp_path / "w" / "predictions.json").read_text()) == preds
    assert main(["qa", "eval", *args, "--doc-stride", "60", "--out", str(tmp_path / "x")]) == 2
    # a model without a trained span head would answer at random: refused with exit 2
    assert main(["qa", "eval", "--model", str(tiny_encoder), "--data", str(data), "--out", str(tmp_path / "y")]) == 2


def test_report_section_runs(tiny_encoder, tmp_path, data_dir, monkeypatch):
    from bertology.core.models import has_qa_head
    from bertology.report import ReportContext, run_section
    from bertology.report.sections import qa as qa_section

    monkeypatch.setattr(qa_section, "REPORT_QUICK", (4, 3))      # the code path of the quick report, at toy size
    # the tiny vocabulary reads most Chinese as [UNK]: the claim is not applicable on it, with the share, and
    # nothing is trained
    (na,) = run_section("bertology.report.sections.qa", "QA", ReportContext(model=str(tiny_encoder), out_dir=tmp_path / "na",
                                                            data_dir=str(data_dir)))
    assert "of XQuAD-zh's context tokens are [UNK]" in na.error and na.measures["qa"][0]["not_applicable"]
    assert not (tmp_path / "na" / "results.json").exists()
    import bertology.core.vocab
    monkeypatch.setattr(bertology.core.vocab, "UNKNOWN_LIMIT", 1.0)   # the training path, at toy size
    (sec,) = run_section("bertology.report.sections.qa", "QA", ReportContext(model=str(tiny_encoder), out_dir=tmp_path / "r",
                                                             data_dir=str(data_dir), keep_models=True))
    assert sec.error is None, sec.error
    names = [r["eval set"] for r in sec.tables[0][1]]
    assert names[:2] == ["XQuAD-en", "XQuAD-zh"] and any("lecture" in n for n in names)
    assert all(Path(f).exists() for f in sec.figures) and len(sec.figures) == 2
    doc = json.loads((tmp_path / "r" / "results.json").read_text())
    assert doc["schema"] == "bertology.qa/2" and doc["train"]["train_questions"] == 4
    (m,) = sec.measures["qa"]          # the verdict's numbers: one metric, the heuristic on the same questions
    assert m["questions"] == 3 and 0 <= m["heuristic_f1"] <= 100 and len(m["ci"]) == 2
    # a model that already has a span head is evaluated without training
    assert not has_qa_head(str(tiny_encoder))
    qa_model = Path(doc["train"]["model_dir"])
    assert has_qa_head(str(qa_model))
    (sec2,) = run_section("bertology.report.sections.qa", "QA", ReportContext(model=str(qa_model), out_dir=tmp_path / "r2",
                                                              data_dir=str(data_dir)))
    assert sec2.error is None, sec2.error
    assert "evaluated as it is" in sec2.explanation and len(sec2.figures) == 1
    # by default the report folder keeps results and figures, not the fine-tuned model or its checkpoint
    run_section("bertology.report.sections.qa", "QA", ReportContext(model=str(tiny_encoder), out_dir=tmp_path / "r3",
                                                                    data_dir=str(data_dir)))
    assert (tmp_path / "r3" / "results.json").exists()
    assert not (tmp_path / "r3" / "model").exists() and not (tmp_path / "r3" / "train").exists()


def test_cli_qa_train_on_real_data_with_dev(tiny_encoder, tmp_path, data_dir):
    """`qa train` on a slice of SQuAD dev: windows, dev evaluations, the model directory it writes is a --model
    that `qa eval` accepts, and results.json says what happened."""
    out = tmp_path / "t"
    args = ["qa", "train", "--model", str(tiny_encoder), "--train", "squad-dev", "--max-train", "24",
            "--dev", "squad-dev", "--max-dev", "6", "--max-steps", "6", "--eval-every", "2", "--batch-size", "8",
            "--max-length", "64", "--doc-stride", "24", "--lr", "1e-3", "--data-dir", str(data_dir), "--out", str(out)]
    assert main(args) == 0
    tr = json.loads((out / "results.json").read_text())["train"]
    assert tr["train_questions"] == 24 and tr["train_windows"] > 24 and tr["steps"] == 6
    assert [h["step"] for h in tr["history"]] == [2, 4, 6] and tr["best_step"] in (2, 4, 6)
    assert tr["best_dev_f1"] == max(h["f1"] for h in tr["history"])
    assert main(["qa", "eval", "--model", tr["model_dir"], "--data", "squad-dev", "--limit", "4", "--max-length", "64",
                 "--doc-stride", "24", "--data-dir", str(data_dir), "--out", str(tmp_path / "e")]) == 0


def test_cli_qa_crosslingual(tiny_encoder, tmp_path, data_dir):
    """`qa crosslingual`: one fine-tuning run on English, every eval set scored zero-shot with its language's
    metric (XQuAD-zh with CMRC's character F1)."""
    out = tmp_path / "x"
    assert main(["qa", "crosslingual", "--model", str(tiny_encoder), "--train", "en=squad-dev", "--max-train", "16",
                 "--eval", "xquad-en=xquad-en", "--eval", "xquad-zh=xquad-zh", "--limit", "5", "--max-steps", "2",
                 "--batch-size", "8", "--max-length", "64", "--doc-stride", "24", "--data-dir", str(data_dir),
                 "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["command"] == "crosslingual" and doc["train"]["steps"] == 2
    scores = {s["name"]: s for s in doc["scores"]}
    assert set(scores) == {"xquad-en", "xquad-zh"} and all(s["total"] == 5 for s in scores.values())
    assert scores["xquad-en"]["lang"] == "en" and scores["xquad-zh"]["lang"] == "zh"
    assert (out / "predictions_xquad-zh.json").exists()
    # a model that already has a trained span head: fine-tuned again by default, evaluated as it is (no training
    # set even read: this one does not exist) with --reuse-trained-head
    trained = doc["train"]["model_dir"]
    common = ["--eval", "xquad-zh=xquad-zh", "--limit", "5", "--max-length", "64", "--doc-stride", "24",
              "--data-dir", str(data_dir)]
    assert main(["qa", "crosslingual", "--model", trained, "--train", "en=no-such-set", "--reuse-trained-head",
                 *common, "--out", str(tmp_path / "as-is")]) == 0
    doc = json.loads((tmp_path / "as-is" / "results.json").read_text())
    assert doc["command"] == "eval" and doc["train"] is None and "evaluated as it is" in doc["notes"][0]
    assert doc["scores"][0]["total"] == 5 and not (tmp_path / "as-is" / "model").exists()
    assert main(["qa", "crosslingual", "--model", trained, "--train", "en=squad-dev", "--max-train", "8",
                 "--max-steps", "1", *common, "--out", str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again" / "results.json").read_text())["train"]["steps"] == 1


def _command_line(cfg, path: list[str]) -> list[str]:
    """The arguments of the command `path` that spell out `cfg`; a setting the command has no option for must be
    at its default (what the command then uses)."""
    import dataclasses

    import typer

    from bertology.cli import app

    cmd = typer.main.get_command(app)
    for part in path:
        cmd = cmd.commands[part]
    options = {p.name: p for p in cmd.params}
    argv = list(path)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name not in options:
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            assert value == default, (f.name, value, default)
        elif isinstance(value, bool):     # --flag, or --no-flag where there is one (else off is its default)
            argv += options[f.name].opts[:1] if value else options[f.name].secondary_opts[:1]
        elif value is not None:
            argv += [a for v in (value if isinstance(value, list) else [value]) for a in (options[f.name].opts[0],
                                                                                        str(v))]
    return argv


def test_report_and_cli_run_one_crosslingual_experiment(tiny_encoder, tmp_path, data_dir, monkeypatch):
    """The report's QA section runs run_crosslingual on its preset, a valid QACrosslingualConfig (quick and full);
    `bertology qa crosslingual` given that preset as flags builds the same config and runs it through the same
    function. (The run itself is replaced by a recorder: both runs are tested in full above.)"""
    import bertology.core.vocab
    from bertology.experiments.configs import QACrosslingualConfig
    from bertology.report import ReportContext
    from bertology.report.sections import qa as qa_section

    assert qa_section.run_crosslingual is qa.run_crosslingual

    class Ran(Exception):
        pass

    ran = []

    def record(cfg, progress=True):
        ran.append(cfg)
        raise Ran

    monkeypatch.setattr(bertology.core.vocab, "UNKNOWN_LIMIT", 1.0)   # the tiny vocabulary: the training path
    monkeypatch.setattr(qa_section, "run_crosslingual", record)
    monkeypatch.setattr(qa, "run_crosslingual", record)
    for quick in (True, False):
        ctx = ReportContext(model=str(tiny_encoder), out_dir=tmp_path / f"quick-{quick}", data_dir=str(data_dir),
                            quick=quick)
        with pytest.raises(Ran):
            qa_section.report_section(ctx)
        preset = ran.pop()
        assert type(preset) is QACrosslingualConfig and preset == qa_section.preset(ctx, str(tiny_encoder))
        assert preset.reuse_trained_head and preset.max_train == (qa_section.REPORT_QUICK if quick
                                                                    else qa_section.REPORT_FULL)[0]
        assert ("DRCD dev=drcd-dev" in preset.eval) == (not quick) and preset.convert == (None if quick else "t2s")
        with pytest.raises(Ran):
            main(_command_line(preset, ["qa", "crosslingual"]))
        assert ran.pop() == preset
