"""Files: atomic writes, versioned results.json, and finding data sets by name.

Everything the toolkit writes goes through `atomic_write_*`: the bytes land in a temporary file in the same
directory and are renamed over the target, so a reader (or a crash) never sees half a file.
"""

from __future__ import annotations

import glob
import gzip
import json
import math
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import zlib
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .. import __version__
from ..errors import UserError

DATA_DIR_ENV = "BERTOLOGY_DATA"
_UMASK = os.umask(0)
os.umask(_UMASK)


# --------------------------------------------------------------------------------------------- atomic writes
# A temporary file older than this is left over from a write that was killed (kill -9, power loss): no write of
# ours takes that long, so it is safe to delete without racing a writer that is still running.
STALE_TMP_SECONDS = 600


def remove_stale_tmp(path: Path) -> None:
    """Delete leftovers `.NAME.*.tmp` of earlier interrupted writes of `path`."""
    now = time.time()
    for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - old.stat().st_mtime > STALE_TMP_SECONDS:
                old.unlink()
        except OSError:
            pass          # gone already, or not ours to delete


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp creates 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def replace_dir(new: Path, target: Path) -> Path:
    """Swap a fully written directory `new` into place at `target`. The previous `target` is first renamed
    to `<target>.old` and removed only once `new` is in place, so a crash at any moment leaves either the
    new directory or the old one (readers such as `engine.find_checkpoint` fall back to `.old`)."""
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating,)):
        return _jsonable(float(obj))
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, float) and not math.isfinite(obj):  # NaN and Infinity are not valid JSON: "not measured"
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(_jsonable(obj), ensure_ascii=False, indent=2, allow_nan=False) + "\n")


def save_results(out_dir: str | os.PathLike, schema: str, payload: dict) -> Path:
    """Write `out_dir/results.json` as {"schema": ..., "bertology_version": ..., **payload}.

    `schema` is "bertology.<experiment>/<major version>"; docs/results.md documents each one.
    """
    doc = {"schema": schema, "bertology_version": __version__, **_jsonable(payload)}
    return atomic_write_json(Path(out_dir) / "results.json", doc)


def load_results(path: str | os.PathLike, schema_prefix: str | None = None) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.exists():
        raise UserError(f"{path}: no such results file")
    doc = read_json(path)
    if not isinstance(doc, dict):    # a results file is one object; anything else is not ours
        raise UserError(f"{path}: not a results file (a JSON {type(doc).__name__}, not an object)")
    if schema_prefix and not str(doc.get("schema", "")).startswith(schema_prefix):
        raise UserError(f"{path}: field 'schema' is {doc.get('schema')!r}, expected {schema_prefix.rstrip('/')}/N")
    return doc


# --------------------------------------------------------------------------------------------- text files
def read_json(path: str | os.PathLike) -> Any:
    """A (possibly gzipped) JSON file; invalid JSON is a UserError naming the file and line."""
    try:
        with open_text(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except RecursionError:      # json's decoder recurses per nesting level: [[[[... 100,000 deep
        raise UserError(f"{path}: JSON nested too deeply to read (more than about "
                        f"{sys.getrecursionlimit()} levels)") from None


def truncate_jsonl(path: str | os.PathLike, max_step: int) -> None:
    """Keep the entries of a JSON-lines log up to step `max_step` (a run resumed from that step's checkpoint
    logs the later ones again)."""
    path = Path(path)
    if path.exists():
        keep = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= max_step]
        atomic_write_text(path, "".join(line + "\n" for line in keep))


# What a damaged text file raises while it is read: bytes that are not UTF-8, a .gz cut short (EOFError) or not
# gzip at all (BadGzipFile, an OSError), a corrupt deflate stream (zlib.error).
_DAMAGED = (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error)


class _CheckedText:
    """A text file whose decoding errors, which surface only as it is read (lazily, deep in a loader), become
    `UserError`s naming the file, instead of a traceback (or typer's bare "Aborted." for an EOFError)."""

    def __init__(self, f, path: Path):
        self._f, self._path = f, path

    def _damaged(self, e: Exception) -> UserError:
        if isinstance(e, UnicodeDecodeError):
            return UserError(f"{self._path}: not UTF-8 text ({e.reason}); is it a binary file?")
        return UserError(f"{self._path}: truncated or corrupt gzip file ({e or e.__class__.__name__})")

    def __iter__(self):
        try:
            yield from self._f
        except _DAMAGED as e:
            raise self._damaged(e) from None

    def read(self, *args):
        try:
            return self._f.read(*args)
        except _DAMAGED as e:
            raise self._damaged(e) from None

    def readline(self, *args):
        try:
            return self._f.readline(*args)
        except _DAMAGED as e:
            raise self._damaged(e) from None

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


