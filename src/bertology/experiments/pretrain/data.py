"""Pretraining data: corpora tokenised and packed into fixed-length sequences, a leak-free held-out slice per
language, the training batches (languages mixed by smoothed sampling, masked from (seed, epoch, batch)), and
the context-free unigram baseline of the held-out loss.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...errors import UserError
from .objective import Masker, mask_generator
from .tokenizer import smoothed_shares


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
        raise UserError(f"`max_length` {seq_len}: too short (at least 8)", fields=('max_length',))
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
    from ...io.splits import normalise_input

    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    body = seq_len - 1
    n_seqs = sum(len(t) + 1 for t in ids) // body
    if n_seqs < 2:
        raise UserError(f"`corpus` {lang}=...: only {n_seqs} sequence(s) of {seq_len} tokens; need more "
                        f"text or a shorter `max_length`", fields=('corpus', 'max_length'))
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
        from ...io.storage import atomic_write_bytes
        atomic_write_bytes(cache, buf.getvalue())
    return data



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
        inputs, labels = self.src.masker(ids, mask_generator(self.src.seed, self.epoch, i))
        n_masked = int((labels != -100).sum())
        sl = slice(self.rank, None, self.world)
        return {"input_ids": inputs[sl], "labels": labels[sl], "attention_mask": torch.ones_like(inputs[sl]),
                "n_masked": torch.tensor(max(1, n_masked))}



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


