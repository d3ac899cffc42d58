"""Reliability round 3 (issue 27): numbers that are not finite, training that diverges, seeds that repeat, and
results that stay strict JSON. The one-line exit-2 cases of bad flags are rows of tests/test_bad_input.py."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bertology.checks import check_number
from bertology.cli import main
from bertology.errors import UserError

SQUAD_CONTEXT = "the apple is red and the bank is green"


def _squad(path):
    qas = [{"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": SQUAD_CONTEXT.index(a)}]}
           for i, (q, a) in enumerate([("what is red", "the apple"), ("what is green", "the bank"),
                                       ("what colour is the apple", "red"), ("what colour is the bank", "green")])]
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": SQUAD_CONTEXT, "qas": qas}]}]}))
    return path


# --------------------------------------------------------------------------------------------- 27.1 numbers
@pytest.mark.parametrize("value, kwargs, words", [
    (float("inf"), {}, "finite"), (float("nan"), {"low": 0}, "finite"), ("1e400", {}, "finite"),
    (10 ** 400, {"high": 5}, "at most 5"), (2.5, {"integer": True}, "whole number"), (True, {}, "a number"),
    ("many", {}, "a number"), (0, {"above": 0}, "above 0"), (-1, {"low": 0, "high": 3}, "between 0 and 3"),
])
def test_check_number_refuses_naming_the_field(value, kwargs, words):
    with pytest.raises(UserError, match=words) as e:
        check_number("lr", value, **kwargs)
    assert e.value.fields == ("lr",) and "`lr`" in str(e.value)


def test_check_number_gives_the_number():
    assert check_number("k", "5", integer=True, low=1) == 5
    assert check_number("k", 5.0, integer=True) == 5 and isinstance(check_number("k", 5.0, integer=True), int)
    assert check_number("alpha", "0.5", low=0, high=1) == 0.5


@pytest.mark.parametrize("field, value", [("lr", math.inf), ("warmup", math.inf), ("epochs", math.inf),
                                          ("lr", math.nan), ("max_steps", 0)])
def test_library_training_entry_points_refuse_non_finite_numbers(field, value, tmp_path, tiny_encoder):
    """The library checks too (a script calling qa.train, run_crossdomain or pretrain bypasses the CLI): as the
    settings are made (bertology.config checks every field at construction), or else as the run starts."""
    from bertology.experiments import qa
    from bertology.experiments.crossdomain import CrossDomainConfig, run_crossdomain

    with pytest.raises(UserError, match=f"`{field}`"):
        qa.train(str(tiny_encoder), [], None, tmp_path / "q", t=qa.TrainSettings(**{field: value}))
    if field != "max_steps":
        with pytest.raises(UserError, match=f"`{field}`"):
            run_crossdomain(CrossDomainConfig(model=str(tiny_encoder), **{field: value}), tmp_path / "c")
    assert not (tmp_path / "q").exists() and not (tmp_path / "c").exists()


def test_pretrain_config_refuses_infinite_lr_and_warmup(tmp_path):
    from bertology.experiments.pretrain import PretrainConfig, pretrain

    for field in ("lr", "warmup"):
        with pytest.raises(UserError, match=f"`{field}`"):
            pretrain(PretrainConfig(corpora=["en=nowhere.txt"], out_dir=str(tmp_path / "o"), **{field: math.inf}))


# --------------------------------------------------------------------------------------------- 27.2 divergence
def test_a_nan_loss_stops_training_naming_the_step(tiny_encoder, tmp_path):
    """The engine's loop (qa, crossdomain, pretrain) stops at the first non-finite loss, names the step and
    the learning rate; log.jsonl written so far stays strict JSON."""
    from bertology.core.engine import ExampleBatches, TrainConfig, train
    from bertology.core.models import load_model

    model = load_model(str(tiny_encoder), head="classify", num_labels=2)
    examples = [{"input_ids": [2, 7 + i % 5, 3], "labels": i % 2} for i in range(16)]
    calls = []

    def loss_fn(m, batch):
        calls.append(1)
        loss = m(**batch).loss
        return loss * float("nan") if len(calls) == 3 else loss
    config = TrainConfig(out_dir=tmp_path, lr=1e-3, max_steps=5, log_every=1, progress=False)
    with pytest.raises(UserError, match=r"diverged.*step 3.*lower `lr`") as e:
        train(model, ExampleBatches(examples, 4, seed=0), config, loss_fn=loss_fn)
    assert e.value.fields == ("lr",)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def test_qa_train_with_a_huge_lr_exits_2_not_nan_weights(tiny_encoder, tmp_path, capsys):
    squad = _squad(tmp_path / "s.json")
    out = tmp_path / "o"
    code = main(["qa", "train", "-t", str(squad), "-m", str(tiny_encoder), "-o", str(out), "--max-steps", "4",
                 "--max-length", "32", "--doc-stride", "8", "--batch-size", "2", "--lr", "1e30"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("bertology: error: training diverged"), err    # own line
    assert "--lr" in err[0] and "step 2" in err[0], err
    assert not (out / "model").exists()
    for line in (out / "train" / "log.jsonl").read_text().splitlines() if (out / "train" / "log.jsonl").exists() else []:
        json.loads(line)


def test_results_json_is_strict_json(tmp_path):
    from bertology.io.storage import save_results

    import numpy as np

    save_results(tmp_path, "bertology.test/1", {"a": math.inf, "b": [math.nan, np.float32("inf")], "c": 1.5})
    doc = json.loads((tmp_path / "results.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert (doc["a"], doc["b"], doc["c"]) == (None, [None, None], 1.5)


# --------------------------------------------------------------------------------------------- 27.3 seeds
def test_qa_train_same_seed_gives_the_same_weights(tiny_encoder, tmp_path):
    """The random span head was initialised before the seed was set: two runs with --seed 3 differed."""
    squad = _squad(tmp_path / "s.json")
    weights = []
    for run in ("a", "b", "c"):
        seed = "4" if run == "c" else "3"
        assert main(["qa", "train", "-t", str(squad), "-m", str(tiny_encoder), "-o", str(tmp_path / run),
                     "--max-steps", "2", "--max-length", "32", "--doc-stride", "8", "--batch-size", "2",
                     "--seed", seed]) == 0
        weights.append((tmp_path / run / "model" / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]
    assert weights[0] != weights[2]          # and the seed does matter


def test_qa_crosslingual_same_seed_gives_the_same_weights(tiny_encoder, tmp_path):
    squad = _squad(tmp_path / "s.json")
    weights = []
    for run in ("a", "b"):
        assert main(["qa", "crosslingual", "-t", f"en={squad}", "-e", f"x={squad}", "-m", str(tiny_encoder),
                     "-o", str(tmp_path / run), "--max-steps", "2", "--max-length", "32", "--doc-stride", "8",
                     "--batch-size", "2", "--seed", "3"]) == 0
        weights.append((tmp_path / run / "model" / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]


def test_crossdomain_same_seed_gives_the_same_runs(tiny_encoder, tmp_path):
    """build_model seeds before the fresh classifier head is drawn: every number of two runs agrees."""
    from test_crossdomain import _easy_task

    task = _easy_task(tmp_path / "easy.csv", n=40)
    runs = []
    for run in ("a", "b"):
        assert main(["crossdomain", "-t", str(task), "-m", str(tiny_encoder), "-o", str(tmp_path / run),
                     "--conditions", "pretrained,scratch", "--seeds", "1", "--epochs", "1", "--batch-size", "8",
                     "--max-length", "8", "--seed", "5", "--lr", "2e-3"]) == 0
        doc = json.loads((tmp_path / run / "results.json").read_text())
        runs.append([{k: v for k, v in r.items() if k not in ("wall_time", "train_examples_per_s")}
                     for r in doc["runs"]])
    assert runs[0] == runs[1]
    # and the weights each condition starts from, byte for byte (the fresh head, the scratch body)
    from safetensors.torch import save as to_bytes

    from bertology.experiments.crossdomain import build_model

    for condition in ("pretrained", "scratch", "rand-embed", "shuffled"):
        a, b = (to_bytes({k: v.contiguous() for k, v in build_model(condition, str(tiny_encoder), 2, 5)
                          .state_dict().items()}) for _ in range(2))
        torch.manual_seed(123)       # whatever the global generator held before: the seed decides
        c = to_bytes({k: v.contiguous() for k, v in build_model(condition, str(tiny_encoder), 2, 5)
                      .state_dict().items()})
        assert a == b == c, condition


# --------------------------------------------------------------------------------------------- 27.4 honest failure
def test_held_out_without_a_masked_token_is_not_measured():
    """A held-out set with nothing to score (a language with no held-out sequence) gave loss 0.000 and
    accuracy 0.000; now `null` ("not measured"), and the pooled numbers are over what was scored."""
    import numpy as np

    from bertology.experiments.pretrain import Masker, MaskedLMObjective, evaluate_mlm, make_mlm, model_config

    torch.manual_seed(0)
    objective = MaskedLMObjective(make_mlm(model_config("tiny", None, 120, 16, 0.0))).eval()
    masker = Masker(4, 120, (0, 1, 2, 3, 4), prob=0.3)
    seqs = np.random.default_rng(0).integers(5, 120, (3, 16)).astype(np.int32)
    with torch.inference_mode():
        out = evaluate_mlm(objective, {"en": seqs, "zh": seqs[:0]}, masker)
        empty = evaluate_mlm(objective, {"zh": seqs[:0]}, masker)
    assert out["eval_loss_zh"] is None and out["eval_acc_zh"] is None
    assert out["eval_loss"] == pytest.approx(out["eval_loss_en"]) and out["eval_loss"] > 1
    assert empty["eval_loss"] is None and empty["eval_acc"] is None and empty["eval_ppl"] is None


def test_cloze_with_no_scorable_answer_is_not_measured(tiny_model, tmp_path, capsys):
    items = tmp_path / "items.tsv"
    items.write_text("lang\tsentence\tanswer\nen\tthe [MASK] is red\tzebra\nen\ta [MASK] ran\tgiraffe\n"
                     "zh\t我吃了[MASK]\t果\n", encoding="utf-8")
    out = tmp_path / "o"
    assert main(["cloze", "-m", str(tiny_model), "--items", str(items), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "en: top-1 not measured" in printed, printed
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert summary["en"]["top1"] is None and summary["en"]["unscorable"] == 2
    assert summary["zh"]["top1"] is not None            # a scorable language keeps its number


# --------------------------------------------------------------------------------------------- 27.5 bad inputs
def test_squad_with_a_string_where_a_list_belongs_says_so(tmp_path):
    """A string where a list belongs read as "missing field 'paragraphs'"; now the type is named."""
    from bertology.io.squad import load_squad

    f = tmp_path / "s.json"
    f.write_text(json.dumps({"data": [{"title": "t", "paragraphs": "oops"}]}))
    with pytest.raises(UserError, match="field 'paragraphs' is a string, not a list"):
        load_squad(f)
    f.write_text(json.dumps({"data": [{"paragraphs": [{"context": "an apple", "qas": [
        {"id": "q1", "question": ["what"], "answers": []}]}]}]}))
    with pytest.raises(UserError, match="field 'question' is a list, not a string"):
        load_squad(f)


def test_a_bom_before_the_header_is_stripped(tiny_model, tmp_path):
    """Windows editors start a UTF-8 file with a BOM: the senses and cloze readers took the header for data
    (senses: 'label' became part of the first sentence's label; cloze: 'expected the header')."""
    from bertology.experiments.cloze import read_cloze_items
    from bertology.io.sentences import read_sentences

    senses = tmp_path / "s.tsv"
    senses.write_text("\ufefflabel\tsentence\nfruit\tI ate an apple\ncompany\tthe apple phone\n", encoding="utf-8")
    sents, labels, _ = read_sentences(senses)
    assert sents == ["I ate an apple", "the apple phone"] and labels == ["fruit", "company"]
    cloze = tmp_path / "c.tsv"
    cloze.write_text("\ufefflang\tsentence\tanswer\nen\tthe [MASK] is red\tapple\n", encoding="utf-8")
    assert [(i.lang, i.answer) for i in read_cloze_items(str(cloze))] == [("en", "apple")]


def test_check_text_refuses_a_lone_surrogate():
    from bertology.checks import check_text

    assert check_text("text", "今天買了蘋[MASK]來吃") == "今天買了蘋[MASK]來吃"
    with pytest.raises(UserError, match="character 3 is not valid text") as e:
        check_text("text", "ab\ud800c")
    assert e.value.fields == ("text",)


# --------------------------------------------------------------------------------------------- 27.7 senses memory
def test_senses_similarity_and_heatmap_are_bounded():
    """The matrix saved in results.json stops at MAX_SAVED_MATRIX occurrences (then per-label means only); the
    heatmap draws a seeded, label-stratified sample of at most MAX_HEATMAP."""
    import numpy as np

    from bertology.experiments.senses import MAX_HEATMAP, MAX_SAVED_MATRIX, heatmap_sample, similarity_summary

    rng = np.random.default_rng(0)
    small = rng.standard_normal((30, 8)).astype(np.float32)
    labels = ["a"] * 20 + ["b"] * 10
    s = similarity_summary(small, labels, 2)
    assert len(s["matrix"]) == 30 and s["heatmap"] == {"occurrences": list(range(30)), "sampled": False}
    m = np.asarray(s["matrix"])
    a, b = np.arange(20), np.arange(20, 30)
    assert s["per_label"]["a"]["b"] == pytest.approx(m[np.ix_(a, b)].mean(), abs=1e-4)
    assert s["per_label"]["a"]["a"] == pytest.approx(m[np.ix_(a, a)][~np.eye(20, dtype=bool)].mean(), abs=1e-4)

    n = MAX_SAVED_MATRIX + 100
    big = rng.standard_normal((n, 8)).astype(np.float32)
    labels = ["a"] * (n - 30) + ["b"] * 20 + ["c"] * 10
    s = similarity_summary(big, labels, 2, seed=1)
    assert s["matrix"] is None and "matrix_omitted" in s and set(s["per_label"]) == {"a", "b", "c"}
    shown = s["heatmap"]["occurrences"]
    assert s["heatmap"]["sampled"] and len(shown) <= MAX_HEATMAP and len(s["heatmap"]["matrix"]) == len(shown)
    got = {k: sum(labels[i] == k for i in shown) for k in "abc"}
    assert got["c"] >= 1 and got["b"] >= 2 and got["a"] > got["b"]        # stratified: each label kept
    assert shown == heatmap_sample(labels, MAX_HEATMAP, seed=1) != heatmap_sample(labels, MAX_HEATMAP, seed=2)


def test_sense_separation_from_sums_equals_the_pairwise_means():
    """Above PAIRWISE_MAX, within / between come from label sums (no n x n matrix): the same numbers."""
    import numpy as np

    from bertology import metrics

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((60, 16)).astype(np.float32) + np.repeat(np.eye(16)[:2], 30, axis=0)
    labels = ["x"] * 30 + ["y"] * 30
    exact = metrics.sense_separation(vectors, labels)
    limit, metrics.PAIRWISE_MAX = metrics.PAIRWISE_MAX, 10
    try:
        summed = metrics.sense_separation(vectors, labels)
    finally:
        metrics.PAIRWISE_MAX = limit
    for key in ("within", "between", "separation", "silhouette", "purity"):
        assert summed[key] == pytest.approx(exact[key], abs=1e-5), key


def test_senses_heatmap_of_many_occurrences_has_a_bounded_size(tiny_model, tmp_path):
    """400 sentences drew an 11,079 x 10,131 px PNG; now at most MAX_HEATMAP rows whatever the input."""
    from PIL import Image

    f = tmp_path / "s.tsv"
    rows = [f"fruit\ti ate apple number {i}" if i % 2 else f"company\tapple sold phone {i}" for i in range(600)]
    f.write_text("label\tsentence\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "o"
    assert main(["senses", "-s", str(f), "-t", "apple", "-m", str(tiny_model), "-o", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["similarity"]["matrix"] is None and len(doc["similarity"]["heatmap"]["occurrences"]) == 200
    assert (out / "results.json").stat().st_size < 2_000_000
    width, height = Image.open(out / "similarity.png").size
    assert width * height < 8000 * 8000, (width, height)


def test_langvec_library_refuses_non_finite_alphas(tiny_model):
    from bertology.experiments.langvec import langvec
    from bertology.io.dictionaries import Dictionary

    corpora = {"en": ["the apple is red"], "zh": ["蘋果"]}
    with pytest.raises(UserError, match="`alphas` must be a finite number"):
        langvec(str(tiny_model), corpora, ["the apple"], Dictionary([("apple", "蘋果")]), "en", "zh",
                alphas=(0, float("nan")))