def open_text(path: str | os.PathLike, newline: str | None = None):
    """Open a UTF-8 text file for reading, transparently gunzipping `.gz`; a file that is not UTF-8 text (or a
    damaged .gz) raises `UserError` naming it when it is read."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a file")
    if path.suffix == ".gz":
        return _CheckedText(gzip.open(path, "rt", encoding="utf-8", newline=newline), path)
    return _CheckedText(open(path, encoding="utf-8", newline=newline), path)


def read_lines(path: str | os.PathLike, limit: int | None = None) -> Iterator[str]:
    """Non-empty stripped lines of a (possibly gzipped) text file."""
    with open_text(path) as f:
        n = 0
        for line in f:
            line = line.strip()
            if not line:
                continue
            yield line
            n += 1
            if limit is not None and n >= limit:
                return


# --------------------------------------------------------------------------------------------- data sets
# Each data set the toolkit knows by name: where it lives under the data directory, and its public origin.
# `find_dataset` looks in --data-dir / $BERTOLOGY_DATA / ./data / ../shared/data, and downloads from the
# origin (when one exists and we are online) into the first of those directories.
DATASETS: dict[str, tuple[str, str | None]] = {
    "splice": ("splice/splice.csv", None),  # the UCI original is headerless `splice.data`; loaders accept both
    "splice-uci": ("splice/splice.data",
                   "https://archive.ics.uci.edu/ml/machine-learning-databases/molecular-biology/"
                   "splice-junction-gene-sequences/splice.data"),
    "multiloc": ("protein/multiloc_11class.tsv", None),
    "composer": ("music/composer_voices.tsv.gz", None),
    "squad-train": ("squad/squad_v1.1_train.json.gz", None),
    "squad-train-json": ("squad/train-v1.1.json",
                         "https://rajpurkar.github.io/SQuAD-explorer/dataset/train-v1.1.json"),
    "squad-dev": ("squad/squad_v1.1_dev.json",
                  None),
    "squad-dev-json": ("squad/dev-v1.1.json", "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json"),
    "drcd-dev": ("drcd/DRCD_dev.json", "https://raw.githubusercontent.com/DRCKnowledgeTeam/DRCD/master/DRCD_dev.json"),
    "drcd-train": ("drcd/DRCD_training.json",
                   "https://raw.githubusercontent.com/DRCKnowledgeTeam/DRCD/master/DRCD_training.json"),
    "cmrc-trial": ("cmrc2018/cmrc2018_trial.json",
                   "https://raw.githubusercontent.com/ymcui/cmrc2018/master/squad-style-data/cmrc2018_trial.json"),
    "cmrc-dev": ("cmrc2018/cmrc2018_dev.json",
                 "https://raw.githubusercontent.com/ymcui/cmrc2018/master/squad-style-data/cmrc2018_dev.json"),
    "xquad-en": ("xquad/xquad.en.json", "https://raw.githubusercontent.com/deepmind/xquad/master/xquad.en.json"),
    "xquad-zh": ("xquad/xquad.zh.json", "https://raw.githubusercontent.com/deepmind/xquad/master/xquad.zh.json"),
    "muse-en-zh": ("muse/en-zh.txt", "https://dl.fbaipublicfiles.com/arrival/dictionaries/en-zh.txt"),
    "muse-zh-en": ("muse/zh-en.txt", "https://dl.fbaipublicfiles.com/arrival/dictionaries/zh-en.txt"),
    "cedict": ("cedict/cedict_1_0_ts_utf-8_mdbg.zip", None),
    "tatoeba-cmn-eng": ("tatoeba/cmn-eng.txt", None),
    "corpus-en": ("corpora/en", None),
    "corpus-zh": ("corpora/zh", None),
}


def data_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Candidate data directories, most specific first."""
    dirs: list[Path] = []
    if data_dir:
        if Path(data_dir).is_file():     # a file here was skipped over silently and the defaults were used
            raise UserError(f"`data_dir` {data_dir}: a file, not a directory", fields=("data_dir",))
        dirs.append(Path(data_dir))
    if os.environ.get(DATA_DIR_ENV):
        dirs.append(Path(os.environ[DATA_DIR_ENV]))
    dirs += [Path("data"), Path("../shared/data")]
    # and beside the package's own checkout, so that commands work when run from any folder
    root = Path(__file__).resolve().parents[3]
    dirs += [d for d in (root / "data", root.parent / "shared" / "data") if d.resolve() not in
             {x.resolve() for x in dirs}]
    return dirs


def corpus_files(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                 max_files: int | None = None) -> list[Path]:
    """The text shards of a corpus data set (its *.txt.gz, in name order, the first `max_files`), or the one file
    a path names."""
    found = find_dataset(name_or_path, data_dir)
    return sorted(found.glob("*.txt.gz"))[:max_files] if found.is_dir() else [found]


def find_dataset(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                 download: bool = True) -> Path:
    """Resolve a data set name (see DATASETS) or a path to an existing file/directory."""
    p = Path(name_or_path)
    if p.exists():
        return p
    name = str(name_or_path)
    if name not in DATASETS:
        raise UserError(f"{name}: no such file, and not a known data set name "
                        f"(known: {', '.join(sorted(DATASETS))})")
    rel, url = DATASETS[name]
    tried = []
    for d in data_dirs(data_dir):
        cand = d / rel
        tried.append(str(cand))
        if cand.exists():
            return cand
    if download and url:
        target = data_dirs(data_dir)[0] / rel
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                atomic_write_bytes(target, r.read())
            return target
        except OSError as e:
            tried.append(f"{url} ({e.__class__.__name__})")
    raise UserError(f"data set {name!r} not found; tried {', '.join(tried)}. "
                    f"Point `data_dir` or ${DATA_DIR_ENV} at a directory holding {rel}", fields=('data_dir',))
