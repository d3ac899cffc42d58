"""The embedding engine: contextual vectors of target words at every layer, and sentence mean vectors.

Layer indexing follows `output_hidden_states`: index 0 is the embedding output, index L the last layer.

How a target becomes one vector per occurrence:
1. `find_occurrences` locates the target in each raw sentence by character offsets (case-insensitive; an
   alphanumeric target must stand as a whole word, so "apple" does not match inside "pineapple"; a CJK target
   matches anywhere, since Chinese has no spaces).
2. The sentence is tokenised once with offset mappings; the sub-tokens whose character span overlaps the
   occurrence are the target's tokens. A target that tokenises to [UNK] is an error: its vector would be the
   same for every unknown word.
3. Sentences are batched by length under a budget of padded tokens (`token_budget`) and padded dynamically;
   one forward pass gives all layers; the target's
   sub-tokens are pooled (mean, or the first sub-token) into one vector per occurrence per layer.
A sentence longer than the model's limit is cut into a window centred on each occurrence (never truncating the
target away).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import UserError
from ..io.cjk import is_cjk
from .adapter import covering_pieces, is_blank_piece, usable_length
from .inference import batched_inference
from .models import load_model, load_tokenizer, pick_device
from .precision import cast_in_place, check_precision

POOLINGS = ("mean", "first")
TOKENS_PER_ROW = 16         # the token budget of a batch: batch_size rows of 16 tokens (Embedder.max_tokens)


@dataclass(frozen=True)
class Occurrence:
    sentence: int      # index into the sentence list
    start: int         # character span [start, end) in that sentence
    end: int
    label: str = ""


def target_pattern(target: str) -> re.Pattern:
    """Regex for a target: case-insensitive, whole-word at alphanumeric (non-CJK) edges."""
    if not target or not target.strip():
        raise UserError("the target is empty")
    core = re.escape(target)
    left = r"(?<![^\W\d_])" if (target[0].isalnum() and not is_cjk(target[0])) else ""
    right = r"(?![^\W\d_])" if (target[-1].isalnum() and not is_cjk(target[-1])) else ""
    return re.compile(left + core + right, re.IGNORECASE)


def find_occurrences(sentences: Sequence[str], target: str, labels: Sequence[str] | None = None,
                     source: str = "sentences") -> list[Occurrence]:
    """Every occurrence of `target` in every sentence; a sentence without it is a UserError naming it."""
    pat = target_pattern(target)
    occ: list[Occurrence] = []
    for i, s in enumerate(sentences):
        found = [Occurrence(i, m.start(), m.end(), labels[i] if labels else "") for m in pat.finditer(s)]
        if not found:
            raise UserError(f"{source}: sentence {i + 1} does not contain the target {target!r}: {s[:80]!r}")
        occ += found
    return occ


@dataclass
class _Segment:
    """One model input: token ids plus, for each occurrence it carries, the positions of its sub-tokens."""
    ids: list[int]
    type_ids: list[int]
    targets: list[tuple[int, list[int]]]   # (occurrence index, token positions)


class Embedder:
    """Runs a BERT-family encoder over sentences and returns hidden states of every layer.

    >>> emb = Embedder("minilm", precision="bf16")
    >>> vecs = emb.occurrence_vectors(sentences, find_occurrences(sentences, "apple"))  # [L+1, n, H]
    """

    def __init__(self, model: str | torch.nn.Module = "minilm", tokenizer=None, precision: str = "fp32",
                 batch_size: int = 32, device: str | None = None, trust_remote_code: bool = False,
                 max_length: int | None = None, progress: bool = True, token_budget: bool = True):
        self.precision = check_precision(precision)
        self.device = pick_device(device)
        if isinstance(model, (str,)) or hasattr(model, "__fspath__"):
            self.name = str(model)
            self.tokenizer = tokenizer or load_tokenizer(self.name, trust_remote_code)
            self.model = load_model(self.name, "base", trust_remote_code)
        else:
            if tokenizer is None:
                raise ValueError("pass the tokenizer with a model object")
            self.name = getattr(model.config, "name_or_path", "model")
            self.model, self.tokenizer = model, tokenizer
        # bf16 inference: cast the weights once (faster on CPU than autocast, which re-casts every matmul).
        self.model = cast_in_place(self.model, precision, self.device).eval()
        # RoBERTa-style position offsets and tokenizers saved without a limit included (adapter.usable_length)
        self.max_length = usable_length(self.tokenizer, self.model.config, max_length)
        self.batch_size = batch_size
        # A batch holds batch_size x TOKENS_PER_ROW padded tokens (batch 32: 512), not batch_size inputs: many
        # short inputs per batch, few long ones. Measured on minilm, 1 thread (bench/hotpaths.py): 1.6x faster
        # on IMDB reviews (2 rows of 256 tokens stay in cache, 32 do not), 1.2x on single words, even on
        # Tatoeba sentences; vectors equal to float rounding (tests/test_embed.py). False: batch_size inputs.
        self.max_tokens = batch_size * TOKENS_PER_ROW if token_budget else None
        self.progress = progress
        self.num_layers = self.model.config.num_hidden_layers

    # ----------------------------------------------------------------------------------------- tokenisation
    def _encode(self, sentences: Sequence[str]):
        return self.tokenizer(list(sentences), add_special_tokens=False, return_offsets_mapping=True,
                              return_attention_mask=False, return_token_type_ids=False, verbose=False)

    def _special_affixes(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts before / after a single sentence ([CLS] / [SEP] for BERT),
        read off by tokenising a probe with and without them (works for any fast tokenizer)."""
        if not hasattr(self, "_affixes"):
            probe = "a"
            body = self.tokenizer(probe, add_special_tokens=False)["input_ids"]
            full = self.tokenizer(probe)["input_ids"]
            i = next(i for i in range(len(full) - len(body) + 1) if full[i:i + len(body)] == body)
            self._affixes = (full[:i], full[i + len(body):])
        return self._affixes

    def _wrap(self, body: list[int]) -> tuple[list[int], list[int]]:
        prefix, suffix = self._special_affixes()
        ids = prefix + list(body) + suffix
        return ids, [0] * len(ids)

    def _segments(self, sentences: Sequence[str], occurrences: Sequence[Occurrence], target: str | None,
                  source: str = "sentences") -> list[_Segment]:
        enc = self._encode(sentences)
        by_sentence: dict[int, list[int]] = {}
        for k, o in enumerate(occurrences):
            by_sentence.setdefault(o.sentence, []).append(k)
        prefix, suffix = self._special_affixes()
        n_special = len(prefix) + len(suffix)
        offset_in = len(prefix)                 # position of the first body token after [CLS]
        room = self.max_length - n_special
        unk = self.tokenizer.unk_token_id
        segments: list[_Segment] = []
        for s, ks in by_sentence.items():
            ids, offsets = enc["input_ids"][s], enc["offset_mapping"][s]
            spans = []
            for k in ks:
                o = occurrences[k]
                # a lone `▁` (SentencePiece, before a Chinese character) overlaps the target but is no part of it
                pos = covering_pieces(self.tokenizer, ids, offsets, o.start, o.end)
                if not pos:
                    raise UserError(f"{source}: sentence {s + 1}: characters {o.start}-{o.end} "
                                    f"({sentences[s][o.start:o.end]!r}) map to no token of model {self.name!r}")
                if unk is not None and any(ids[t] == unk for t in pos):
                    pieces = self.tokenizer.convert_ids_to_tokens([ids[t] for t in pos])
                    raise UserError(f"{source}: sentence {s + 1}: model {self.name!r} tokenises "
                                    f"{sentences[s][o.start:o.end]!r} as {pieces} (unknown token): its vocabulary "
                                    f"does not cover the target{'' if target is None else ' ' + repr(target)}")
                spans.append((k, pos))
            if len(ids) <= room:
                full, types = self._wrap(ids)
                segments.append(_Segment(full, types, [(k, [p + offset_in for p in pos]) for k, pos in spans]))
                continue
            for k, pos in spans:  # too long: a window of `room` tokens centred on this occurrence
                centre = (pos[0] + pos[-1]) // 2
                lo = max(0, min(centre - room // 2, len(ids) - room))
                full, types = self._wrap(ids[lo:lo + room])
                segments.append(_Segment(full, types, [(k, [p - lo + offset_in for p in pos])]))
        return segments

    # ----------------------------------------------------------------------------------------- forward
    def _batches(self, segments: list[_Segment], desc: str):
        """(segment indices, hidden states [L+1, B, T, H], attention mask) per batch. No autocast: the weights
        were cast once (precision.cast_in_place)."""
        items = [{"input_ids": s.ids, "token_type_ids": s.type_ids} for s in segments]
        with_types = bool(getattr(self.model.config, "type_vocab_size", 0))

        def forward(batch):
            kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            if with_types:
                kwargs["token_type_ids"] = batch["token_type_ids"]
            return self.model(**kwargs, output_hidden_states=True)

        for group, batch, out in batched_inference(self.model, items, self.batch_size,
                                                   self.tokenizer.pad_token_id or 0, "fp32", self.device, forward,
                                                   progress=self.progress and len(segments) >= 64, desc=desc,
                                                   max_tokens=self.max_tokens):
            yield group, torch.stack(out.hidden_states), batch["attention_mask"]

    def occurrence_vectors(self, sentences: Sequence[str], occurrences: Sequence[Occurrence],
                           layers: Sequence[int] | None = None, pool: str = "mean",
                           target: str | None = None, source: str = "sentences") -> np.ndarray:
        """float32 array [len(layers), len(occurrences), hidden]; layers default to all (0..L)."""
        if pool not in POOLINGS:
            raise UserError(f"`pool` must be one of {', '.join(POOLINGS)}, not {pool!r}", fields=('pool',))
        layers = self.check_layers(layers)
        segments = self._segments(sentences, occurrences, target, source)
        out = np.zeros((len(layers), len(occurrences), self.model.config.hidden_size), dtype=np.float32)
        for group, hs, _ in self._batches(segments, "embed"):
            hs = hs[layers].float()
            for r, i in enumerate(group):
                for k, pos in segments[i].targets:
                    v = hs[:, r, pos].mean(1) if pool == "mean" else hs[:, r, pos[0]]
                    out[:, k] = v.cpu().numpy()
        return out

    def sentence_means(self, sentences: Sequence[str], layers: Sequence[int] | None = None,
                       include_special: bool = False) -> np.ndarray:
        """Mean hidden state over each sentence's tokens (special tokens excluded unless asked), per layer:
        float32 [len(layers), len(sentences), hidden]. Sentences longer than the limit are truncated here."""
        layers = self.check_layers(layers)
        enc = self._encode(sentences)
        prefix, suffix = self._special_affixes()
        room = self.max_length - len(prefix) - len(suffix)
        segments = []
        for ids in enc["input_ids"]:
            full, types = self._wrap(ids[:room])
            start = len(prefix)
            # whitespace-only pieces (a lone `▁` or `Ġ`) carry no word: left out of a word's mean when there is more
            words = [start + p for p, i in enumerate(ids[:room]) if not is_blank_piece(self.tokenizer, i)]
            body = list(range(len(full))) if include_special else words or list(range(start, start + len(ids[:room])))
            segments.append(_Segment(full, types, [(len(segments), body)]))
        out = np.zeros((len(layers), len(sentences), self.model.config.hidden_size), dtype=np.float32)
        for group, hs, _ in self._batches(segments, "sentences"):
            hs = hs[layers].float()
            for r, i in enumerate(group):
                k, pos = segments[i].targets[0]
                out[:, k] = hs[:, r, pos].mean(1).cpu().numpy()
        return out

    def check_layers(self, layers: Sequence[int] | None) -> list[int]:
        if layers is None:
            return list(range(self.num_layers + 1))
        bad = [l for l in layers if not 0 <= l <= self.num_layers]
        if bad:
            raise UserError(f"`layer` {bad[0]} is out of range: model {self.name!r} has layers 0..{self.num_layers}",
                            fields=('layer',))
        return list(layers)
