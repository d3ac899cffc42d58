"""The pretraining vocabulary: a BERT WordPiece tokenizer learnt from the corpora (every CJK character its own
token), with languages balanced by exponentially smoothed sampling.

`learn_tokenizer` learns it in memory; `run.train_tokenizer` also saves it atomically into a run folder.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import UserError
from ...io.cjk import CJK_RANGES

TOKENIZER_SCHEMA = "bertology.tokenizer/1"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_APPROX_TOKEN_RE = re.compile(rf"[{CJK_RANGES}]|[^\s{CJK_RANGES}]+")


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


def learn_tokenizer(corpora: dict[str, list[str]], vocab_size: int = 16000, lowercase: bool = True,
                    strip_accents: bool | None = None, alpha: float = 0.7, budget_tokens: int = 20_000_000,
                    seed: int = 0, progress: bool = True, alphabet_size: int | None = None
                    ) -> tuple[Any, TokenizerResult]:
    """Train a BERT WordPiece vocabulary with Hugging Face `tokenizers`, as a `BertTokenizer` that saved,
    `AutoTokenizer.from_pretrained` loads as a fast one (the result's `out_dir` is empty: nothing is saved).

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
    cjk = sum(1 for t in vocab if len(t) == 1 and re.match(rf"[{CJK_RANGES}]", t))
    res = TokenizerResult("", len(vocab), lowercase, strip_accents, alpha,
                          {k: len(v) for k, v in sample.items()},
                          {k: sum(approx_tokens(x) for x in v) for k, v in sample.items()}, cjk,
                          time.perf_counter() - t0)
    return tok, res


