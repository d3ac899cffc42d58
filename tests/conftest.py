"""Shared fixtures: tiny random BERTs built here (no downloads) and the real data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()

# Tests never wait on a hub and never use more threads than this small machine has.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# BERTOLOGY_TEST_THREADS=1 on a machine busy with other jobs: two threads that must meet at every op wait
# for each other's time slice.
torch.set_num_threads(int(os.environ.get("BERTOLOGY_TEST_THREADS", 0)) or min(2, os.cpu_count() or 1))

# A vocabulary covering the test sentences: English words, a few CJK characters, sub-word pieces.
TINY_WORDS = """the a an of to and in is was for on with as by at it be this that from or are
apple apples fruit company phone iphone new price stock shares ate bought eat juice tree pie sweet red green
i you he she we they today tomorrow market sold sells launched launch patent device store tasty
cat dog bank river money water music gene dna protein play read book what who where when how why
one two three four five day year city house no me my""".split() + """蘋 果 今 天 買 了 來 吃 手 機 股
價 跌 新 的 專 利 茶 真 難 喝 我 你 他 是 不 人 無 中 國 大 學 生 在 有 這 個 們 上 下 年 月 日 水 火 山""".split()
TINY_PIECES = ["##s", "##ed", "##ing", "##ly", "##er", "##e", "##a", "##o", "##i", "##t", "##n", "##r",
               "##l", "##p", "##c", "##h", "##d", "##m", "##u", "##y", "##g", "##b", "##f", "##k", "##w", "##v"]
TINY_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-:;()")


def make_tiny_bert(path: Path, mlm: bool = True, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """Save a random tiny BERT (with or without MLM head) and a WordPiece tokenizer to `path`."""
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(dict.fromkeys(TINY_WORDS + TINY_CHARS + TINY_PIECES))
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab=str(path / "vocab.txt"), do_lower_case=True, tokenize_chinese_chars=True)
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=hidden * 2, max_position_embeddings=64)
    model = (BertForMaskedLM if mlm else BertModel)(cfg).eval()
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random BERT with MLM head: a directory any --model accepts."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-mlm"))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny random BERT without MLM head."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-enc"), mlm=False)


@pytest.fixture(scope="session")
def families(tmp_path_factory) -> dict[str, Path]:
    """Tiny random masked LMs of every BERT family, each with a tokenizer of its real kind (WordPiece, byte-level
    BPE, Unigram with `▁`), built once per session in seconds: {family: directory}."""
    from helpers.families import make_all

    return make_all(tmp_path_factory.mktemp("families"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data. Missing: CI (the CI environment variable set, as .ci/run does) fails; on a user's
    machine the test is skipped, saying where the data was looked for."""
    if not SHARED_DATA.exists():
        message = f"real data not found at {SHARED_DATA} (tests on real data need it; see README)"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {message}", pytrace=False)
        pytest.skip(message)
    return SHARED_DATA
