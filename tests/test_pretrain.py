"""Masked-LM pretraining: tokenizer, packing, masking, the CLI end to end, resume after SIGKILL, 2-process DDP
against 1 process, fill-mask."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bertology.cli import main
from bertology.io.corpora import parse_corpus_spec, read_corpora
from bertology.errors import UserError
from bertology.experiments.pretrain import (PackedMLMBatches, PretrainConfig, fill_mask, make_masker, pack_lines, pretrain,
                                smoothed_shares)

from conftest import TINY_WORDS

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from a second thread, and on a loaded machine OpenMP threads waiting on each
    other made these tests ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _corpus(path: Path, lang: str, n: int, seed: int = 0) -> Path:
    """Synthetic sentences over the tiny tokenizer's vocabulary (English words or CJK characters) with
    something to learn: Zipf-distributed words (a model that learns nothing scores ~1/len(words))."""
    rng = random.Random(seed)
    words = [w for w in TINY_WORDS if w.isascii() == (lang == "en")]
    weights = [1 / (r + 1) ** 1.5 for r in range(len(words))]
    sep = " " if lang == "en" else ""
    lines = (sep.join(rng.choices(words, weights, k=rng.randint(4, 14))) for _ in range(n))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("corpora")
    return [f"en={_corpus(d / 'en.txt', 'en', 1500)}", f"zh={_corpus(d / 'zh.txt', 'zh', 1500, 1)}"]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


# --------------------------------------------------------------------------------------------- pieces
def test_corpus_spec_parsing_and_errors(tmp_path):
    s = parse_corpus_spec("zh=tatoeba-cmn-eng#1@500")
    assert (s.lang, s.source, s.column, s.max_lines) == ("zh", "tatoeba-cmn-eng", 1, 500)
    with pytest.raises(UserError, match="LANG=FILE"):
        parse_corpus_spec("just-a-file.txt")
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("hello\t你好\nonly-one-column\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"pairs.tsv:2: no column 1"):
        read_corpora([f"zh={tsv}#1"])
    assert main(["pretrain", "--corpus", "nonsense", "--out", str(tmp_path / "o")]) == 2


def test_tokenizer_cjk_characters_and_autotokenizer(tmp_path, data_dir):
    from transformers import AutoTokenizer

    assert main(["tokenizer", "train", "--corpus", "en=tatoeba-cmn-eng#0@3000", "--corpus", "zh=tatoeba-cmn-eng#1@3000",
                 "--vocab-size", "3000", "--budget-tokens", "200000", "--data-dir", str(data_dir),
                 "--out", str(tmp_path / "tok")]) == 0
    res = json.loads((tmp_path / "tok" / "results.json").read_text())
    assert res["schema"] == "bertology.tokenizer/1" and set(res["training_lines"]) == {"en", "zh"}
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert tok.is_fast and len(tok) == res["vocab_size"] <= 3000
    pieces = tok.tokenize("我们今天[MASK]了 Hello, World!")
    assert pieces[:3] == ["我", "们", "今"] and "[MASK]" in pieces and "hello" in pieces and "," in pieces
    assert res["cjk_chars_in_vocab"] > 500          # the alphabet limit must not squeeze out Chinese
    assert tok("你好")["input_ids"][0] == tok.cls_token_id


def test_smoothed_shares():
    p = smoothed_shares({"en": 90.0, "zh": 10.0}, 0.7)
    assert 0.1 < p["zh"] < 0.5 and abs(sum(p.values()) - 1) < 1e-9
    assert smoothed_shares({"en": 90.0, "zh": 10.0}, 0.0)["zh"] == pytest.approx(0.5)


def test_pack_lines_fills_every_position():
    seqs = pack_lines([[10, 11, 12], [13], [14, 15, 16, 17, 18]], seq_len=8, cls_id=2, sep_id=3)
    # stream: 10 11 12 3 13 3 14 15 16 17 18 3 (12 tokens) -> one sequence of 7 body tokens, tail dropped
    assert seqs.tolist() == [[2, 10, 11, 12, 3, 13, 3, 14]]


def test_masking_rates_specials_and_determinism(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    m = make_masker(tok)
    ids = torch.randint(5, len(tok), (64, 128))
    ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
    g = lambda: torch.Generator().manual_seed(123)  # noqa: E731
    inputs, labels = m(ids, g())
    inputs2, labels2 = m(ids, g())
    assert torch.equal(inputs, inputs2) and torch.equal(labels, labels2)
    sel = labels != -100
    assert 0.14 < sel.float().mean() < 0.16
    assert not sel[:, 0].any() and not sel[:, -1].any()          # [CLS]/[SEP] never predicted
    assert torch.equal(labels[sel], ids[sel])
    masked = (inputs[sel] == tok.mask_token_id).float().mean()
    kept = (inputs[sel] == ids[sel]).float().mean()
    assert 0.77 < masked < 0.83 and 0.08 < kept < 0.13             # 80% [MASK], ~10% kept (+ random hits)


def test_whole_word_masking_masks_all_pieces(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    m = make_masker(tok, prob=0.3, whole_word=True)
    ids = torch.tensor([tok.convert_tokens_to_ids(["[CLS]"] + ["appl", "##e", "##s"] * 40 + ["[SEP]"])
                        if "appl" in tok.get_vocab() else
                        tok.convert_tokens_to_ids(["[CLS]"] + ["launch", "##ed", "##ly"] * 40 + ["[SEP]"])])
    _, labels = m(ids, torch.Generator().manual_seed(0))
    words = (labels[0, 1:-1] != -100).view(40, 3)
    assert words.any() and (words.all(1) == words.any(1)).all()   # a word is masked entirely or not at all


def test_batches_two_ranks_equal_one_rank_of_double_batch(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    seqs = {"en": np.random.default_rng(0).integers(5, len(tok), (100, 16)).astype(np.int32),
            "zh": np.random.default_rng(1).integers(5, len(tok), (30, 16)).astype(np.int32)}
    b = PackedMLMBatches(seqs, 4, make_masker(tok), alpha=0.7, seed=3)
    one = PackedMLMBatches(seqs, 8, make_masker(tok), alpha=0.7, seed=3)(epoch=1)
    r0, r1 = b(1, 0, 2), b(1, 1, 2)
    assert len(r0) == len(r1) == len(one) == 130 // 8
    for i in range(len(one)):
        full, a, c = one[i], r0[i], r1[i]
        assert torch.equal(full["input_ids"][0::2], a["input_ids"]) and torch.equal(full["labels"][1::2], c["labels"])
        assert int(full["n_masked"]) == int(a["n_masked"]) == int(c["n_masked"])
    assert not torch.equal(b(2, 0, 2)[0]["input_ids"], r0[0]["input_ids"])   # epochs differ
    # the smaller language is up-sampled towards its smoothed share
    rows = b.epoch_rows(0)
    assert (rows[:, 0] == 1).mean() == pytest.approx(b.shares()["zh"], abs=0.01) and b.shares()["zh"] > 30 / 130


# --------------------------------------------------------------------------------------------- end to end
def test_pretrain_cli_exports_loadable_model_and_learns(tmp_path, tiny_model, corpora, capsys):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    out = tmp_path / "run"
    dictionary = tmp_path / "dict.txt"
    dictionary.write_text("apple\t蘋果\nphone\t手機\ntea\t茶\nprice\t價\nstock\t股\nnew\t新\n", encoding="utf-8")
    args = ["pretrain", *sum((["--corpus", c] for c in corpora), []), "--tokenizer", str(tiny_model),
            "--track-alignment", str(dictionary),
            "--size", "tiny", "--seq-len", "32", "--batch-size", "16", "--max-steps", "60", "--eval-every", "30",
            "--lr", "1e-3", "--out", str(out), "--no-progress", "--precision", "bf16"]
    assert main(args) == 0
    assert "tokenize" not in capsys.readouterr().err       # --no-progress silences every bar, data preparation's too
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == "bertology.pretrain/2" and doc["steps"] == 60
    assert set(doc["languages"]) == {"en", "zh"} and doc["tokens_seen"] == 60 * 16 * 32
    first, last = doc["history"][0], doc["history"][-1]
    assert all(0 <= h["mrr"] <= 1 and "mrr_random" in h for h in doc["history"])   # --track-alignment logged
    vocab = len(AutoTokenizer.from_pretrained(tiny_model))
    assert last["eval_loss"] < first["eval_loss"] < np.log(vocab)    # it learns: below a uniform guess, and on
    assert last["eval_acc"] > 0.2                                    # to the frequent words (chance ~1/100)
    assert doc["unigram_baseline"]["unigram_loss_en"] < np.log(vocab)
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert [json.loads(l)["step"] for l in (out / "eval.jsonl").read_text().splitlines()] == [30, 60]
    model = AutoModelForMaskedLM.from_pretrained(out / "model")
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 128
    assert AutoTokenizer.from_pretrained(out / "model").is_fast
    # a second run into the same directory without --resume is refused with exit 2
    assert main(args) == 2
    # fill-mask on the exported model
    assert main(["fill-mask", "--model", str(out / "model"), "我 [MASK] 蘋 果", "--out", str(tmp_path / "fm")]) == 0
    fm = json.loads((tmp_path / "fm" / "results.json").read_text())
    cands = fm["items"][0]["masks"][0]["candidates"]
    assert len(cands) == 5 and cands[0]["prob"] >= cands[-1]["prob"] and sum(c["prob"] for c in cands) <= 1.0001


def test_custom_eval_hook_is_called_and_logged(tmp_path, tiny_model, corpora):
    calls = []

    def hook(model, step, metrics):
        calls.append((type(model).__name__, step, "eval_loss" in metrics))
        return {"my_metric": step * 2}

    res = pretrain(PretrainConfig(corpora=corpora, out_dir=str(tmp_path / "r"), tokenizer=str(tiny_model),
                                  size="tiny", max_length=32, batch_size=8, max_steps=6, eval_every=3, progress=False),
                   eval_hooks=[hook])
    assert calls == [("BertForMaskedLM", 3, True), ("BertForMaskedLM", 6, True)]
    assert [h["my_metric"] for h in res.history] == [6, 12]
    logged = [json.loads(l) for l in (tmp_path / "r" / "eval.jsonl").read_text().splitlines()]
    assert [e["my_metric"] for e in logged] == [6, 12]


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "bertology.cli", *args]


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, tiny_model, corpora):
    base = ["pretrain", *sum((["--corpus", c] for c in corpora), []), "--tokenizer", str(tiny_model),
            "--size", "tiny", "--seq-len", "32", "--batch-size", "8", "--max-steps", "60", "--eval-every", "10",
            "--no-progress", "--seed", "5", "--dropout", "0.1"]   # dropout on: its RNG state must be restored too
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_cli(*base, "--out", str(straight)), env=ENV, check=True, capture_output=True)

    proc = subprocess.Popen(_cli(*base, "--out", str(killed)), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:   # kill it once a few checkpoints exist, somewhere mid-run
        ev = killed / "eval.jsonl"
        if ev.exists() and len(ev.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (killed / "results.json").exists()          # it really died before the end
    r = subprocess.run(_cli(*base, "--out", str(killed), "--resume"), env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = _weights(straight / "model"), _weights(killed / "model")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from the uninterrupted one"
    steps = [json.loads(l)["step"] for l in (killed / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 60  # no duplicated log lines after the resume


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_two_processes_batch_b_match_one_process_batch_2b(tmp_path, tiny_model, corpora):
    """The gradients after the first backward: 2 gloo processes x batch B (DDP-averaged) equal 1 process x 2B.
    Gradients, not final weights: AdamW hardly moves under a uniform loss scale, so only gradients pin the
    `x world` normalisation of the loss."""
    common = ["pretrain", *sum((["--corpus", c] for c in corpora), []), "--tokenizer", str(tiny_model),
              "--size", "tiny", "--seq-len", "32", "--max-steps", "2", "--eval-every", "2", "--dropout", "0",
              "--no-progress", "--lr", "1e-3"]
    one, two = tmp_path / "one", tmp_path / "two"
    helper = str(Path(__file__).parent / "helpers" / "grad_dump.py")
    subprocess.run([sys.executable, helper, *common, "--batch-size", "8", "--out", str(one)],
                   env={**ENV, "GRAD_DUMP": str(tmp_path / "g1")}, check=True, capture_output=True)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    r = subprocess.run([torchrun, "--nproc_per_node=2", "--master_port=29533", helper, *common,
                        "--batch-size", "4", "--out", str(two)], env={**ENV, "GRAD_DUMP": str(tmp_path / "g2")},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]              # clean exit (no SIGABRT at shutdown)
    g1 = torch.load(tmp_path / "g1.0.pt")
    g2 = [torch.load(tmp_path / f"g2.{rank}.pt") for rank in (0, 1)]
    assert g1.keys() == g2[0].keys() == g2[1].keys() and len(g1) > 10
    for k in g1:
        assert torch.equal(g2[0][k], g2[1][k]), k            # DDP: every rank holds the averaged gradient
        assert torch.allclose(g1[k], g2[0][k], rtol=1e-4, atol=1e-7), (k, float((g1[k] - g2[0][k]).abs().max()))
    assert json.loads((two / "results.json").read_text())["tokens_seen"] == 2 * 8 * 32


# --------------------------------------------------------------------------------------------- fill-mask
def test_fill_mask_needs_mlm_head_and_a_mask(tiny_model, tiny_encoder, capsys):
    assert main(["fill-mask", "--model", str(tiny_encoder), "今天買了蘋[MASK]來吃"]) == 2
    assert "no masked-LM head" in capsys.readouterr().err
    assert main(["fill-mask", "--model", str(tiny_model), "no blank here"]) == 2
    res = fill_mask(str(tiny_model), ["今天買了蘋[MASK]來吃", "[MASK] ate [MASK] apple"], top_k=3)
    assert [len(it["masks"]) for it in res.items] == [1, 2]
    assert all(len(m["candidates"]) == 3 for it in res.items for m in it["masks"])
    assert fill_mask(str(tiny_model), ["買了蘋[MASK]"], top_k=2, convert="t2s").items[0]["text"] == "买了苹[MASK]"
    assert main(["fill-mask", "--model", str(tiny_model), "--convert", "nope", "a [MASK]"]) == 2


def test_report_section(tmp_path, tiny_model, tiny_encoder):
    from bertology.report.sections.pretrain import report_section
    from bertology.report import ReportContext

    refused = report_section(ReportContext(model=str(tiny_encoder), out_dir=tmp_path / "a", data_dir=None))
    assert "no masked-LM head" in refused.error and refused.claim_ids == ["fillmask"]
    sec = report_section(ReportContext(model=str(tiny_model), out_dir=tmp_path / "b", data_dir=None))
    assert sec.figures[0].exists() and len(sec.tables[0][1]) >= 5 and sec.model is None
    # a model without an MLM head hands the section to the fallback model, which the section names
    handed = report_section(ReportContext(model=str(tiny_encoder), out_dir=tmp_path / "c", data_dir=None,
                                          fallback_model=str(tiny_model)))
    assert handed.error is None and handed.model == str(tiny_model) and "no masked-LM head" in handed.explanation
    # the verdict's item set runs on every model of the report that has an MLM head; the other is not applicable
    by_model = {m["model"]: m for m in handed.measures["fillmask"]}
    assert "no masked-LM head" in by_model[str(tiny_encoder)]["not_applicable"]
    assert by_model[str(tiny_model)]["items"] > 0 or "not_applicable" in by_model[str(tiny_model)]


# --------------------------------------------------------------------------------------------- speed options
def _tiny_mlm_batch(vocab=120, seed=0):
    from bertology.experiments.pretrain import Masker, make_mlm, model_config

    torch.manual_seed(seed)
    mlm = make_mlm(model_config("tiny", None, vocab, 16, 0.0))
    ids = torch.randint(5, vocab, (4, 16), generator=torch.Generator().manual_seed(seed))
    inputs, labels = Masker(4, vocab, (0, 1, 2, 3, 4), prob=0.3)(ids, torch.Generator().manual_seed(seed + 1))
    return mlm, {"input_ids": inputs, "labels": labels, "n_masked": (labels != -100).sum()}


def test_compiled_objective_matches_eager_and_keeps_state_dict_keys():
    from bertology.experiments.pretrain import MaskedLMObjective

    mlm, batch = _tiny_mlm_batch()
    eager = MaskedLMObjective(mlm)
    compiled = MaskedLMObjective(mlm, compile=True)
    assert list(compiled.state_dict()) == list(eager.state_dict())   # no `_orig_mod.` prefix
    grads = []
    for obj in (eager, compiled):
        obj.train()
        loss = obj(**batch)[0]
        loss.backward()
        grads.append((loss.item(), {n: p.grad.clone() for n, p in mlm.named_parameters()}))
        mlm.zero_grad(set_to_none=True)
    assert compiled.compiled and compiled.compile_error is None
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-4)
    for n, g in grads[0][1].items():
        assert torch.allclose(g, grads[1][1][n], atol=1e-5, rtol=1e-3), n
    compiled.eval()
    with torch.inference_mode():
        _, logits, target = compiled(**batch)        # evaluation: eager, with logits
    assert logits.shape == (len(target), 120)


class _FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward compilation failed")


def _compile_failing_forward(fn, **kw):
    def call(*a, **k):
        raise RuntimeError("no C++ compiler here")
    return call


def _compile_failing_backward(fn, **kw):
    """A graph that compiles forward but fails in its (lazily compiled) backward."""
    def call(*a, **k):
        out = fn(*a, **k)
        return _FailingBackward.apply(out) if torch.is_tensor(out) else out
    return call


@pytest.mark.parametrize("broken_compile, message", [(_compile_failing_forward, "no C++ compiler here"),
                                                     (_compile_failing_backward, "backward compilation failed")])
def test_compile_failure_falls_back_to_eager(monkeypatch, broken_compile, message):
    """Compilation failing in the forward or in the backward graph: caught at the first step, eager from then."""
    from bertology.experiments.pretrain import MaskedLMObjective

    monkeypatch.setattr(torch, "compile", broken_compile)
    mlm, batch = _tiny_mlm_batch()
    obj = MaskedLMObjective(mlm, compile=True).train()
    with pytest.warns(RuntimeWarning, match=re.escape(message)):
        loss = obj(**batch)[0]
    loss.backward()                                     # the eager graph: no failure
    assert not obj.compiled and message in obj.compile_error and torch.isfinite(loss)
    assert all(p.grad is not None for p in obj.parameters() if p.requires_grad)


def test_pretrain_compiled_from_tokenizer_only_dir_checkpoints_and_resumes(tmp_path, tiny_model, corpora):
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok_dir = tmp_path / "tok"                      # what `bertology tokenizer` writes: no config.json
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tok_dir)
    assert not (tok_dir / "config.json").exists()
    cfg = dict(corpora=corpora, out_dir=str(tmp_path / "r"), tokenizer=str(tok_dir), size="tiny", max_length=32,
               batch_size=8, eval_every=2, progress=False, compile=True, precision="bf16")
    pretrain(PretrainConfig(max_steps=2, **cfg))
    keys = set(load_file(str(tmp_path / "r" / "checkpoint" / "model.safetensors")))
    assert keys and not any("_orig_mod" in k for k in keys)
    assert not (tmp_path / "r" / "best.safetensors").exists()     # pretraining keeps no "best" copy
    res = pretrain(PretrainConfig(max_steps=4, resume=True, **cfg))
    assert res.steps == 4 and [h["step"] for h in res.history] == [2, 4]
    AutoModelForMaskedLM.from_pretrained(tmp_path / "r" / "model")


def test_bf16_compiled_run_with_dropout_resumes_bit_identically(tmp_path, tiny_model, corpora):
    """The command the README recommends (bf16, --compile), dropout on: interrupted after a checkpoint and
    resumed, it reaches the weights of the uninterrupted run bit for bit."""
    cfg = dict(corpora=corpora, tokenizer=str(tiny_model), size="tiny", max_length=32, batch_size=8, max_steps=6,
               eval_every=2, progress=False, compile=True, precision="bf16", dropout=0.1, seed=5)
    straight = pretrain(PretrainConfig(out_dir=str(tmp_path / "straight"), **cfg))
    assert straight.steps == 6
    seen = []

    def die_at_third_evaluation(model, step, metrics):
        seen.append(step)
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(PretrainConfig(out_dir=str(tmp_path / "killed"), **cfg), eval_hooks=[die_at_third_evaluation])
    assert seen == [2, 4, 6]
    assert torch.load(tmp_path / "killed" / "checkpoint" / "state.pt", weights_only=True)["step"] == 4
    resumed = pretrain(PretrainConfig(out_dir=str(tmp_path / "killed"), resume=True, **cfg))
    assert resumed.steps == 6 and [h["step"] for h in resumed.history] == [2, 4, 6]
    doc = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert doc["config"]["compile"] and doc["config"]["precision"] == "bf16"
    assert doc["compiled"] is True and doc["compile_error"] is None       # it really ran compiled
    a, b = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "killed" / "model")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed bf16 + compile run diverged from the uninterrupted one"


def test_compile_failure_is_recorded_in_results_json(monkeypatch, tmp_path, tiny_model, corpora):
    """--compile that fell back to eager says so: a warning, and compiled=false + compile_error in results.json."""
    monkeypatch.setattr(torch, "compile", _compile_failing_forward)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler here"):
        pretrain(PretrainConfig(corpora=corpora, out_dir=str(tmp_path / "r"), tokenizer=str(tiny_model), size="tiny",
                                max_length=32, batch_size=8, max_steps=2, eval_every=2, progress=False, compile=True))
    doc = json.loads((tmp_path / "r" / "results.json").read_text())
    assert doc["config"]["compile"] is True and doc["compiled"] is False
    assert "no C++ compiler here" in doc["compile_error"]


# --------------------------------------------------------------------------------------------- pre-LN
def test_pre_ln_model_type_trains_exports_and_serves_the_toolkit(tmp_path, tiny_model, corpora, capsys):
    """--model-type roberta-prelayernorm: a pre-LN encoder that AutoModelForMaskedLM loads, trained by the same
    objective (base model + lm_head), and usable by the rest of the toolkit (fill-mask, hidden states)."""
    from transformers import AutoModel, AutoModelForMaskedLM

    out = tmp_path / "preln"
    corpus_args = sum((["--corpus", c] for c in corpora), [])
    args = ["pretrain", *corpus_args, "--tokenizer", str(tiny_model), "--model-type", "roberta-prelayernorm",
            "--size", "tiny", "--max-length", "32", "--batch-size", "16", "--max-steps", "40", "--eval-every", "20",
            "--lr", "1e-3", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["model_type"] == "roberta-prelayernorm"
    first, last = doc["history"][0], doc["history"][-1]
    assert last["eval_loss"] < first["eval_loss"]
    mlm = AutoModelForMaskedLM.from_pretrained(out / "model")
    assert type(mlm).__name__ == "RobertaPreLayerNormForMaskedLM"
    assert mlm.config.max_position_embeddings >= 32 + mlm.config.pad_token_id + 1   # RoBERTa's position offset
    layer = mlm.base_model.encoder.layer[0]
    assert hasattr(layer.intermediate, "LayerNorm")          # the LayerNorm sits inside the branch: pre-LN
    assert mlm.lm_head.decoder.weight.data_ptr() == mlm.base_model.embeddings.word_embeddings.weight.data_ptr()
    enc = AutoModel.from_pretrained(out / "model", output_hidden_states=True)
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    assert len(enc(input_ids=ids).hidden_states) == 3      # embeddings + 2 layers
    assert main(["fill-mask", "--model", str(out / "model"), "我 [MASK] 蘋 果", "--out", str(tmp_path / "fm")]) == 0
    capsys.readouterr()
    # the flag validates at the boundary: an unknown type, and a type next to --init-from, exit 2 in one line
    assert main([*args[:-3], "--model-type", "gpt2", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--model-type 'gpt2': choose one of bert, roberta-prelayernorm" in capsys.readouterr().err
    assert main(["pretrain", *corpus_args, "--model-type", "roberta-prelayernorm", "--init-from", str(tiny_model),
                 "--max-steps", "2", "--out", str(tmp_path / "y"), "--no-progress"]) == 2
    assert "--init-from" in capsys.readouterr().err


def test_config_file_sets_the_architecture_and_a_bad_one_exits_2(tmp_path, tiny_model, corpora, capsys):
    """--config: a config.json of either model type shapes the model; an unreadable one is one line, exit 2."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_model).to_dict()
    cfg.update(num_hidden_layers=1, model_type="bert")
    (tmp_path / "one-layer.json").write_text(json.dumps(cfg))
    corpus_args = sum((["--corpus", c] for c in corpora), [])
    common = ["--tokenizer", str(tiny_model), "--max-length", "32", "--batch-size", "8", "--max-steps", "2",
              "--eval-every", "2", "--no-progress"]
    assert main(["pretrain", *corpus_args, *common, "--config", str(tmp_path / "one-layer.json"),
                 "--out", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "model" / "config.json").read_text())["num_hidden_layers"] == 1
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["pretrain", *corpus_args, *common, "--config", str(tmp_path / "bad.json"),
                 "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "bad.json: not a readable model config.json" in err and len(err.strip().splitlines()) == 1
