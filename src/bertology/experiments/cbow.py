"""The static baseline: word2vec CBOW ("BERT is a deep CBOW").

CBOW learns one vector per word type by predicting a word from the average of its neighbours. Every
occurrence of 蘋果 gets the same vector, whatever the sentence: the senses cannot separate, and the nearest
neighbours of the word mix both senses. Trained with gensim; saved in word2vec binary format (no pickle, so
loading a file from elsewhere runs no code) with a small JSON sidecar saying how text was segmented.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import UserError
from ..io.cjk import CJK_RANGES, has_cjk
from ..io.sentences import read_sentences
from ..io.storage import atomic_write_json, read_lines, save_results

SCHEMA = "bertology.cbow/1"
SEGMENTS = ("auto", "char", "word")
_WORD = re.compile(rf"[{CJK_RANGES}]|[^\W{CJK_RANGES}]+", re.UNICODE)


def segment_line(line: str, segment: str) -> list[str]:
    """Tokens of a line, lower-cased. `char`: every CJK character a token, other words split at non-word
    characters (BERT's own pre-tokenisation); `word`: Chinese segmented into words with jieba; `auto` = char."""
    if segment == "word" and has_cjk(line):
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
               window: int = 5, min_count: int = 2, epochs: int = 5, seed: int = 0, workers: int = 1,
               progress: bool = True) -> CbowResult:
    """Train CBOW (gensim Word2Vec, sg=0) on lines of text and save it to out_dir/cbow.bin (+ cbow.json)."""
    import time

    from gensim.models import Word2Vec

    if segment not in SEGMENTS:
        raise UserError(f"`segment` must be one of {', '.join(SEGMENTS)}, not {segment!r}", fields=('segment',))
    segment = "char" if segment == "auto" else segment
    corpus = [toks for toks in (segment_line(l, segment) for l in lines) if toks]
    if not corpus:
        raise UserError("the CBOW corpus is empty")
    for name, value in (("window", window), ("vector_size", vector_size), ("min_count", min_count),
                        ("epochs", epochs), ("workers", workers)):
        if value < 1:
            raise UserError(f"`{name}` must be at least 1, not {value}", fields=(name,))
    t0 = time.perf_counter()
    model = Word2Vec(sg=0, vector_size=vector_size, window=window, min_count=min_count, seed=seed,
                     workers=workers, hashfxn=_stable_hash)
    model.build_vocab(corpus)
    if len(model.wv) == 0:     # gensim's own RuntimeError ("build vocabulary first") was a traceback
        counts = Counter(tok for toks in corpus for tok in toks)
        raise UserError(f"`min_count` {min_count}: no word occurs that often (the most frequent, "
                        f"{counts.most_common(1)[0][0]!r}, occurs {counts.most_common(1)[0][1]} times)",
                        fields=("min_count",))
    with _fail_on_worker_error(), _EpochBar(epochs, progress) as bar:
        model.train(corpus, total_examples=model.corpus_count, epochs=epochs, callbacks=[bar])
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


class _EpochBar:
    """A progress bar over gensim's epochs (a gensim callback)."""

    def __init__(self, epochs: int, enabled: bool):
        self.epochs, self.enabled, self.bar = epochs, enabled, None

    def __enter__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.epochs, desc="cbow", unit="epoch", disable=not self.enabled, dynamic_ncols=True)
        return self

    def __exit__(self, *exc):
        self.bar.close()

    # gensim's CallbackAny2Vec interface
    def on_train_begin(self, model): pass
    def on_epoch_begin(self, model): pass
    def on_batch_begin(self, model): pass
    def on_batch_end(self, model): pass
    def on_train_end(self, model): pass

    def on_epoch_end(self, model):
        self.bar.update(1)


class WorkerFailure(RuntimeError):
    """A gensim worker thread died."""


@contextmanager
def _fail_on_worker_error():
    """gensim trains in worker threads. When one dies, its job queue never drains and the main thread waits on it
    forever. Turn a worker's exception into an exception in the main thread: a real signal (not just a flag)
    interrupts the main thread's blocked wait."""
    if threading.current_thread() is not threading.main_thread():
        yield                       # signal handlers can only be installed from the main thread
        return
    failures: list[BaseException] = []
    previous_hook = threading.excepthook

    def hook(args):
        failures.append(args.exc_value)
        previous_hook(args)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

    def raise_failure(signum, frame):
        raise WorkerFailure(f"a gensim worker thread failed: {failures[0]!r}" if failures else "a gensim worker failed")

    previous_handler = signal.signal(signal.SIGUSR1, raise_failure)
    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous_hook
        signal.signal(signal.SIGUSR1, previous_handler)


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


def nearest_neighbours(kv, target: str, segment: str, k: int = 10) -> list[tuple[str, float]]:
    """The k words closest to `target` (cosine), leaving out the target and its own pieces."""
    vec = word_vector(kv, target, segment)
    pieces = set(target.lower().split()) | ({target.lower()} if segment != "char" else set(target))
    return [(w, float(c)) for w, c in kv.similar_by_vector(vec, topn=k + len(pieces)) if w not in pieces][:k]


@dataclass
class CbowRun:
    """What `run` returns: the trained model's description and the nearest neighbours of each target."""

    result: CbowResult
    neighbours: dict[str, list[tuple[str, float]]]


def run(cfg: "CbowConfig", progress: bool = True) -> CbowRun:   # noqa: F821 (configs imports this module)
    """Train CBOW on the config's corpus (and its sentence set) into cfg.out, and find the targets' neighbours."""
    lines = corpus_lines(cfg.corpus, cfg.max_lines)
    if cfg.sentences is not None:
        lines += read_sentences(cfg.sentences)[0]
    result = train_cbow(lines, cfg.out, segment=cfg.segment, vector_size=cfg.dim, window=cfg.window,
                        min_count=cfg.min_count, epochs=cfg.epochs, seed=cfg.seed, progress=progress)
    kv, meta = load_cbow(cfg.out)
    return CbowRun(result, {t: nearest_neighbours(kv, t, meta["segment"]) for t in cfg.target})


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
