"""pretrain's masking options (--mask-rate, --whole-word with jieba, --span) and the --track-senses probe."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from bertology.cli import main
from bertology.experiments.pretrain import PretrainConfig, make_masker, mask_generator, pretrain
from bertology.experiments.pretrain.objective import WordBoundaries

from test_pretrain import _corpus, _weights


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("corpora")
    return [f"en={_corpus(d / 'en.txt', 'en', 600)}", f"zh={_corpus(d / 'zh.txt', 'zh', 600, 1)}"]


TEXT = "今天買了蘋果來吃 the phones sweetly launched 我買了手機"


def _batch(tok, rows: int = 200, repeat: int = 1) -> torch.Tensor:
    return torch.tensor([tok(" ".join([TEXT] * repeat))["input_ids"]] * rows)


def test_words_chinese_from_jieba_english_from_pieces(tok):
    ids = _batch(tok, 1)
    starts = WordBoundaries(tok)(ids)[0].tolist()
    marked = "".join(("|" if s else "") + t.removeprefix("##") for t, s in zip(tok.convert_ids_to_tokens(ids[0]), starts))
    assert "|今天|買|了|蘋果|來|吃" in marked            # jieba: 今天 and 蘋果 are words, their characters one unit
    assert "|phones|sweetly|launched" in marked          # phone ##s, sweet ##ly: a word's pieces one unit


@pytest.mark.parametrize("span", [False, True])
def test_all_pieces_of_a_word_are_masked_together(tok, span):
    ids = _batch(tok)
    starts = WordBoundaries(tok)(ids)
    _, labels = make_masker(tok, 0.3, whole_word=True, span=span)(ids, mask_generator(0, 1, 2))
    masked = labels != -100
    word = torch.cumsum(starts.long(), 1)
    for b in range(len(ids)):
        for w in word[b].unique():
            inside = masked[b][word[b] == w]
            assert inside.all() or not inside.any()
    pieces = [i for i, t in enumerate(tok.convert_ids_to_tokens(ids[0])) if t in ("蘋", "果", "phone", "##s")]
    assert masked[:, pieces].any()       # the words tested were masked somewhere, not only left alone


def test_masking_deterministic_from_the_seed(tok):
    ids = _batch(tok, 20)
    for whole_word, span in ((False, False), (True, False), (True, True)):
        m = make_masker(tok, 0.3, whole_word, span)
        a, b, c = (m(ids, mask_generator(*k)) for k in ((0, 1, 2), (0, 1, 2), (1, 1, 2)))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize("rate", [0.15, 0.4])
@pytest.mark.parametrize("whole_word,span", [(False, False), (True, False), (False, True), (True, True)])
def test_mask_rate_respected_roughly(tok, rate, whole_word, span):
    ids = _batch(tok, 100, repeat=5)      # rows of ~130 tokens, as pretraining's: a span cannot start before a row
    _, labels = make_masker(tok, rate, whole_word, span)(ids, mask_generator(3))
    body = ~torch.isin(ids, torch.tensor(tok.all_special_ids))
    share = float((labels != -100)[body].float().mean())
    assert rate * 0.9 < share < rate * 1.1, share


def _cfg(corpora, tiny_model, out, **kw) -> PretrainConfig:
    return PretrainConfig(corpora=corpora, out_dir=str(out), tokenizer=str(tiny_model), size="tiny", max_length=32,
                          batch_size=8, max_steps=6, eval_every=3, progress=False, whole_word=True, mask_rate=0.3,
                          seed=3, **kw)


def test_resume_with_whole_word_is_bit_identical(tmp_path, tiny_model, corpora):
    straight = pretrain(_cfg(corpora, tiny_model, tmp_path / "straight"))

    def crash(model, step, metrics):      # dies at the second evaluation, before its checkpoint is written
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(_cfg(corpora, tiny_model, tmp_path / "resumed"), eval_hooks=[crash])
    resumed = pretrain(_cfg(corpora, tiny_model, tmp_path / "resumed", resume=True))
    a, b = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "resumed" / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["eval_loss"] for h in straight.history] == [h["eval_loss"] for h in resumed.history]
    doc = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert doc["config"]["mask_rate"] == 0.3 and doc["config"]["whole_word"] is True
    assert doc["masking"]["unit"] == "word" and doc["masking"]["word_segmenter"].startswith("jieba")


def _args(corpora, tiny_model, out, *extra) -> list[str]:
    return ["pretrain", *sum((["--corpus", c] for c in corpora), []), "--tokenizer", str(tiny_model), "--size",
            "tiny", "--max-length", "32", "--batch-size", "8", "--max-steps", "4", "--eval-every", "2",
            "--no-progress", "--out", str(out), *extra]


@pytest.mark.parametrize("rate", ["0", "1", "1.5", "-0.1"])
def test_mask_rate_outside_0_1_exits_2(tmp_path, tiny_model, corpora, capsys, rate):
    assert main(_args(corpora, tiny_model, tmp_path / "r", "--mask-rate", rate)) == 2
    assert "--mask-rate" in capsys.readouterr().err


def test_whole_word_without_jieba_exits_2_naming_it(tmp_path, tiny_model, corpora, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)         # import jieba now raises ImportError
    assert main(_args(corpora, tiny_model, tmp_path / "r", "--whole-word")) == 2
    err = capsys.readouterr().err
    assert "jieba" in err and "--whole-word" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "checkpoint").exists()


def test_track_senses_unreadable_target_exits_2_before_training(tmp_path, tiny_model, corpora, capsys):
    assert main(_args(corpora, tiny_model, tmp_path / "r", "--track-senses", "zh-da")) == 2   # 打: not in vocab
    err = capsys.readouterr().err
    assert "--track-senses" in err and "'打' is an unknown token" in err
    assert not (tmp_path / "r" / "log.jsonl").exists()
    assert main(_args(corpora, tiny_model, tmp_path / "r2", "--track-senses", "no-such-set")) == 2


def test_track_senses_writes_its_numbers(tmp_path, tiny_model, corpora):
    out = tmp_path / "r"
    assert main(_args(corpora, tiny_model, out, "--track-senses", "en-apple", "--whole-word", "--span")) == 0
    doc = json.loads((out / "results.json").read_text())
    assert [h["step"] for h in doc["history"]] == [2, 4]
    layers = 3                                   # the tiny model's 2 layers and its embeddings
    for h in doc["history"]:
        seps = [h[f"sense_separation_l{i}"] for i in range(layers)]
        assert h["sense_separation"] == max(seps) == seps[h["sense_layer"]] and h["sense_layer0"] == seps[0]
        assert 0.5 <= h["sense_purity"] == h[f"sense_purity_l{h['sense_layer']}"] <= 1
    assert doc["masking"]["unit"] == "span of words" and doc["masking"]["span_lengths"]["max"] == 10
    logged = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert all("sense_purity" in e for e in logged)
