"""Text corpora (LANG=SOURCE[#COLUMN][@MAX_LINES]) for pretraining, tokenizers and alignment."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from .storage import read_json, read_lines

# ==== pretraining corpora =====================================================================================
# A corpus is given as LANG=SOURCE[#COLUMN][@MAX_LINES]:
#   SOURCE   a text file (one sentence or paragraph a line, .gz accepted), a directory (all its *.txt, *.txt.gz,
#            *.json, *.json.gz files, sorted), a SQuAD-format JSON (its paragraphs' contexts), or a data set name
#            known to `storage.find_dataset` (e.g. tatoeba-cmn-eng, squad-train, corpus-zh);
#   #COLUMN  for tab-separated files: which column (0-based) holds this language's text (Tatoeba: 0 en, 1 zh);
#   @N       keep at most N lines of this source (e.g. to cap one large or one-genre corpus).
@dataclass(frozen=True)
class CorpusSpec:
    lang: str
    source: str
    column: int | None = None
    max_lines: int | None = None


_SPEC_RE = re.compile(r"^(?P<lang>[A-Za-z][\w-]*)=(?P<src>[^#@]+?)(?:#(?P<col>\d+))?(?:@(?P<max>\d+))?$")


def parse_corpus_spec(spec: str) -> CorpusSpec:
    m = _SPEC_RE.match(spec.strip())
    if not m:
        raise UserError(f"`corpus` {spec!r}: expected LANG=FILE[#COLUMN][@MAX_LINES], e.g. en=corpus.txt.gz "
                        f"or zh=tatoeba-cmn-eng#1", fields=('corpus',))
    return CorpusSpec(m["lang"], m["src"], int(m["col"]) if m["col"] else None,
                      int(m["max"]) if m["max"] else None)


def first_source_per_language(specs: Sequence[str | CorpusSpec], keep_caps: bool = True) -> list[CorpusSpec]:
    """The first source given for each language, its @N cap kept or dropped: a training run's alignment probe
    looks its words up in one source per language."""
    first: dict[str, CorpusSpec] = {}
    for s in specs:
        spec = s if isinstance(s, CorpusSpec) else parse_corpus_spec(s)
        first.setdefault(spec.lang, spec if keep_caps else replace(spec, max_lines=None))
    return list(first.values())


def _source_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.name.endswith((".txt", ".txt.gz", ".json", ".json.gz")) and not p.name.startswith("."))
        if not files:
            raise UserError(f"{path}: directory holds no .txt / .txt.gz / .json files")
        return files
    return [path]


def _squad_contexts(path: Path) -> list[str]:
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise UserError(f"{path}: field 'data' missing: not a SQuAD-format file")
    return [" ".join(p["context"].split()) for art in doc["data"] for p in art.get("paragraphs", [])
            if p.get("context")]


def iter_corpus_lines(spec: CorpusSpec, data_dir: str | None = None):
    """Stream the text lines of one corpus source (SQuAD files give their paragraphs; `#N` picks a column)."""
    from .storage import find_dataset

    for f in _source_files(find_dataset(spec.source, data_dir)):
        if f.name.endswith((".json", ".json.gz")):
            yield from _squad_contexts(f)
            continue
        for i, line in enumerate(read_lines(f)):
            line = line.lstrip("\ufeff")
            if spec.column is not None:
                cols = line.split("\t")
                if spec.column >= len(cols):
                    raise UserError(f"{f}:{i + 1}: no column {spec.column} (line has {len(cols)} tab-separated fields)")
                line = cols[spec.column].strip()
            if line:
                yield line


def read_corpus(spec: CorpusSpec, data_dir: str | None = None, limit: int | None = None) -> list[str]:
    """The distinct text lines of one corpus source, in order, capped at spec.max_lines and at `limit`;
    reading stops as soon as the cap is reached (a corpus directory can hold over a million lines)."""
    caps = [c for c in (spec.max_lines, limit) if c is not None]
    cap = min(caps) if caps else None
    out: dict[str, None] = {}
    for line in iter_corpus_lines(spec, data_dir):
        if cap is not None and len(out) >= cap:
            break
        out[line] = None
    return list(out)


def read_corpora(specs: Sequence[str | CorpusSpec], data_dir: str | None = None,
                 limit: int | None = None) -> dict[str, list[str]]:
    """{language: lines} from LANG=SOURCE specs (several sources of one language are concatenated), at most
    `limit` lines per language (no source is read further than that)."""
    if not specs:
        raise UserError("no `corpus` given: pass at least one LANG=FILE", fields=('corpus',))
    out: dict[str, list[str]] = {}
    for s in specs:
        spec = s if isinstance(s, CorpusSpec) else parse_corpus_spec(s)
        out.setdefault(spec.lang, []).extend(read_corpus(spec, data_dir, limit))
    if limit is not None:
        out = {lang: lines[:limit] for lang, lines in out.items()}
    for lang, lines in out.items():
        if not lines:
            raise UserError(f"`corpus` {lang}=...: no text lines found", fields=('corpus',))
    return out


