"""`bertology pretrain --init-from`: a pretrained body copied, its vocabulary extended, bad sources refused."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bertology.cli import main

from conftest import make_tiny_bert


def _lines(path: Path, words: list[str], sep: str, n: int) -> str:
    rng = random.Random(0)
    path.write_text("\n".join(sep.join(rng.choices(words, k=12)) for _ in range(n)) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> list[str]:
    """English the tiny model knows, and Chinese with characters it lacks (貓 狗 魚 鳥 are not in its vocabulary)."""
    d = tmp_path_factory.mktemp("ws-corpora")
    en = _lines(d / "en.txt", "the cat ate an apple today and dog bought a red phone".split(), " ", 400)
    zh = _lines(d / "zh.txt", list("今天我買了貓和狗還有魚鳥"), "", 400)
    return ["--corpus", f"en={en}", "--corpus", f"zh={zh}"]


def _run(tmp_path, corpora, source, *extra) -> int:
    return main(["pretrain", *corpora, "--init-from", str(source), "--vocab-size", "200", "--max-length", "32",
                 "--batch-size", "8", "--max-steps", "4", "--eval-every", "4", "--no-progress",
                 "--out", str(tmp_path / "run"), *extra])


def test_init_from_copies_body_and_extends_vocabulary(tmp_path, tiny_encoder, corpora):
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    assert _run(tmp_path, corpora, tiny_encoder, "--lr", "1e-12") == 0   # lr ~0: weights stay as initialised
    out = tmp_path / "run"
    doc = json.loads((out / "results.json").read_text())
    ws = doc["warm_start"]
    src_tok = AutoTokenizer.from_pretrained(tiny_encoder)
    tok = AutoTokenizer.from_pretrained(out / "model")
    n_old = len(src_tok)
    assert ws["source_vocab_size"] == n_old and ws["added_tokens"] == len(tok) - n_old > 0
    # every old token keeps its id; the new characters are appended
    assert {t: i for t, i in tok.get_vocab().items() if i < n_old} == src_tok.get_vocab()
    assert all(tok.convert_tokens_to_ids(c) >= n_old for c in "貓狗魚鳥")
    assert "[UNK]" not in tok.tokenize("貓狗魚鳥")
    src = AutoModel.from_pretrained(tiny_encoder).state_dict()
    new = load_file(out / "model" / "model.safetensors")
    assert torch.allclose(new["bert.embeddings.word_embeddings.weight"][:n_old].float(),
                          src["embeddings.word_embeddings.weight"], atol=1e-6)
    assert torch.allclose(new["bert.encoder.layer.1.output.dense.weight"].float(),
                          src["encoder.layer.1.output.dense.weight"], atol=1e-6)
    assert "bert.encoder.layer.0.attention.self.query.weight" in ws["copied"]
    assert any(n.startswith("cls.predictions.transform") for n in ws["new"])     # the source had no MLM head
    mlm = AutoModelForMaskedLM.from_pretrained(out / "model")
    assert mlm.config.hidden_size == 32 and mlm.config.vocab_size == len(tok)


def test_init_from_an_mlm_model_with_its_own_tokenizer_adds_nothing(tmp_path, tiny_model, corpora):
    assert _run(tmp_path, corpora, tiny_model, "--tokenizer", str(tiny_model), "--lr", "1e-12") == 0
    ws = json.loads((tmp_path / "run" / "results.json").read_text())["warm_start"]
    assert ws["added_tokens"] == 0 and "cls.predictions.transform.*" in ws["copied"]


def test_init_from_a_bf16_checkpoint_trains_in_fp32(tmp_path, tiny_model, corpora):
    """zh-en-mini ships in bf16: its config.json says dtype bfloat16, and transformers builds a from_config model
    in that dtype. The run must still train fp32 parameters (bf16 is autocast's job, and pure-bf16 AdamW updates
    vanish under the weights' rounding), and export them as such."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    src = tmp_path / "bf16-src"
    AutoModelForMaskedLM.from_pretrained(tiny_model).to(torch.bfloat16).save_pretrained(src)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(src)
    assert json.loads((src / "config.json").read_text()).get("dtype") == "bfloat16"
    assert _run(tmp_path, corpora, src, "--tokenizer", str(src)) == 0
    weights = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.float32}


@pytest.mark.parametrize("case", ["size", "no-tokenizer", "not-a-model", "config"])
def test_init_from_bad_sources_exit_2(tmp_path, tiny_encoder, corpora, case, capsys):
    extra: list[str] = []
    source: Path = tiny_encoder
    if case == "size":
        extra = ["--size", "mini"]                                  # the tiny model is 2 x 32, mini 4 x 256
    elif case == "no-tokenizer":
        source = make_tiny_bert(tmp_path / "bare", mlm=False)
        for f in source.iterdir():
            if f.name not in ("config.json", "model.safetensors"):
                f.unlink()
    elif case == "not-a-model":
        source = tmp_path / "empty"
        source.mkdir()
    else:
        extra = ["--config", str(tiny_encoder / "config.json")]
    assert _run(tmp_path, corpora, source, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert {"size": "--size mini", "no-tokenizer": "no tokenizer", "not-a-model": "not a model",
            "config": "--config"}[case] in err
    assert not (tmp_path / "run" / "checkpoint").exists()
