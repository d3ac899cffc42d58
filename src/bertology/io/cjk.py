"""Which characters are CJK ideographs: the one definition every module uses.

The ranges are BERT's (`_is_chinese_char` in its tokenizer, which makes each of these characters its own
token): the CJK Unified Ideographs, Extension A-E, and the Compatibility Ideographs with their supplement.
Kana and Hangul are not included (BERT splits neither), nor CJK punctuation. The official CMRC 2018 metric
segments a narrower range on purpose (metrics.py keeps the official script's).
"""

from __future__ import annotations

import re

# The body of a regex character class, for patterns that combine it (e.g. rf"[{CJK_RANGES}]|[^\W{CJK_RANGES}]+").
CJK_RANGES = ("\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
              "\U00020000-\U0002a6df\U0002a700-\U0002b73f\U0002b740-\U0002b81f\U0002b820-\U0002ceaf"
              "\U0002f800-\U0002fa1f")
CJK_CHAR = re.compile(f"[{CJK_RANGES}]")


def is_cjk(ch: str) -> bool:
    """Whether the character `ch` is a CJK ideograph."""
    return CJK_CHAR.fullmatch(ch) is not None


def has_cjk(text: str) -> bool:
    """Whether `text` holds at least one CJK ideograph."""
    return CJK_CHAR.search(text) is not None
