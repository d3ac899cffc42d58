"""What a tokenizer can read: the share of text it maps to its unknown token.

A claim about Chinese cannot be tested on a model that reads 60% of Chinese characters as [UNK]: its verdict is
"not applicable", with this share as the reason, never "not shown".
"""

from __future__ import annotations

from typing import Sequence

UNKNOWN_LIMIT = 0.05     # above this share of [UNK] tokens, a text set is not readable enough to test a claim on


def unknown_token_share(tokenizer, texts: Sequence[str]) -> float:
    """The fraction of the tokens of `texts` (special tokens excluded) that are the tokenizer's unknown token;
    0.0 for a tokenizer with no unknown token (byte-level BPE reads everything)."""
    unk = tokenizer.unk_token_id
    if unk is None or not texts:
        return 0.0
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    total = sum(len(x) for x in ids)
    return sum(x.count(unk) for x in ids) / total if total else 0.0
