"""The static baseline: word2vec CBOW ("BERT is a deep CBOW").

CBOW learns one vector per word type by predicting a word from the average of its neighbours. Every
occurrence of 蘋果 gets the same vector, whatever the sentence: the senses cannot separate, and the nearest
neighbours of the word mix both senses. Trained with gensim; saved in word2vec binary format (no pickle, so
loading a file from elsewhere runs no code) with a small JSON sidecar saying how text was segmented.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import UserError
from ..io.storage import atomic_write_json, read_lines, save_results

SCHEMA = "bertology.cbow/1"
SEGMENTS = ("auto", "char", "word")
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+", re.UNICODE)


def segment_line(line: str, segment: str) -> list[str]:
    """Tokens of a line, lower-cased. `char`: every CJK character a token, other words split at non-word
    characters (BERT's own pre-tokenisation); `word`: Chinese segmented into words with jieba; `auto` = char."""
    if segment == "word" and re.search(rf"[{_CJK}]", line):
        import jieba

        jieba.setLogLevel(60)
        return [w.lower() for w in jieba.lcut(line) if w.strip() and re.search(r"\w", w)]
    return [t.lower() for t in _WORD.findall(line)]


def _stable_hash(s: str) -> int:
    """gensim seeds each word's initial vector with hash(word + seed); Python's hash is randomised per
    process, so use a stable one to make training repeatable."""
    return zlib.crc32(s.encode("utf-8"))


@dataclass
class CbowResult:
    path: Path
    vocab_size: int
    sentences: int
    tokens: int
    segment: str
    vector_size: int
    window: int
    epochs: int
    seconds: float


def train_cbow(lines: Iterable[str], out_dir: str | Path, segment: str = "char", vector_size: int = 100,
               window: int = 5, min_count: int = 2, epochs: int = 5, seed: int = 0, workers: int = 1) -> CbowResult:
    """Train CBOW (gensim Word2Vec, sg=0) on lines of text and save it to out_dir/cbow.bin (+ cbow.json)."""
    import time

    from gensim.models import Word2Vec

    if segment not in SEGMENTS:
        raise UserError(f"--segment must be one of {', '.join(SEGMENTS)}, not {segment!r}")
    segment = "char" if segment == "auto" else segment
    corpus = [toks for toks in (segment_line(l, segment) for l in lines) if toks]
    if not corpus:
        raise UserError("the CBOW corpus is empty")
    t0 = time.perf_counter()
    model = Word2Vec(sentences=corpus, sg=0, vector_size=vector_size, window=window, min_count=min_count,
                     epochs=epochs, seed=seed, workers=workers, hashfxn=_stable_hash)
    seconds = time.perf_counter() - t0
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".cbow.bin.tmp"
    model.wv.save_word2vec_format(str(tmp), binary=True)
    tmp.replace(out_dir / "cbow.bin")
    meta = {"segment": segment, "vector_size": vector_size, "window": window, "min_count": min_count,
            "epochs": epochs, "seed": seed}
    atomic_write_json(out_dir / "cbow.json", meta)
    return CbowResult(out_dir / "cbow.bin", len(model.wv), len(corpus), sum(map(len, corpus)), segment,
                      vector_size, window, epochs, seconds)


def load_cbow(path: str | Path):
    """Load a saved CBOW model (a directory from train_cbow, or a word2vec .bin/.txt file)."""
    from gensim.models import KeyedVectors

    path = Path(path)
    meta = {"segment": "char"}
    if path.is_dir():
        if (path / "cbow.json").exists():
            meta.update(json.loads((path / "cbow.json").read_text()))
        path = path / "cbow.bin"
    if not path.exists():
        raise UserError(f"{path}: no such CBOW model (train one with `bertology cbow`)")
    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=path.suffix != ".txt")
    except (ValueError, UnicodeDecodeError, EOFError) as e:
        raise UserError(f"{path}: not a word2vec file ({e})") from None
    return kv, meta


