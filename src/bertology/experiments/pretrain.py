"""Masked-LM pretraining from scratch: WordPiece tokenizer, packed corpora, 15% 80/10/10 masking, and the
fill-in-the-blank probe (`fill_mask`).

The pipeline, top to bottom (nanoGPT-style: one file you can read in order):
    corpora LANG=FILE  --train_tokenizer-->  WordPiece vocabulary (every CJK character its own token)
    lines --tokenize--> one token stream per language --pack--> fixed-length sequences [CLS] s1 [SEP] s2 [SEP] ...
    each epoch: languages mixed with exponentially smoothed sampling (mBERT: p_l ∝ share_l^0.7), shuffled,
    cut into batches, masked deterministically from (seed, epoch, batch)  --engine.train-->  BERT + MLM head
    every `eval_every` steps: held-out loss / masked-token accuracy per language, hooks (e.g. alignment MRR),
    a Hugging Face model directory exported to OUT/model, and a resumable checkpoint.

Why masking is a pure function of (seed, epoch, batch index): a run resumed after SIGKILL regenerates exactly
the masks it would have seen, whatever the global RNG did; and 2 processes with batch B see the same rows and
masks as 1 process with batch 2B (each rank takes a strided slice of the global batch).

Why the MLM head only scores masked positions (as Google's original BERT `gather_indexes` does, and unlike
`BertForMaskedLM.forward`): with a 30K vocabulary and a small encoder, the vocabulary projection of every
position costs more than the encoder itself; only the 15% masked positions carry a loss.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..io.storage import truncate_jsonl

SCHEMA = "bertology.pretrain/1"
FILL_MASK_SCHEMA = "bertology.fill-mask/1"
TOKENIZER_SCHEMA = "bertology.tokenizer/1"

# Google's BERT miniatures (Turc et al. 2019): layers x hidden; heads = hidden / 64, FFN = 4 x hidden.
PRESETS: dict[str, tuple[int, int]] = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512),
                                       "medium": (8, 512), "base": (12, 768)}
# Architectures trained from scratch, by Hugging Face model_type (as run_mlm.py's --model_type): both load with
# AutoModelForMaskedLM. "bert" is post-LN (LayerNorm after each residual add, as in BERT); "roberta-prelayernorm"
# (Xiong et al. 2020's pre-LN: LayerNorm inside each residual branch, one more at the top) is the only pre-LN
# encoder with an MLM head that transformers ships.
MODEL_TYPES = ("bert", "roberta-prelayernorm")
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_APPROX_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")


def approx_tokens(line: str) -> int:
    """Tokens as BERT's pre-tokenizer sees them, roughly: one per CJK character, one per other word.
    Used to balance languages *before* a vocabulary exists (a Chinese line has ~3x fewer characters than an
    English one of the same content, so balancing by lines or characters would be wrong)."""
    return len(_APPROX_TOKEN_RE.findall(line))


def smoothed_shares(sizes: dict[str, float], alpha: float) -> dict[str, float]:
    """Exponentially smoothed sampling probabilities: p_l ∝ (n_l / N)^alpha (alpha=1: proportional,
    alpha=0: uniform). mBERT used 0.7 to up-sample low-resource languages."""
    total = sum(sizes.values())
    w = {k: (v / total) ** alpha if v > 0 else 0.0 for k, v in sizes.items()}
    z = sum(w.values())
    return {k: v / z for k, v in w.items()}


# --------------------------------------------------------------------------------------------- tokenizer
@dataclass
class TokenizerResult:
    out_dir: str
    vocab_size: int
    lowercase: bool
    strip_accents: bool | None
    alpha: float
    training_lines: dict[str, int]
    training_tokens_approx: dict[str, int]
    cjk_chars_in_vocab: int
    seconds: float


def _sample_for_tokenizer(corpora: dict[str, list[str]], alpha: float, budget_tokens: int,
                          seed: int) -> dict[str, list[str]]:
    """Per language, random lines up to its smoothed share of `budget_tokens` (approximate tokens)."""
    rng = np.random.default_rng(seed)
    sizes = {lang: sum(approx_tokens(x) for x in lines) for lang, lines in corpora.items()}
    shares = smoothed_shares(sizes, alpha)
    out = {}
    for lang, lines in corpora.items():
        want, got, picked = shares[lang] * budget_tokens, 0, []
        for i in rng.permutation(len(lines)):
            if got >= want:
                break
            picked.append(lines[i])
            got += approx_tokens(lines[i])
        out[lang] = picked
    return out


def _alphabet(wp, lines: list[str], size: int) -> tuple[list[str], list[str]]:
    """The `size` most frequent characters of the pre-tokenized text (ties broken by code point), and the
    continuation pieces (##c) of those that occur inside a word, sorted.

    The tokenizers trainer is not deterministic across processes (issue 14.6: the same command gave another
    vocabulary each run): it cuts its alphabet by an unstable sort of a HashMap's counts, so characters tied at
    the cut-off differ, and it numbers the ##c pieces in HashMap order, and ties between merges are broken by
    those numbers. Given as the initial alphabet and (first in the vocabulary) as tokens, both are fixed.
    """
    from collections import Counter

    counts: Counter = Counter()
    inner: set[str] = set()
    for start in range(0, len(lines), 4096):       # one call per chunk: one per line would be slow
        text = wp.normalizer.normalize_str("\n".join(lines[start:start + 4096]))
        for word, _ in wp.pre_tokenizer.pre_tokenize_str(text):
            counts.update(word)
            inner.update(word[1:])
    alphabet = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]
    return alphabet, ["##" + c for c in sorted(inner.intersection(alphabet))]


def train_tokenizer(corpora: dict[str, list[str]], out_dir: str | Path, vocab_size: int = 16000,
                    lowercase: bool = True, strip_accents: bool | None = None, alpha: float = 0.7,
                    budget_tokens: int = 20_000_000, seed: int = 0, progress: bool = True,
                    alphabet_size: int | None = None) -> tuple[Any, TokenizerResult]:
    """Train a BERT WordPiece vocabulary with Hugging Face `tokenizers` and save it so that
    `AutoTokenizer.from_pretrained(out_dir)` loads it as a fast `BertTokenizer`.

    BERT pre-tokenisation: text cleaned, every CJK character its own token, punctuation split; optional
    lower-casing and accent stripping (strip_accents=None follows lowercase, as BERT does). Languages are
    sampled with exponentially smoothed shares so a large English corpus does not crowd out Chinese pieces.

    alphabet_size: how many distinct characters (the most frequent) become tokens; every other character is
    [UNK]. Default vocab_size // 3. A small vocabulary for Chinese in both scripts needs more than a quarter
    of it: Simplified and Traditional text together use ~5,000 characters that occur 20 times or more.
    """
    from tokenizers.implementations import BertWordPieceTokenizer
    from transformers import BertTokenizer

    t0 = time.perf_counter()
    if vocab_size < len(SPECIAL_TOKENS) + 100:
        raise UserError(f"`vocab_size` {vocab_size}: too small (at least {len(SPECIAL_TOKENS) + 100})",
                        fields=('vocab_size',))
    if alphabet_size is None:
        alphabet_size = max(100, vocab_size // 3)
    if not 100 <= alphabet_size < vocab_size:
        raise UserError(f"`alphabet_size` {alphabet_size}: must be at least 100 and below the vocabulary size "
                        f"({vocab_size})", fields=('alphabet_size',))
    sample = _sample_for_tokenizer(corpora, alpha, budget_tokens, seed)
    wp = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents,
                                lowercase=lowercase)
    # The alphabet must hold thousands of CJK characters (the library's default limit of 1000 would turn most
    # Chinese into [UNK]); by default a third of the vocabulary, leaving the rest for English word pieces.
    lines = [x for lang in sorted(sample) for x in sample[lang]]
    alphabet, pieces = _alphabet(wp, lines, alphabet_size)
    # the pieces go in as trainer "special tokens" only to be numbered first; the saved BertTokenizer is built
    # from the plain vocabulary below, where they are ordinary tokens
    wp.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS + pieces,
                           limit_alphabet=len(alphabet), initial_alphabet=alphabet, wordpieces_prefix="##",
                           show_progress=progress)
    vocab = wp.get_vocab()
    tok = BertTokenizer(vocab=vocab, do_lower_case=lowercase, strip_accents=strip_accents,
                        tokenize_chinese_chars=True)
    tok.model_max_length = 512
    out_dir = Path(out_dir)
    _save_tokenizer_atomically(tok, out_dir)
    cjk = sum(1 for t in vocab if len(t) == 1 and re.match(rf"[{_CJK}]", t))
    res = TokenizerResult(str(out_dir), len(vocab), lowercase, strip_accents, alpha,
                          {k: len(v) for k, v in sample.items()},
                          {k: sum(approx_tokens(x) for x in v) for k, v in sample.items()}, cjk,
                          time.perf_counter() - t0)
    return tok, res


def _save_tokenizer_atomically(tok, out_dir: Path) -> None:
    tmp = out_dir.parent / f".{out_dir.name}.tok.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tok.save_pretrained(tmp)
    _move_files_into(tmp, out_dir)


def _move_files_into(src: Path, dst: Path) -> None:
    """Move every file of `src` into `dst` with one atomic rename each, then remove `src`. A reader of
    `dst` never sees a half-written file, and `dst` never disappears (unlike swapping whole directories)."""
    dst.mkdir(parents=True, exist_ok=True)
    # config first, weights last: a reader that sees new weights also sees the config they belong to.
    files = sorted(src.iterdir(), key=lambda p: (p.suffix == ".safetensors", p.name))
    for p in files:
        os.replace(p, dst / p.name)
    shutil.rmtree(src, ignore_errors=True)


# --------------------------------------------------------------------------------------------- corpus -> sequences
@dataclass
class PackedData:
    """Fixed-length token sequences per language: train[lang] is (n, seq_len) int32, heldout likewise."""
    train: dict[str, np.ndarray]
    heldout: dict[str, np.ndarray]
    lines: dict[str, int]
    tokens: dict[str, int]
    heldout_dropped: dict[str, int] = field(default_factory=dict)   # held-out lines also in training, left out


def pack_lines(token_lists: Sequence[Sequence[int]], seq_len: int, cls_id: int, sep_id: int) -> np.ndarray:
    """Pack tokenised lines into sequences `[CLS] s1 [SEP] s2 [SEP] ...` of exactly `seq_len` tokens (RoBERTa's
    FULL-SENTENCES; run_mlm's group_texts): no padding at all; a line may continue into the next sequence;
    the incomplete tail is dropped."""
    if seq_len < 8:
        raise UserError(f"`seq_len` {seq_len}: too short (at least 8)", fields=('seq_len',))
    total = sum(len(t) + 1 for t in token_lists)
    stream = np.empty(total, dtype=np.int32)
    pos = 0
    for t in token_lists:
        stream[pos:pos + len(t)] = t
        stream[pos + len(t)] = sep_id
        pos += len(t) + 1
    body = seq_len - 1
    n = len(stream) // body
    seqs = np.empty((n, seq_len), dtype=np.int32)
    seqs[:, 0] = cls_id
    seqs[:, 1:] = stream[:n * body].reshape(n, body)
    return seqs


def _leak_free_pack(lang: str, lines: list[str], ids: list[list[int]], seq_len: int, tokenizer,
                    heldout_fraction: float, max_heldout: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(train, held-out, held-out lines dropped): the held-out slice is the last lines of the corpus, as many
    as fill its share of sequences, without the lines whose text (white space and case folded) also occurs in
    training: a held-out line the model trained on measures memory, not language (a corpus of 8 distinct lines
    once gave held-out loss 0.000). Training keeps every line it has."""
    from ..io.splits import normalise_input

    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    body = seq_len - 1
    n_seqs = sum(len(t) + 1 for t in ids) // body
    if n_seqs < 2:
        raise UserError(f"`corpus` {lang}=...: only {n_seqs} sequence(s) of {seq_len} tokens; need more "
                        f"text or a shorter `seq_len`", fields=('corpus', 'seq_len'))
    want = min(max_heldout, max(1, int(n_seqs * heldout_fraction))) * body
    cut, got = len(ids), 0
    while cut > 1 and got < want:
        cut -= 1
        got += len(ids[cut]) + 1
    seen = {normalise_input(line) for line in lines[:cut]}
    held = [i for i in range(cut, len(ids)) if normalise_input(lines[i]) not in seen]
    unique = list({normalise_input(lines[i]): i for i in reversed(held)}.values())[::-1]   # first of each
    heldout = pack_lines([ids[i] for i in unique], seq_len, cls_id, sep_id)
    if len(heldout) == 0:
        raise UserError(f"`corpus` {lang}=...: no held-out text that training does not also contain ({len(seen)} "
                        f"distinct training lines, {len(ids) - cut} held-out lines, every one repeated): a held-out "
                        f"loss would measure memory; give more varied text", fields=('corpus',))
    return pack_lines(ids[:cut], seq_len, cls_id, sep_id), heldout, len(ids) - cut - len(unique)


def prepare_data(corpora: dict[str, list[str]], tokenizer, seq_len: int, heldout_fraction: float = 0.01,
                 max_heldout: int = 200, cache_dir: Path | None = None, progress: bool = True) -> PackedData:
    """Tokenise every language (Rust tokenizer, batched), pack, and split off the last sequences of each
    language as the held-out slice. Cached in cache_dir/data-<hash>.npz so a resumed run skips this."""
    key = hashlib.sha256(json.dumps(["leak-free-heldout", seq_len, heldout_fraction, max_heldout,
                                     hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest(),
                                     sorted((k, len(v), v[:3], v[-3:]) for k, v in corpora.items())],
                                    ensure_ascii=False).encode()).hexdigest()[:16]
    cache = cache_dir / f"data-{key}.npz" if cache_dir else None
    if cache and cache.exists():
        z = np.load(cache, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        return PackedData({l: z[f"train_{l}"] for l in meta["langs"]}, {l: z[f"heldout_{l}"] for l in meta["langs"]},
                          meta["lines"], meta["tokens"], meta["heldout_dropped"])
    from tqdm.auto import tqdm

    backend = tokenizer.backend_tokenizer
    train, heldout, n_lines, n_tokens, dropped_lines = {}, {}, {}, {}, {}
    for lang, lines in corpora.items():
        ids: list[list[int]] = []
        chunk = 10_000
        for i in tqdm(range(0, len(lines), chunk), desc=f"tokenize {lang}", unit="chunk", leave=False,
                      disable=not progress):
            ids += [e.ids for e in backend.encode_batch(lines[i:i + chunk], add_special_tokens=False)]
        train[lang], heldout[lang], dropped = _leak_free_pack(lang, lines, ids, seq_len, tokenizer, heldout_fraction,
                                                              max_heldout)
        n_lines[lang], n_tokens[lang] = len(lines), int(sum(len(x) for x in ids))
        dropped_lines[lang] = dropped
    data = PackedData(train, heldout, n_lines, n_tokens, dropped_lines)
    if cache:
        buf = io.BytesIO()
        np.savez(buf, meta=json.dumps({"langs": list(train), "lines": n_lines, "tokens": n_tokens,
                                       "heldout_dropped": dropped_lines}),
                 **{f"train_{l}": v for l, v in train.items()}, **{f"heldout_{l}": v for l, v in heldout.items()})
        from ..io.storage import atomic_write_bytes
        atomic_write_bytes(cache, buf.getvalue())
    return data


# --------------------------------------------------------------------------------------------- masking
@dataclass
class Masker:
    """BERT's masking: `prob` of the non-special tokens are predicted; of those 80% become [MASK], 10% a
    random token, 10% stay. Whole-word masking selects words (a token plus its `##` continuations) instead."""
    mask_id: int
    vocab_size: int
    special_ids: tuple[int, ...]
    continuation: torch.Tensor | None = None   # bool[vocab]: token starts with "##" (for whole-word masking)
    prob: float = 0.15
    whole_word: bool = False

    def __call__(self, ids: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        ids = ids.long()
        special = torch.isin(ids, torch.tensor(self.special_ids))
        r = torch.rand(ids.shape, generator=gen)
        if self.whole_word and self.continuation is not None:
            # every token takes the draw of the word start at or before it
            start = ~self.continuation[ids] | special
            pos = torch.arange(ids.shape[1]).expand_as(ids)
            owner = torch.cummax(torch.where(start, pos, torch.zeros_like(pos)), dim=1).values
            r = torch.gather(r, 1, owner)
        selected = (r < self.prob) & ~special
        labels = torch.where(selected, ids, torch.full_like(ids, -100))
        action = torch.rand(ids.shape, generator=gen)
        random_tokens = torch.randint(len(SPECIAL_TOKENS), self.vocab_size, ids.shape, generator=gen)
        inputs = torch.where(selected & (action < 0.8), torch.full_like(ids, self.mask_id), ids)
        inputs = torch.where(selected & (action >= 0.8) & (action < 0.9), random_tokens, inputs)
        return inputs, labels


def make_masker(tokenizer, prob: float = 0.15, whole_word: bool = False) -> Masker:
    vocab = tokenizer.get_vocab()
    cont = torch.zeros(len(tokenizer), dtype=torch.bool)
    for t, i in vocab.items():
        if t.startswith("##") and i < len(cont):
            cont[i] = True
    return Masker(tokenizer.mask_token_id, len(tokenizer), tuple(tokenizer.all_special_ids), cont, prob, whole_word)


def _gen(*keys: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int.from_bytes(hashlib.sha256(repr(keys).encode()).digest()[:8], "little") & (2**63 - 1))
    return g


# --------------------------------------------------------------------------------------------- batches
@dataclass
class PackedMLMBatches:
    """engine `Batches` over packed sequences: each epoch mixes languages with smoothed sampling (up- or
    down-sampling each language to its share of the epoch), shuffles, cuts global batches of
    batch_size x world rows, masks each global batch from (seed, epoch, index), and gives each rank its
    strided slice. `n_masked` (the global count) lets the loss be normalised identically whatever the world."""
    sequences: dict[str, np.ndarray]
    batch_size: int
    masker: Masker
    alpha: float = 0.7
    seed: int = 0

    def shares(self) -> dict[str, float]:
        return smoothed_shares({l: float(len(s)) for l, s in self.sequences.items()}, self.alpha)

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """(lang index, row) pairs of one epoch, in training order."""
        rng = np.random.default_rng([self.seed, epoch, 7])
        total = sum(len(s) for s in self.sequences.values())
        parts = []
        for li, (lang, seqs) in enumerate(self.sequences.items()):
            want = int(round(self.shares()[lang] * total))
            reps = math.ceil(want / len(seqs))
            rows = np.concatenate([rng.permutation(len(seqs)) for _ in range(reps)])[:want]
            parts.append(np.stack([np.full(want, li), rows], axis=1))
        pairs = np.concatenate(parts)
        return pairs[rng.permutation(len(pairs))]

    def __call__(self, epoch: int, rank: int = 0, world: int = 1):
        return _MaskedBatchList(self, self.epoch_rows(epoch), epoch, rank, world)


class _MaskedBatchList(Sequence):
    def __init__(self, src: PackedMLMBatches, pairs: np.ndarray, epoch: int, rank: int, world: int):
        self.src, self.pairs, self.epoch, self.rank, self.world = src, pairs, epoch, rank, world
        self.global_batch = src.batch_size * world
        self.langs = list(src.sequences.values())

    def __len__(self):
        return len(self.pairs) // self.global_batch

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(i)
        sel = self.pairs[i * self.global_batch:(i + 1) * self.global_batch]
        ids = torch.from_numpy(np.stack([self.langs[l][r] for l, r in sel]))
        inputs, labels = self.src.masker(ids, _gen(self.src.seed, self.epoch, i))
        n_masked = int((labels != -100).sum())
        sl = slice(self.rank, None, self.world)
        return {"input_ids": inputs[sl], "labels": labels[sl], "attention_mask": torch.ones_like(inputs[sl]),
                "n_masked": torch.tensor(max(1, n_masked))}


# --------------------------------------------------------------------------------------------- model
def model_config(preset: str | None, config_file: str | None, vocab_size: int, seq_len: int, dropout: float,
                 model_type: str = "bert", pad_token_id: int = 0):
    """The config of a model trained from scratch: a `--size` preset (or a config.json) of `model_type`.

    RoBERTa-style models number positions from pad_token_id + 1 (transformers' create_position_ids_from_input_ids),
    so they get pad_token_id + 1 more position embeddings than BERT for the same sequence length."""
    from transformers import AutoConfig

    check_model_type(model_type)
    if config_file:
        try:
            values = json.loads(Path(config_file).read_text(encoding="utf-8"))
            cfg = AutoConfig.for_model(values.pop("model_type", "bert"), **values)
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{config_file}: not a readable model config.json ({e})") from None
        if cfg.model_type not in MODEL_TYPES:
            raise UserError(f"{config_file}: model_type {cfg.model_type!r} is not one of {', '.join(MODEL_TYPES)}")
        cfg.vocab_size = vocab_size
    else:
        if preset not in PRESETS:
            raise UserError(f"`size` {preset!r}: choose one of {', '.join(PRESETS)}", fields=('size',))
        layers, hidden = PRESETS[preset]
        cfg = AutoConfig.for_model(model_type, vocab_size=vocab_size, hidden_size=hidden,
                                   num_hidden_layers=layers, num_attention_heads=hidden // 64,
                                   intermediate_size=4 * hidden, type_vocab_size=2, pad_token_id=pad_token_id,
                                   max_position_embeddings=max(512, seq_len)
                                   + _position_offset(model_type, pad_token_id))
    position_offset = _position_offset(cfg.model_type, cfg.pad_token_id)
    if cfg.max_position_embeddings - position_offset < seq_len:
        raise UserError(f"`seq_len` {seq_len} exceeds the config's max_position_embeddings "
                        f"({cfg.max_position_embeddings}{f' - {position_offset}' if position_offset else ''})",
                        fields=('seq_len',))
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
    cfg.architectures = ["BertForMaskedLM" if cfg.model_type == "bert" else "RobertaPreLayerNormForMaskedLM"]
    return cfg


def _position_offset(model_type: str, pad_token_id: int) -> int:
    """Position ids start here: 0 for BERT, pad_token_id + 1 for the RoBERTa family."""
    return 0 if model_type == "bert" else pad_token_id + 1


def check_model_type(model_type: str) -> None:
    if model_type not in MODEL_TYPES:
        raise UserError(f"`model_type` {model_type!r}: choose one of {', '.join(MODEL_TYPES)}",
                        fields=('model_type',))


def mlm_head(mlm):
    """The masked-LM head of a `*ForMaskedLM` model (BERT: `cls`; RoBERTa family: `lm_head`)."""
    return mlm.cls if hasattr(mlm, "cls") else mlm.lm_head


class MaskedLMObjective(torch.nn.Module):
    """Wraps a `*ForMaskedLM` (BERT or pre-LN) so that the loss scores only masked positions (see the module docstring).

    The loss is sum(cross-entropy over this rank's masked tokens) / (masked tokens in the *global* batch)
    x world size: after DDP averages gradients over ranks this is exactly the global mean, so N processes
    with batch B compute the same update as one process with batch N x B.

    compile=True: training steps run the encoder and the MLM head + loss through `torch.compile` (inductor),
    which fuses the casts, LayerNorms, GELUs, attention softmax and the log-softmax over the vocabulary that
    dominate a small model's step on a CPU. Two graphs, because the number of masked positions changes every
    batch: the encoder (static shape) and head + loss (dynamic in the masked count). The compiled callables
    live outside the module tree, so `state_dict()` keys stay those of the plain model (no `_orig_mod.`
    prefix: checkpoints and exports are interchangeable with eager runs). If compilation fails (no C++
    compiler, an unsupported op) the first step says why and training goes on in eager mode. Evaluation
    (no grad) always runs eagerly.
    """

    def __init__(self, mlm, compile: bool = False):
        super().__init__()
        self.mlm = mlm
        object.__setattr__(self, "_compiled", None)     # not a submodule: keeps state_dict keys unchanged
        object.__setattr__(self, "_compiled_ok", False)
        object.__setattr__(self, "compile_error", None)
        if compile:
            self.compile_for_training()

    def compile_for_training(self) -> bool:
        """Compile the training path (lazily: the work happens at the first training step)."""
        try:
            enc = torch.compile(self.mlm.base_model, dynamic=False)
            head = torch.compile(self._head_loss_sum, dynamic=True)
        except Exception as e:  # torch.compile itself unavailable (e.g. an unsupported Python)
            return self._compile_failed(e)
        object.__setattr__(self, "_compiled", (enc, head))
        return True

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def _compile_failed(self, e: Exception) -> bool:
        import warnings

        object.__setattr__(self, "_compiled", None)
        object.__setattr__(self, "compile_error", f"{type(e).__name__}: {e}".splitlines()[0][:500])
        warnings.warn(f"torch.compile failed, training in eager mode: {self.compile_error}", RuntimeWarning)
        return False

    def _head_loss_sum(self, hidden_sel, target):
        return F.cross_entropy(mlm_head(self.mlm)(hidden_sel).float(), target, reduction="sum")

    def _compiled_loss_sum(self, input_ids, sel, target):
        enc, head = self._compiled
        hidden = enc(input_ids=input_ids).last_hidden_state
        return head(hidden[sel], target)

    def forward(self, input_ids, labels, n_masked=None, attention_mask=None):
        # packed sequences have no padding: no attention mask (no masking work, SDPA's fastest path on GPUs)
        sel = labels != -100
        target = labels[sel]
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        denom = n_masked.float() if n_masked is not None else torch.tensor(float(max(1, target.numel())))
        if self._compiled is not None and self.training and torch.is_grad_enabled():
            if self._compiled_ok:
                return self._compiled_loss_sum(input_ids, sel, target) * world / denom, None, target
            try:  # the first call compiles; a failure there falls back to eager for good
                if not torch.distributed.is_initialized():
                    # The backward graph compiles at the first backward, in the engine, out of this try: run
                    # one throwaway forward + backward here (gradients discarded; random state restored, so
                    # dropout masks and resumed runs are unchanged) so that a failure there falls back too.
                    # Under DDP the reducer owns the backward: not done.
                    with torch.random.fork_rng(devices=[input_ids.device] if input_ids.is_cuda else []):
                        probe = self._compiled_loss_sum(input_ids, sel, target)
                        torch.autograd.grad(probe, [p for p in self.parameters() if p.requires_grad][:1],
                                            allow_unused=True)
                loss_sum = self._compiled_loss_sum(input_ids, sel, target)
                object.__setattr__(self, "_compiled_ok", True)
                return loss_sum * world / denom, None, target
            except Exception as e:
                self._compile_failed(e)
        hidden = self.mlm.base_model(input_ids=input_ids).last_hidden_state
        logits = mlm_head(self.mlm)(hidden[sel]).float()
        loss_sum = F.cross_entropy(logits, target, reduction="sum")
        return loss_sum * world / denom, logits, target


def _loss_fn(model, batch):
    return model(**batch)[0]


def make_mlm(config, device: torch.device | str = "cpu"):
    """The `*ForMaskedLM` of `config` (BERT or pre-LN) for training. On CPUs attention runs as plain matmul +
    softmax ("eager"): PyTorch's CPU flash-attention kernel has a slow backward for BERT's small heads (64 dims,
    128 tokens), and with torch.compile inductor fuses the softmax itself. GPUs keep SDPA. The choice is a
    runtime one, not written to config.json."""
    from transformers import AutoModelForMaskedLM

    if torch.device(device).type == "cpu":
        config._attn_implementation = "eager"
    return AutoModelForMaskedLM.from_config(config)


@torch.inference_mode()
def evaluate_mlm(objective: MaskedLMObjective, heldout: dict[str, np.ndarray], masker: Masker,
                 batch_size: int = 32, seed: int = 0) -> dict[str, float]:
    """Held-out masked-LM loss (nats per masked token), its perplexity, and masked-token accuracy (top-1),
    per language and pooled. Masks are fixed by `seed`, so every evaluation scores the same blanks."""
    device = next(objective.parameters()).device
    out: dict[str, float] = {}
    tot_loss = tot_correct = tot_n = 0.0
    for li, (lang, seqs) in enumerate(heldout.items()):
        loss_sum = correct = n = 0.0
        for b in range(0, len(seqs), batch_size):
            ids = torch.from_numpy(seqs[b:b + batch_size])
            inputs, labels = masker(ids, _gen(seed, 99991, li, b))
            if (labels != -100).sum() == 0:
                continue
            _, logits, target = objective(inputs.to(device), labels.to(device))
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += float((logits.argmax(-1) == target).sum())
            n += target.numel()
        # No masked token held out: "not measured" (None -> null), never a loss of 0.000 and accuracy 0.000
        out[f"eval_loss_{lang}"] = loss_sum / n if n else None
        out[f"eval_acc_{lang}"] = correct / n if n else None
        tot_loss, tot_correct, tot_n = tot_loss + loss_sum, tot_correct + correct, tot_n + n
    out["eval_loss"] = tot_loss / tot_n if tot_n else None
    out["eval_ppl"] = math.exp(min(out["eval_loss"], 50)) if tot_n else None
    out["eval_acc"] = tot_correct / tot_n if tot_n else None
    return out


def unigram_baseline(data: PackedData, special_ids: Sequence[int]) -> dict[str, float]:
    """What a model that ignores context scores on the held-out tokens: cross-entropy of the training
    unigram distribution (add-one smoothed) and the accuracy of always guessing the most frequent token, per
    language. A masked-LM loss below this means the model uses the context around the blank."""
    out = {}
    for lang, train in data.train.items():
        vocab = int(max(train.max(), data.heldout[lang].max())) + 1
        counts = np.bincount(train.ravel(), minlength=vocab).astype(np.float64)
        counts[list(special_ids)] = 0
        probs = (counts + 1) / (counts + 1).sum()
        held = data.heldout[lang].ravel()
        held = held[~np.isin(held, special_ids)]
        out[f"unigram_loss_{lang}"] = float(-np.log(probs[held]).mean())
        out[f"unigram_acc_{lang}"] = float((held == counts.argmax()).mean())
    return out


def export_model(mlm, tokenizer, out_dir: Path) -> Path:
    """Write a Hugging Face model directory (config, model.safetensors, tokenizer) that
    `AutoModelForMaskedLM.from_pretrained` loads, each file replaced atomically (readers may load it while
    training goes on)."""
    tmp = out_dir.parent / f".{out_dir.name}.export.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    mlm.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    _move_files_into(tmp, out_dir)
    return out_dir


# --------------------------------------------------------------------------------------------- pretrain()
@dataclass
class PretrainConfig:
    corpora: list[str]                        # LANG=SOURCE[#COL][@MAX] specs (see data.read_corpus)
    out_dir: str
    tokenizer: str | None = None              # a tokenizer / model directory; None: train one (vocab_size)
    init_from: str | None = None              # warm start from this BERT (see bertology.warmstart)
    vocab_size: int = 16000                   # the zh-en-mini recipe (docs/pretrain.md); was 30000
    lowercase: bool = True
    size: str | None = "mini"                 # None only with init_from: the source's architecture
    model_type: str = "bert"                  # or "roberta-prelayernorm" (pre-LN); see MODEL_TYPES
    config_file: str | None = None
    max_sentences_per_lang: int | None = None
    seq_len: int = 128
    batch_size: int = 64
    grad_accum: int = 1
    max_steps: int = 1000
    lr: float = 1e-3                          # was 5e-4 / 0.06: that schedule stalled on the plateau
    warmup: float = 0.03
    weight_decay: float = 0.01
    clip: float = 1.0
    mask_prob: float = 0.15
    whole_word: bool = False
    alpha: float = 0.7                        # language sampling smoothing (mBERT: 0.7)
    dropout: float = 0.0                      # Cramming (Geiping & Goldstein 2022): none in one-epoch pretraining
    precision: str = "fp32"
    compile: bool = False                     # torch.compile the training step (see MaskedLMObjective)
    seed: int = 0
    eval_every: int = 500                     # steps between evaluation + export + checkpoint
    heldout_fraction: float = 0.01
    max_heldout: int = 200                    # held-out sequences per language, at most
    resume: bool = False
    data_dir: str | None = None
    progress: bool = True


@dataclass
class PretrainResult:
    config: dict
    model_dir: str
    parameters: int
    parameters_non_embedding: int
    languages: dict[str, dict]               # lines, tokens, train/heldout sequences, sampling share
    steps: int
    tokens_seen: int
    tokens_per_s: float
    wall_time: float
    final: dict[str, float]
    unigram_baseline: dict[str, float]        # context-free reference for the held-out loss / accuracy
    history: list[dict] = field(default_factory=list)
    train_log: list[dict] = field(default_factory=list)
    warm_start: dict | None = None            # with init_from: which weights came from where
    compiled: bool = False                    # the training step really ran compiled (False: eager)
    compile_error: str | None = None          # why --compile fell back to eager (also warned at the time)


def load_corpora(cfg: PretrainConfig) -> dict[str, list[str]]:
    from ..io.corpora import read_corpora

    corpora = read_corpora(cfg.corpora, cfg.data_dir)
    if cfg.max_sentences_per_lang:
        # a seeded random subset (order kept), so the data-scale knob does not just take the first source
        rng = np.random.default_rng(cfg.seed)
        for lang, lines in corpora.items():
            if len(lines) > cfg.max_sentences_per_lang:
                keep = np.sort(rng.choice(len(lines), cfg.max_sentences_per_lang, replace=False))
                corpora[lang] = [lines[i] for i in keep]
    return corpora


def _check_config(cfg: PretrainConfig):
    """Fail on bad options before minutes of reading and tokenising. Returns the --init-from source
    (config, tokenizer), validated with the rest, or None."""
    from ..core.engine import check_schedule
    from ..core.precision import check_precision

    check_precision(cfg.precision)
    source = _warm_start_source(cfg)
    if source is None and cfg.config_file is None and cfg.size not in PRESETS:
        raise UserError(f"`size` {cfg.size!r}: choose one of {', '.join(PRESETS)}", fields=('size',))
    check_model_type(cfg.model_type)
    if cfg.model_type != "bert" and (source is not None or cfg.config_file):
        raise UserError(f"`model_type` {cfg.model_type!r} is for a model built from --size: --init-from and "
                        f"--config bring their own architecture", fields=('model_type',))
    if cfg.config_file:     # read now, not after minutes of tokenising (the vocabulary size is set later)
        model_config(None, cfg.config_file, len(SPECIAL_TOKENS), cfg.seq_len, cfg.dropout)
    for name, value, low in (("seq_len", cfg.seq_len, 8), ("batch_size", cfg.batch_size, 1),
                             ("max_steps", cfg.max_steps, 1), ("eval_every", cfg.eval_every, 1),
                             ("grad_accum", cfg.grad_accum, 1)):
        if value < low:
            raise UserError(f"`{name}` {value}: must be at least {low}", fields=(name,))
    check_schedule(cfg.lr, cfg.warmup)
    if not 0 < cfg.mask_prob < 1 or not 0 <= cfg.alpha <= 1 or not 0 <= cfg.dropout < 1:
        raise UserError("`alpha` must be in [0, 1], `dropout` in [0, 1), the mask rate in (0, 1)",
                        fields=('alpha', 'dropout'))
    return source


def _run_tokenizer(cfg: PretrainConfig, corpora: dict[str, list[str]], out: Path, is_main: bool, world: int,
                   source=None):
    """The run's tokenizer: given, reused from an interrupted run, or trained now (rank 0 trains, the others
    wait); with a warm-start `source`, extended to the source's vocabulary."""
    from transformers import AutoTokenizer

    from ..core.models import load_tokenizer

    tok_dir = out / "tokenizer"
    if cfg.tokenizer:
        tokenizer = load_tokenizer(cfg.tokenizer)
    else:
        if is_main and not (tok_dir / "tokenizer_config.json").exists():
            train_tokenizer(corpora, tok_dir, cfg.vocab_size, cfg.lowercase, seed=cfg.seed, progress=cfg.progress)
        if world > 1:
            torch.distributed.barrier()
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    if source is not None:
        from .warmstart import extend_vocabulary

        tokenizer, _ = extend_vocabulary(source[1], tokenizer)
    if tokenizer.mask_token_id is None or tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise UserError(f"tokenizer {cfg.tokenizer}: needs [CLS], [SEP] and [MASK] tokens")
    return tokenizer


def _pretrain_result(cfg: PretrainConfig, out: Path, mlm, data: PackedData, shares: dict[str, float], result,
                     tokenizer, warm=None, objective=None) -> PretrainResult:
    n_params = sum(p.numel() for p in mlm.parameters())
    n_embed = sum(p.numel() for n, p in mlm.named_parameters() if "embeddings" in n)
    return PretrainResult(
        config=asdict(cfg), model_dir=str(out / "model"), parameters=n_params,
        parameters_non_embedding=n_params - n_embed,
        languages={l: {"lines": data.lines[l], "tokens": data.tokens[l], "train_sequences": len(data.train[l]),
                       "heldout_sequences": len(data.heldout[l]),
                       "heldout_lines_dropped_as_in_train": data.heldout_dropped.get(l, 0), "sampling_share": shares[l]} for l in data.train},
        steps=result.steps, tokens_seen=result.tokens, tokens_per_s=result.tokens / max(result.wall_time, 1e-9),
        wall_time=result.wall_time, final=result.history[-1] if result.history else {},
        unigram_baseline=unigram_baseline(data, tokenizer.all_special_ids),
        history=result.history, train_log=result.train_log, warm_start=asdict(warm) if warm else None,
        compiled=bool(objective is not None and objective.compiled),
        compile_error=objective.compile_error if objective is not None else None)


def pretrain(cfg: PretrainConfig, eval_hooks: Iterable[Callable[[Any, int, dict], dict | None]] = ()
             ) -> PretrainResult:
    """Pretrain a BERT with masked-LM from scratch; see the module docstring. Runs unchanged under torchrun.

    eval_hooks: called as hook(model, step, metrics) at each evaluation with the Hugging Face
    `*ForMaskedLM`; a returned dict is merged into the logged metrics (e.g. alignment MRR).
    """
    from ..core import engine
    from ..core.models import pick_device

    source = _check_config(cfg)
    out = Path(cfg.out_dir)
    rank, world = engine.init_distributed(pick_device())
    is_main = rank == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        # max_steps and eval_every may change on resume (train longer); nothing that shapes the model may
        engine.check_resume_settings(out, {k: v for k, v in asdict(cfg).items()
                                           if k not in ("max_steps", "eval_every", "resume", "progress",
                                                        "out_dir", "data_dir", "compile")}, cfg.resume)
    corpora = load_corpora(cfg)

    tokenizer = _run_tokenizer(cfg, corpora, out, is_main, world, source)

    data = prepare_data(corpora, tokenizer, cfg.seq_len, cfg.heldout_fraction, cfg.max_heldout,
                        cache_dir=out if is_main else None, progress=cfg.progress and is_main)
    del corpora
    engine.set_seed(cfg.seed)   # the same initial weights on every rank and on resume
    warm = None
    if source is None:
        mlm = make_mlm(model_config(cfg.size, cfg.config_file, len(tokenizer), cfg.seq_len, cfg.dropout,
                                    cfg.model_type, tokenizer.pad_token_id), pick_device())
    else:
        from .warmstart import target_config, warm_start

        mlm = make_mlm(target_config(source[0], len(tokenizer), cfg.seq_len, cfg.dropout), pick_device())
        warm = warm_start(mlm, cfg.init_from, source[1], tokenizer, seed=cfg.seed)
    objective = MaskedLMObjective(mlm, compile=cfg.compile)
    masker = make_masker(tokenizer, cfg.mask_prob, cfg.whole_word)
    batches = PackedMLMBatches(data.train, cfg.batch_size, masker, cfg.alpha, cfg.seed)
    if len(batches(0, rank, world)) == 0:
        raise UserError(f"`batch_size` {cfg.batch_size} x {world} process(es) exceeds the "
                        f"{sum(len(s) for s in data.train.values())} training sequences", fields=('batch_size',))

    def export_hook(model, step, metrics):
        export_model(mlm, tokenizer, out / "model")
        with open(out / "eval.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")

    hooks = [lambda m, s, met, h=h: h(mlm, s, met) for h in eval_hooks] + [export_hook]
    if cfg.resume and is_main and (ckpt := engine.find_checkpoint(out)):
        truncate_jsonl(out / "eval.jsonl", engine.read_checkpoint_state(ckpt)["step"])
    tc = engine.TrainConfig(out_dir=out, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup=cfg.warmup,
                            max_steps=cfg.max_steps, grad_accum=cfg.grad_accum, clip=cfg.clip,
                            precision=cfg.precision, seed=cfg.seed, eval_every=cfg.eval_every,
                            checkpoint_every=None, metric="eval_loss", restore_best=False, resume=cfg.resume,
                            progress=cfg.progress, log_every=10, fused_optimizer=True)
    result = engine.train(objective, batches, tc, evaluate=lambda m: evaluate_mlm(m, data.heldout, masker,
                                                                                   seed=cfg.seed),
                          on_evaluate=hooks, loss_fn=_loss_fn)

    res = _pretrain_result(cfg, out, mlm, data, batches.shares(), result, tokenizer, warm, objective)
    if is_main:
        from ..io.storage import save_results

        save_results(out, SCHEMA, asdict(res))
    # Clean multi-process shutdown: drop the model/optimizer references, then barrier + destroy.
    del objective, batches, result
    gc.collect()
    engine.shutdown_distributed()
    return res


def _warm_start_source(cfg: PretrainConfig):
    """(config, tokenizer) of the `init_from` model, validated before any data is read; None without it."""
    if not cfg.init_from:
        return None
    from .warmstart import check_size, source_config, source_tokenizer

    if cfg.config_file:
        raise UserError("`init_from` and `config` both set the architecture: give one",
                        fields=("init_from", "config"))
    src_cfg = source_config(cfg.init_from)
    check_size(cfg.init_from, src_cfg, cfg.size, PRESETS)
    return src_cfg, source_tokenizer(cfg.init_from)


# --------------------------------------------------------------------------------------------- fill-mask
@dataclass
class FillMaskResult:
    model: str
    top_k: int
    items: list[dict]     # {text, masks: [{position, candidates: [{token, prob}]}]}


def fill_mask(model: str, texts: Sequence[str], top_k: int = 5, precision: str = "fp32",
              trust_remote_code: bool = False, convert: str | None = None, mlm=None,
              tokenizer=None, command: str = "fill-mask") -> FillMaskResult:
    """The lecture's fill-in-the-blank: for every [MASK] in each text, the top-k tokens and probabilities.

    convert: an OpenCC conversion applied to the texts first (e.g. "t2s": the lecture's Traditional example
    for a model whose vocabulary was learnt from Simplified text). mlm, tokenizer: the model already loaded
    (bertology serve keeps it in memory); by default both are loaded from `model`. command: named when the
    model cannot fill in blanks (cloze calls this too)."""
    from ..checks import check_text
    from ..core.models import load_model, load_tokenizer

    for text in texts:
        check_text("texts", text)
    if convert:
        import opencc

        try:
            cc = opencc.OpenCC(convert)
        except Exception:  # opencc raises a bare RuntimeError / ValueError for unknown configurations
            raise UserError(f"`convert` {convert!r}: not an OpenCC conversion (e.g. t2s, s2t, tw2s)",
                            fields=('convert',)) from None
        texts = [cc.convert(t) for t in texts]

    tok = tokenizer or load_tokenizer(model, trust_remote_code)
    if tok.mask_token is None:
        raise UserError(f"model {model!r}: its tokenizer has no mask token")
    mlm = mlm if mlm is not None else load_model(model, head="mlm", trust_remote_code=trust_remote_code,
                                                 command=command)
    if top_k > len(tok):    # torch.topk would fail with a RuntimeError after the first text
        raise UserError(f"`top_k` {top_k}: more than the model's vocabulary ({len(tok)} tokens)", ("top_k",))
    return FillMaskResult(model=str(model), top_k=top_k,
                          items=[fill_mask_text(mlm, tok, text, top_k, precision) for text in texts])


def fill_mask_text(mlm, tok, text: str, top_k: int, precision: str) -> dict:
    """One text's masks: {text, masks: [{position, candidates: [{token, id, prob}]}]}. `[MASK]` stands for the
    model's own mask token (`<mask>` for RoBERTa); tokens are printed as text (adapter.display_token)."""
    from ..core.adapter import count_masks, display_token, mask_text, usable_length
    from ..core.precision import autocast

    if not count_masks(text, tok):
        raise UserError(f"text {text!r}: contains no [MASK]" + (f" (nor {tok.mask_token})" if tok.mask_token != "[MASK]"
                                                                  else ""))
    masked = mask_text(text, tok)
    # the model's positions bound the length too (less RoBERTa's offset): a tokenizer saved without
    # model_max_length allows any
    enc = tok(masked, return_tensors="pt", truncation=True, max_length=usable_length(tok, mlm.config))
    with torch.inference_mode(), autocast(precision):
        logits = mlm(**enc).logits[0].float()
    positions = (enc["input_ids"][0] == tok.mask_token_id).nonzero().flatten().tolist()
    if len(positions) < masked.count(tok.mask_token):     # truncation cut a mask off: no silent gap
        raise UserError(f"text {text[:40]!r}...: a [MASK] lies beyond the model's "
                        f"{enc['input_ids'].shape[1]} tokens (shorten the text)")
    masks = []
    for p in positions:
        top = logits[p].softmax(-1).topk(top_k)
        masks.append({"position": p, "candidates": [
            {"token": display_token(tok, int(i)), "id": int(i), "prob": float(v)}
            for v, i in zip(top.values, top.indices)]})
    return {"text": text, "masks": masks}
