"""Cloze accuracy: fill-in-the-blank items with one known single-token answer, scored top-1 / top-5 per language.

The measure behind the lecture's "今天買了蘋[MASK]來吃 → 果": instead of eyeballing a few fill-mask outputs, a
fixed item set (the built-in `cloze-en-zh`: 35 Chinese items in both scripts, 22 English) gives a number that
recipes and models can be compared by. Items whose answer is not a single token of the model's vocabulary *in
the sentence* (see `answer_piece`) count as misses (a model cannot predict a word it cannot write) and are
counted separately.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

CLOZE_SCHEMA = "bertology.cloze/1"
_DEMO = Path(__file__).resolve().parents[1] / "demo"
# cloze-items: 40 zh (Traditional) + 40 en blanks written so that the answer follows from the sentence, not from
# the character before the blank (the verdict's item set; demo/senses/README.md says how they were written)
BUILTIN_ITEMS = {"cloze-en-zh": _DEMO / "cloze_en_zh.tsv", "cloze-items": _DEMO / "cloze_items.tsv"}


@dataclass
class ClozeItem:
    lang: str
    sentence: str        # holds exactly one [MASK]
    answer: str


@dataclass
class ClozeResult:
    model: str
    items: list[dict]                 # lang, sentence, answer, top5 (tokens), hit1, hit5, scorable
    summary: dict[str, dict]          # per language: n, top1, top5, unscorable


def read_cloze_items(source: str | Path = "cloze-en-zh") -> list[ClozeItem]:
    """Items from a TSV with the header `lang<TAB>sentence<TAB>answer` (or a built-in set name)."""
    path = BUILTIN_ITEMS.get(str(source), Path(source))
    if not path.is_file():
        raise UserError(f"{path}: no such cloze file (built-in sets: {', '.join(BUILTIN_ITEMS)})")
    from ..io.storage import open_text

    with open_text(path, newline="") as f:   # bad UTF-8 is a UserError naming the file
        rows = list(csv.reader(f, delimiter="\t"))
    if rows and rows[0]:      # a UTF-8 BOM before the header (Windows editors): stripped, as the corpus reader does
        rows[0][0] = rows[0][0].lstrip("\ufeff")
    if not rows or [c.strip() for c in rows[0]] != ["lang", "sentence", "answer"]:
        raise UserError(f"{path}:1: expected the header lang<TAB>sentence<TAB>answer")
    items = []
    for i, row in enumerate(rows[1:], 2):
        if len(row) != 3 or not all(c.strip() for c in row):
            raise UserError(f"{path}:{i}: expected 3 non-empty tab-separated fields")
        if row[1].count("[MASK]") != 1:
            raise UserError(f"{path}:{i}: the sentence must hold exactly one [MASK]")
        items.append(ClozeItem(row[0].strip(), row[1].strip(), row[2].strip()))
    if not items:
        raise UserError(f"{path}: no items")
    return items


def cloze_accuracy(model: str, items: list[ClozeItem], precision: str = "fp32",
                   trust_remote_code: bool = False) -> ClozeResult:
    """Top-1 / top-5 accuracy of `model`'s masked-LM head on `items`, per language (via `fill_mask`)."""
    from ..core.models import load_tokenizer
    from .mlm import fill_mask

    tok = load_tokenizer(model, trust_remote_code)
    filled = fill_mask(model, [it.sentence for it in items], top_k=5, precision=precision,
                       trust_remote_code=trust_remote_code, command="cloze")
    rows, summary = [], {}
    for it, out in zip(items, filled.items):
        answer = answer_piece(tok, it)
        scorable = answer is not None
        cands = out["masks"][0]["candidates"] if out["masks"] else []
        top5 = [c["token"] for c in cands]
        ids = [c["id"] for c in cands]
        hit1 = scorable and ids[:1] == [answer]
        hit5 = scorable and answer in ids
        rows.append({"lang": it.lang, "sentence": it.sentence, "answer": it.answer, "top5": top5,
                     "hit1": hit1, "hit5": hit5, "scorable": scorable})
        s = summary.setdefault(it.lang, {"n": 0, "top1": 0.0, "top5": 0.0, "unscorable": 0})
        s["n"] += 1
        s["top1"] += hit1
        s["top5"] += hit5
        s["unscorable"] += not scorable
    for s in summary.values():
        # no answer of this language is a single token of the vocabulary: not measured, not an accuracy of 0
        measured = s["n"] > s["unscorable"]
        s["top1"] = s["top1"] / s["n"] if measured else None
        s["top5"] = s["top5"] / s["n"] if measured else None
    return ClozeResult(model=str(model), items=rows, summary=summary)


def answer_piece(tokenizer, item: ClozeItem) -> int | None:
    """The answer's token id as the model would have to predict it at the [MASK]: the answer written into the
    sentence, the whole sentence tokenised, and the one piece covering the answer's characters (a lone `▁` beside
    it dropped). None when the answer is several pieces there, or glued to a neighbour in one piece, or unknown.
    Tokenised alone the answer would get a `▁` (XLM-R) or miss the `Ġ` it has after a space (RoBERTa)."""
    from ..core.adapter import MASK, piece_in_context

    start = item.sentence.index(MASK)
    sentence = item.sentence[:start] + item.answer + item.sentence[start + len(MASK):]
    return piece_in_context(tokenizer, sentence, start, start + len(item.answer))


def ngram_hits(tokenizer, items: list[ClozeItem], corpora: dict[str, list[str]]) -> dict[str, list[bool]]:
    """The fill-mask verdict's cheap baselines, per item: does a unigram predictor (the corpus's most frequent
    token of the item's language) or a left-neighbour bigram predictor (the most frequent token after the token
    left of the blank; the unigram where that token was never seen) get the answer first? Counted with the
    model's own tokenizer on `corpora` ({lang: lines}, the pretraining corpus)."""
    from collections import Counter

    follow: dict[str, dict[int, int]] = {}        # per language: token -> its most frequent follower
    unigram: dict[str, int] = {}
    special = set(tokenizer.all_special_ids)
    for lang, lines in corpora.items():
        uni, pairs = Counter(), Counter()
        for enc in tokenizer.backend_tokenizer.encode_batch(list(lines), add_special_tokens=False):
            ids = enc.ids
            uni.update(ids)
            pairs.update(zip(ids, ids[1:]))
        for i in special:
            uni.pop(i, None)
        best: dict[int, tuple[int, int]] = {}
        for (a, b), n in pairs.items():
            if n > best.get(a, (0, -1))[0] or (n == best[a][0] and b < best[a][1]):
                best[a] = (n, b)
        unigram[lang], follow[lang] = uni.most_common(1)[0][0], {a: b for a, (_, b) in best.items()}
    out = {"unigram": [], "bigram": []}
    blank = {i for i, t in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
             if t is not None and not t.strip("▁Ġ ")}           # whitespace-only pieces: not a left neighbour
    for it in items:
        answer = answer_piece(tokenizer, it)
        ids = tokenizer(it.sentence.replace("[MASK]", tokenizer.mask_token), add_special_tokens=False)["input_ids"]
        at = ids.index(tokenizer.mask_token_id)
        left = next((ids[j] for j in range(at - 1, -1, -1) if ids[j] not in blank), None)
        uni = unigram.get(it.lang)
        out["unigram"].append(answer is not None and uni == answer)
        out["bigram"].append(answer is not None and follow.get(it.lang, {}).get(left, uni) == answer)
    return out
