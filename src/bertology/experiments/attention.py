"""Attention maps: what every head of every layer attends to, for one sentence.

The lecture's 果 example asks whether 果 in 吃了蘋果 (fruit) and in 蘋果發表 (the company) looks at different
tokens. `attention_maps` runs the encoder once with `output_attentions=True` and returns the attention
probabilities of every layer and head ([layers, heads, tokens, tokens], rows summing to 1: row i is what token
i attends to), with the tokens as bertology prints them ([CLS] and [SEP] included: much of BERT's attention
goes to them).

PyTorch's fused attention (sdpa, transformers' default) never materialises the probabilities, so it returns
none: the model is switched to the eager implementation for the call and switched back after it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..core.adapter import display_tokens, usable_length
from ..errors import UserError


@dataclass
class AttentionResult:
    model: str
    sentence: str
    tokens: list[str]                 # as printed, special tokens included
    offsets: list[tuple[int, int]]    # each token's characters in the sentence ((0, 0) for special tokens)
    attentions: np.ndarray            # [layers, heads, tokens, tokens]; row i: what token i attends to

    @property
    def num_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.attentions.shape[1])

    def token_positions(self, text: str) -> list[int]:
        """The positions of the tokens covering the first occurrence of `text` in the sentence ([] if absent)."""
        start = self.sentence.find(text) if text else -1
        if start < 0:
            return []
        end = start + len(text)
        return [i for i, (a, b) in enumerate(self.offsets) if b > a and a < end and b > start]


@contextmanager
def eager_attention(model):
    """The model computes attention the eager way (which can return its probabilities) inside the block."""
    before = getattr(model.config, "_attn_implementation", None)
    if before in (None, "eager") or not hasattr(model, "set_attn_implementation"):
        yield model
        return
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(before)


@torch.inference_mode()
def attention_maps(model, tokenizer, sentence: str, name: str | None = None) -> AttentionResult:
    """Every layer's and head's attention probabilities for `sentence` (a base model or one with a head: its
    encoder is run). Sentences longer than the model reads are refused rather than truncated."""
    sentence = str(sentence).strip()
    if not sentence:
        raise UserError("enter a sentence to see its attention", fields=("sentence",))
    limit = usable_length(tokenizer, model.config, 512)
    enc = tokenizer(sentence, return_offsets_mapping=True, return_tensors="pt", verbose=False)
    n = int(enc["input_ids"].shape[1])
    if n > limit:
        raise UserError(f"the sentence is {n} tokens long; the model reads at most {limit}", fields=("sentence",))
    offsets = [tuple(int(v) for v in pair) for pair in enc.pop("offset_mapping")[0].tolist()]
    encoder = getattr(model, "base_model", model)
    with eager_attention(encoder):
        out = encoder(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")},
                      output_attentions=True)
    if not out.attentions or out.attentions[0] is None:
        raise UserError(f"model {name or 'this model'!r} returned no attention probabilities")
    maps = torch.stack([a[0].float() for a in out.attentions]).numpy()     # [layers, heads, n, n]
    ids = enc["input_ids"][0].tolist()
    return AttentionResult(model=str(name or getattr(model.config, "name_or_path", "model")), sentence=sentence,
                           tokens=display_tokens(tokenizer, ids), offsets=offsets, attentions=maps)
