"""Cloze accuracy: fill-in-the-blank items with one known single-token answer, scored top-1 / top-5 per language.

The measure behind the lecture's "今天買了蘋[MASK]來吃 → 果": instead of eyeballing a few fill-mask outputs, a
fixed item set (the built-in `cloze-en-zh`: 35 Chinese items in both scripts, 22 English) gives a number that
recipes and models can be compared by. Items whose answer is not a single token of the model's vocabulary *in
the sentence* (see `answer_piece`) count as misses (a model cannot predict a word it cannot write) and are
counted separately.

`run(cfg)` is the one entry of every front end (`bertology cloze`, the report's verdict): the item set (with
Simplified copies of the Chinese items if asked), the accuracies, the rank of 果 in the lecture's sentence, and
with `baselines` two n-gram predictors counted on the pretraining corpora and the model's paired advantage over
the stronger one.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UserError
from .configs import ClozeConfig

# /2: `settings`, `lecture` and `baselines` added; with baselines, each item row carries its `unigram` / `bigram` hit
CLOZE_SCHEMA = "bertology.cloze/2"
_DEMO = Path(__file__).resolve().parents[1] / "demo"
# cloze-items: 40 zh (Traditional) + 40 en blanks written so that the answer follows from the sentence, not from
# the character before the blank (the verdict's item set; demo/senses/README.md says how they were written)
BUILTIN_ITEMS = {"cloze-en-zh": _DEMO / "cloze_en_zh.tsv", "cloze-items": _DEMO / "cloze_items.tsv"}


@dataclass
class ClozeItem:
    lang: str
    sentence: str        # holds exactly one [MASK]
    answer: str


# The lecture's example: where the model ranks 果 (the verdict's table reports it beside the item set's top-1)
LECTURE_ITEM = ClozeItem("zh", "今天買了蘋[MASK]來吃", "果")
# the pretraining corpora the n-gram baselines are counted on, by language (data set names, under --data-dir)
BASELINE_CORPORA = {"en": "corpus-en", "zh": "corpus-zh"}


@dataclass
class ClozeResult:
    model: str
    items: list[dict]                 # lang, sentence, answer, top5 (tokens), hit1, hit5, scorable
                                      # (+ unigram, bigram with baselines: None where the item is unscorable)
    summary: dict[str, dict]          # per language: n, top1, top5, unscorable
    lecture: dict | None = None       # LECTURE_ITEM's sentence, answer, top5, rank (1-5, None: not in the top 5)
    baselines: dict | None = None     # None: not asked; else the n-gram comparison (`compare_with_ngrams`)
    settings: dict = field(default_factory=dict)


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
                   trust_remote_code: bool = False, tokenizer=None) -> ClozeResult:
    """Top-1 / top-5 accuracy of `model`'s masked-LM head on `items`, per language (via `fill_mask`), and where
    it ranks 果 in the lecture's sentence (scored in the same pass: one sentence more, not a second model load)."""
    from ..core.models import load_tokenizer
    from .mlm import fill_mask

    tok = tokenizer if tokenizer is not None else load_tokenizer(model, trust_remote_code)
    filled = fill_mask(model, [it.sentence for it in [*items, LECTURE_ITEM]], top_k=5, precision=precision,
                       trust_remote_code=trust_remote_code, command="cloze")
    rows = [_scored_row(tok, it, out) for it, out in zip(items, filled.items)]
    summary = {}
    for row in rows:
        s = summary.setdefault(row["lang"], {"n": 0, "top1": 0.0, "top5": 0.0, "unscorable": 0})
        s["n"] += 1
        s["top1"] += row["hit1"]
        s["top5"] += row["hit5"]
        s["unscorable"] += not row["scorable"]
    for s in summary.values():
        # no answer of this language is a single token of the vocabulary: not measured, not an accuracy of 0
        measured = s["n"] > s["unscorable"]
        s["top1"] = s["top1"] / s["n"] if measured else None
        s["top5"] = s["top5"] / s["n"] if measured else None
    lecture = _top5(filled.items[-1])
    return ClozeResult(model=str(model), items=rows, summary=summary,
                       lecture={"sentence": LECTURE_ITEM.sentence, "answer": LECTURE_ITEM.answer, "top5": lecture,
                                "rank": next((k for k, t in enumerate(lecture, 1) if t == LECTURE_ITEM.answer), None)})


def _top5(filled_text: dict) -> list[str]:
    """The candidate tokens (as text) of a filled text's first [MASK]."""
    return [c["token"] for c in filled_text["masks"][0]["candidates"]] if filled_text["masks"] else []


def _scored_row(tokenizer, item: ClozeItem, filled_text: dict) -> dict:
    """One item's row: its top 5, and whether the answer (as its piece in context) is first / among them."""
    answer = answer_piece(tokenizer, item)
    ids = [c["id"] for c in filled_text["masks"][0]["candidates"]] if filled_text["masks"] else []
    scorable = answer is not None
    return {"lang": item.lang, "sentence": item.sentence, "answer": item.answer, "top5": _top5(filled_text),
            "hit1": scorable and ids[:1] == [answer], "hit5": scorable and answer in ids, "scorable": scorable}


