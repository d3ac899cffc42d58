"""Which characters are CJK ideographs: the one definition every module uses.

The CJK Unified Ideographs (U+4E00-9FFF), Extension A (U+3400-4DBF) and the Compatibility Ideographs
(U+F900-FAFF): the ranges the dictionaries, corpora and tokenizer statistics have always been read with
(BERT's tokenizer also splits the rare supplementary-plane extensions; counting them would change which
dictionary words are Chinese). Kana, Hangul and CJK punctuation are not included. The official CMRC 2018 metric
segments a narrower range on purpose (metrics.py keeps the official script's).
"""

from __future__ import annotations

import re

# The body of a regex character class, for patterns that combine it (e.g. rf"[{CJK_RANGES}]|[^\W{CJK_RANGES}]+").
CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_CHAR = re.compile(f"[{CJK_RANGES}]")


def is_cjk(ch: str) -> bool:
    """Whether the character `ch` is a CJK ideograph."""
    return CJK_CHAR.fullmatch(ch) is not None


def has_cjk(text: str) -> bool:
    """Whether `text` holds at least one CJK ideograph."""
    return CJK_CHAR.search(text) is not None