def word_vector(kv, target: str, segment: str) -> np.ndarray:
    """The static vector of a target: the word itself, else the mean of its segments (e.g. 蘋果 = 蘋 + 果
    when the model was trained on characters)."""
    key = target.lower()
    if key in kv.key_to_index:
        return np.asarray(kv[key], dtype=np.float32)
    parts = segment_line(target, segment)
    missing = [p for p in parts if p not in kv.key_to_index]
    if not parts or missing:
        raise UserError(f"target {target!r} is not in the CBOW vocabulary (missing: {', '.join(missing or [target])})")
    return np.mean([kv[p] for p in parts], axis=0).astype(np.float32)


def corpus_lines(files: Sequence[str | Path], max_lines: int | None = None) -> list[str]:
    """Lines from several corpus files (each capped at max_lines)."""
    lines: list[str] = []
    for f in files:
        lines += list(read_lines(f, limit=max_lines))
    return lines


def save(result: CbowResult, out_dir: str | Path, neighbours: dict | None = None) -> Path:
    payload = {k: (str(v) if isinstance(v, Path) else v) for k, v in result.__dict__.items()}
    payload["neighbours"] = neighbours or {}
    return save_results(out_dir, SCHEMA, payload)


# ---------------------------------------------------------------------------------------------------- report
def report_section(ctx):
    """Train a small CBOW per demo language on the real corpora, and compare with the contextual result."""
    from ..report import plots
    from ..report import Section
    from .senses import resolve_sentences, static_senses
    from ..io.storage import find_dataset, load_results

    sections = []
    max_lines = 60_000 if ctx.quick else 600_000
    for lang, demo, corpus_name in [("en", "apple-en", "corpus-en"), ("zh", "apple-zh", "corpus-zh")]:
        sents, labels, source, target = resolve_sentences(demo, None)
        sec = Section(f"Static baseline: CBOW vectors for {target!r}")
        try:
            corpus_dir = find_dataset(corpus_name, ctx.data_dir)
            files = sorted(corpus_dir.glob("*.txt.gz"))[:3] if corpus_dir.is_dir() else [corpus_dir]
            lines = corpus_lines(files, max_lines // max(1, len(files))) + list(sents)
            res = train_cbow(lines, ctx.out_dir / lang, segment="char", seed=ctx.seed, epochs=5)
            static = static_senses(ctx.out_dir / lang, sents, labels, target, seed=ctx.seed, source=source)
            from .senses import save as save_senses

            save_senses(static, ctx.out_dir / lang / "senses", title=f"{target} — CBOW (static)")
            save(res, ctx.out_dir / lang, {target: static.neighbours})
            contextual = None
            ctx_file = ctx.out_dir.parent / "senses" / demo / "results.json"
            if ctx_file.exists():
                contextual = load_results(ctx_file, "bertology.senses/")
            sec.figures = [plots.static_vs_contextual(static, contextual, ctx.out_dir / lang / "static_vs_contextual.png")]
            sec.explanation = (
                f"CBOW trained here on {res.sentences:,} lines ({res.tokens:,} tokens, {res.seconds:.0f} s) of "
                f"{', '.join(f.name for f in files)} plus the demo sentences, segmented by characters. Every "
                f"occurrence of {target!r} gets the same vector, so within-sense and between-sense similarity "
                f"are both 1 and the separation is exactly 0, at every 'layer'; the contextual model's "
                f"separation per layer is drawn beside it. The nearest neighbours of {target!r} in CBOW space "
                f"mix whatever contexts the corpus used it in: "
                + ", ".join(f"{w} ({c:.2f})" for w, c in static.neighbours) + ".")
            sec.tables = [("CBOW static senses", [{"within": static.layers[0].within,
                                                   "between": static.layers[0].between,
                                                   "separation": static.layers[0].separation,
                                                   "purity": static.layers[0].purity}])]
        except UserError as e:
            sec.error = str(e)
        sections.append(sec)
    return sections
