"""Tiny random models of every BERT family bertology supports, each with a tokenizer of its real kind.

Built with the `tokenizers` library from a small bilingual corpus (the demo sentences, the cloze items with their
answers written in, and Tatoeba's first English / Chinese sentences when the shared data is there), then saved
with `save_pretrained`, so every command loads them the way it loads a hub checkpoint:

  WordPiece (`##` continuations)      bert, distilbert, electra (the generator), mpnet
  byte-level BPE (`Ġ` word starts)    roberta
  Unigram, SentencePiece-style (`▁`)  xlm-roberta, albert, deberta-v2

The models are random (2 layers, hidden 32): the tests assert properties a wrong result breaks (the mask found,
tokens decoded, items scorable, the target's pieces), never accuracy.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

FAMILIES = ("bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta-v2", "mpnet")
DEMO = Path(__file__).resolve().parents[2] / "src" / "bertology" / "demo"
TATOEBA = Path(__file__).resolve().parents[3] / "shared" / "data" / "tatoeba" / "cmn-eng.txt"
HIDDEN, LAYERS = 32, 2


def corpus(tatoeba_lines: int = 400) -> list[str]:
    """The demo sentences, the cloze sentences with the answer in place of [MASK], Tatoeba's first pairs."""
    lines = []
    for name in ("senses/en_apple.tsv", "senses/zh_guo.tsv"):
        with open(DEMO / name, encoding="utf-8") as f:
            lines += [row[1] for row in list(csv.reader(f, delimiter="\t"))[1:]]
    with open(DEMO / "cloze_en_zh.tsv", encoding="utf-8") as f:
        lines += [row[1].replace("[MASK]", row[2]) for row in list(csv.reader(f, delimiter="\t"))[1:]]
    if TATOEBA.exists():
        with open(TATOEBA, encoding="utf-8-sig") as f:
            for i, row in zip(range(tatoeba_lines), f):
                en, zh = row.split("\t")[:2]
                lines += [en, zh]
    # every Chinese character of the corpus also alone, so the Unigram and BPE vocabularies keep single characters
    chars = sorted({c for l in lines for c in l if "\u4e00" <= c <= "\u9fff"})
    return lines + [" ".join(chars[i:i + 20]) for i in range(0, len(chars), 20)]


def _spaced(lines: list[str]) -> list[str]:
    """Chinese characters set apart for the BPE and Unigram trainers: without spaces they learn whole Chinese
    sentences as one piece (the corpus is tiny and repetitive); real multilingual vocabularies hold mostly single
    characters and short words, with `▁X` / `ĠX` for some and a lone `▁` / `Ġ` before the others."""
    import re

    return [re.sub(r"([\u3400-\u9fff])", r" \1 ", l) for l in lines]


def _wordpiece_vocab(lines: list[str], specials: list[str]) -> dict[str, int]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(lines, trainers.WordPieceTrainer(vocab_size=1500, special_tokens=specials,
                                                             show_progress=False))
    return tok.get_vocab()


def _bpe(lines: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(_spaced(lines), trainers.BpeTrainer(
        vocab_size=2000, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def _unigram(lines: list[str], specials: list[str], unk: str) -> list[tuple[str, float]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(_spaced(lines), trainers.UnigramTrainer(vocab_size=2000, special_tokens=specials, unk_token=unk,
                                                           show_progress=False))
    import json

    return [tuple(p) for p in json.loads(tok.to_str())["model"]["vocab"]]


def make_tokenizer(family: str, lines: list[str]):
    import transformers as tf

    bert_specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    if family in ("bert", "distilbert", "electra"):
        cls = {"bert": tf.BertTokenizer, "distilbert": tf.DistilBertTokenizer, "electra": tf.ElectraTokenizer}[family]
        return cls(vocab=_wordpiece_vocab(lines, bert_specials))
    if family == "mpnet":
        return tf.MPNetTokenizer(vocab=_wordpiece_vocab(lines, ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]))
    if family == "roberta":
        vocab, merges = _bpe(lines)
        return tf.RobertaTokenizer(vocab=vocab, merges=merges)
    if family == "xlm-roberta":
        return tf.XLMRobertaTokenizer(vocab=_unigram(lines, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>"))
    if family == "albert":
        return tf.AlbertTokenizer(vocab=_unigram(lines, ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>"))
    if family == "deberta-v2":
        return tf.DebertaV2Tokenizer(vocab=_unigram(lines, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[UNK]"),
                                     do_lower_case=True)
    raise ValueError(family)


def make_config(family: str, tok):
    from transformers import AutoConfig

    common = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id)
    if family == "distilbert":
        return AutoConfig.for_model("distilbert", dim=HIDDEN, n_layers=LAYERS, n_heads=2, hidden_dim=2 * HIDDEN,
                                    max_position_embeddings=64, **common)
    sizes = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=2 * HIDDEN)
    if family in ("roberta", "xlm-roberta", "mpnet"):
        # positions are numbered from pad_token_id + 1: 64 usable positions need 64 + pad + 1 embeddings
        sizes["max_position_embeddings"] = 64 + tok.pad_token_id + 1
    else:
        sizes["max_position_embeddings"] = 64
    if family == "electra":      # the generator: embeddings narrower than the body, projected up
        sizes["embedding_size"] = 16
    if family == "albert":
        sizes["embedding_size"] = 16
    if family == "deberta-v2":
        sizes.update(relative_attention=True, position_buckets=16, pos_att_type=["c2p", "p2c"])
    return AutoConfig.for_model(family, **sizes, **common)


def make_family_model(family: str, path: Path, lines: list[str] | None = None, seed: int = 0) -> Path:
    """Save a tiny random `family` masked LM and its tokenizer to `path`."""
    from transformers import AutoModelForMaskedLM

    path.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(family, lines if lines is not None else corpus())
    if family == "roberta":
        tok.model_max_length = int(1e30)   # as saved by some conversions: the limit must come from the config
    else:
        tok.model_max_length = 64
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(make_config(family, tok)).eval()
    model.save_pretrained(path)
    return path


def make_all(root: Path) -> dict[str, Path]:
    lines = corpus()
    return {f: make_family_model(f, root / f, lines) for f in FAMILIES}