def run(cfg: ClozeConfig) -> ClozeResult:
    """`bertology cloze` and the report's verdict: the item set (Simplified copies of its Chinese items added when
    `add_simplified`), scored; with `baselines`, compared with the n-gram predictors on the scorable items."""
    from ..core.models import load_tokenizer

    items = read_cloze_items(cfg.items)
    if cfg.add_simplified:
        items += simplified_copies(items)
    tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)    # one load: the scoring and the baselines share it
    result = cloze_accuracy(cfg.model, items, cfg.precision, cfg.trust_remote_code, tokenizer)
    result.settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "threads")}
    if cfg.baselines:
        if any(row["scorable"] for row in result.items):
            result.baselines = compare_with_ngrams(result, items, tokenizer,
                                                   baseline_corpora(cfg.data_dir, cfg.baseline_lines))
        else:   # no item can be measured on this vocabulary: the comparison does not apply, and says why
            result.baselines = {"not_applicable": f"none of the {len(items)} items' answers is a single token of "
                                                  f"its vocabulary", "items": 0, "unscorable": len(items)}
    return result


def save(result: ClozeResult, out_dir: str | Path) -> Path:
    """OUT/results.json (schema `CLOZE_SCHEMA`, docs/results.md)."""
    from ..io.storage import save_results

    return save_results(out_dir, CLOZE_SCHEMA, asdict(result))


def simplified_copies(items: list[ClozeItem]) -> list[ClozeItem]:
    """A Simplified copy (OpenCC t2s) of every zh item, in order: the same question in the script most Chinese
    pretraining text is in. An item with nothing to convert (already the same in both scripts) gets no copy: it
    would be scored, and counted, twice."""
    import opencc

    cc = opencc.OpenCC("t2s")
    copies = [ClozeItem("zh", cc.convert(it.sentence), cc.convert(it.answer)) for it in items if it.lang == "zh"]
    have = {(it.sentence, it.answer) for it in items}
    return [c for c in copies if (c.sentence, c.answer) not in have]


def compare_with_ngrams(result: ClozeResult, items: list[ClozeItem], tokenizer,
                        corpora: dict[str, list[str]]) -> dict:
    """The model's top-1 on the scorable items against the unigram and left-neighbour bigram predictors
    (`ngram_hits`): their hit rates, overall and per language, and the paired difference model − the stronger
    predictor with its bootstrap 95% CI over items. Each scorable row of `result.items` gets its two n-gram hits
    (an unscorable row None: no predictor can write its answer, and it is left out of the comparison)."""
    import numpy as np

    from ..metrics import paired_difference

    keep = [i for i, row in enumerate(result.items) if row["scorable"]]
    hits = ngram_hits(tokenizer, [items[i] for i in keep], corpora)
    for row in result.items:
        row["unigram"] = row["bigram"] = None
    for k, i in enumerate(keep):
        result.items[i]["unigram"], result.items[i]["bigram"] = hits["unigram"][k], hits["bigram"][k]
    model_hits = np.array([result.items[i]["hit1"] for i in keep], dtype=float)
    stronger = max(hits, key=lambda name: np.mean(hits[name]))     # a tie goes to the unigram
    diff = paired_difference(model_hits, np.array(hits[stronger], dtype=float))
    return {"items": len(keep), "unscorable": len(items) - len(keep),
            "corpus_lines": {lang: len(lines) for lang, lines in corpora.items()},
            "top1": float(model_hits.mean()), **{name: float(np.mean(h)) for name, h in hits.items()},
            "stronger": stronger, "effect": diff["mean"], "ci": diff["ci"],
            "per_language": per_language_rates([result.items[i] for i in keep])}


def per_language_rates(rows: list[dict]) -> list[dict]:
    """Top-1 of the model and of each n-gram predictor per language, over scored rows (languages in item order)."""
    import numpy as np

    langs = dict.fromkeys(row["lang"] for row in rows)
    return [{"lang": lang, "items": sum(row["lang"] == lang for row in rows),
             **{name: float(np.mean([row[key] for row in rows if row["lang"] == lang]))
                for name, key in (("model", "hit1"), ("unigram", "unigram"), ("bigram", "bigram"))}}
            for lang in langs]


@functools.lru_cache(maxsize=2)
def baseline_corpora(data_dir: str | None, lines: int) -> dict[str, tuple[str, ...]]:
    """The pretraining-corpus lines the n-gram baselines are counted on: `lines` per language, spread evenly over
    its files, and the Chinese lines once more in Traditional (the corpus is Simplified; the items are in both
    scripts). Read once per process: every model of a report counts on the same lines."""
    import opencc

    from ..io.storage import corpus_files
    from .cbow import corpus_lines

    out = {}
    for lang, name in BASELINE_CORPORA.items():
        files = corpus_files(name, data_dir)
        out[lang] = corpus_lines(files, max(1, lines // len(files))) if files else []
        if not out[lang]:     # a unigram predictor needs at least one token to predict
            raise UserError(f"{name}: no text lines found (the data set under `data_dir`, read for `baselines`)",
                            ("data_dir",))
    cc = opencc.OpenCC("s2t")
    out["zh"] += [cc.convert(line) for line in out["zh"]]
    return {lang: tuple(found) for lang, found in out.items()}


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
