"""Bilingual dictionaries (MUSE, CC-CEDICT) for cross-lingual alignment and language vectors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from .cjk import has_cjk
from .storage import open_text

# ==== bilingual dictionaries ==================================================================================
# Two formats: MUSE (`source<TAB>target`, one pair a line, several lines per source word) and CC-CEDICT
# (`Traditional Simplified [pinyin] /gloss/gloss/`, here read straight from the distributed .zip). Chinese comes
# in two scripts (MUSE: Traditional; most corpora: Simplified), so a dictionary can be converted with opencc;
# the number of words the conversion changed is kept so coverage can be reported.
SCRIPT_CONVERSIONS = ("t2s", "s2t")


@dataclass
class Dictionary:
    """A bilingual dictionary: (source, target) pairs, deduplicated, in file order."""
    pairs: list[tuple[str, str]]
    path: str = ""
    format: str = "muse"
    converted_words: int = 0      # Chinese words changed by --convert (t2s / s2t)
    chinese_words: int = 0        # Chinese words seen (the denominator for converted_words)
    convert: str | None = None    # the opencc conversion applied (t2s, s2t) or None

    def translations(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for s, t in self.pairs:
            out.setdefault(s, []).append(t)
        return out

    def inverted(self) -> "Dictionary":
        return Dictionary([(t, s) for s, t in self.pairs], self.path, self.format, self.converted_words,
                          self.chinese_words, self.convert)


def _converter(convert: str | None):
    if convert is None or convert == "none":
        return None
    if convert not in SCRIPT_CONVERSIONS:
        raise UserError(f"`convert` must be one of none, {', '.join(SCRIPT_CONVERSIONS)}, not {convert!r}",
                        fields=('convert',))
    import opencc

    return opencc.OpenCC(convert)


def _convert_pairs(pairs: list[tuple[str, str]], convert: str | None) -> tuple[list[tuple[str, str]], int, int]:
    cc = _converter(convert)
    changed = seen = 0
    cache: dict[str, str] = {}

    def conv(w: str) -> str:
        nonlocal changed, seen
        if not has_cjk(w):
            return w
        if w not in cache:
            cache[w] = cc.convert(w) if cc else w
            seen += 1
            changed += cache[w] != w
        return cache[w]
    out = [(conv(s), conv(t)) for s, t in pairs]
    return list(dict.fromkeys(out)), changed, seen


def load_muse_dictionary(path: str | Path, convert: str | None = None) -> Dictionary:
    """MUSE format: `source<TAB>target` (a single space also separates, as in some MUSE files)."""
    path = Path(path)
    pairs = []
    with open_text(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip().lstrip("\ufeff")
            if not line or line.startswith("#"):
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
                raise UserError(f"{path}:{i}: expected 'source<TAB>target', found {len(fields)} field(s): {line[:60]!r}")
            pairs.append((fields[0].strip(), fields[1].strip()))
    if not pairs:
        raise UserError(f"{path}: no dictionary pairs")
    pairs, changed, seen = _convert_pairs(pairs, convert)
    return Dictionary(pairs, str(path), "muse", changed, seen, None if convert == "none" else convert)


_CEDICT_LINE = re.compile(r"^(?P<trad>\S+) (?P<simp>\S+) \[(?P<pinyin>[^\]]*)\] /(?P<glosses>.*)/\s*$")
_GLOSS_WORD = re.compile(r"^[a-z][a-z'-]*$")


def load_cedict(path: str | Path, direction: str = "zh-en", script: str = "simplified",
                convert: str | None = None) -> Dictionary:
    """CC-CEDICT (the .zip as distributed, or the unzipped .u8 text) as single-word pairs.

    A gloss counts as a translation when, after dropping parenthesised notes and a leading "to " (verbs),
    it is one English word: CEDICT glosses are definitions, and a multi-word definition ("to go Dutch") is
    not a word that a word-retrieval task could find. `direction`: zh-en or en-zh.
    """
    import io
    import zipfile

    path = Path(path)
    if direction not in ("zh-en", "en-zh"):
        raise UserError(f"CEDICT direction must be zh-en or en-zh, not {direction!r}")
    if script not in ("simplified", "traditional"):
        raise UserError(f"CEDICT script must be simplified or traditional, not {script!r}")
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            members = [n for n in z.namelist() if n.endswith((".u8", ".txt"))]
            if not members:
                raise UserError(f"{path}: zip holds no .u8 / .txt file")
            text = io.TextIOWrapper(z.open(members[0]), encoding="utf-8").read()
    else:
        with open_text(path) as f:
            text = f.read()
    pairs = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _CEDICT_LINE.match(line)
        if not m:
            raise UserError(f"{path}:{i}: not a CC-CEDICT line ('TRAD SIMP [pinyin] /gloss/'): {line[:60]!r}")
        zh = m["simp"] if script == "simplified" else m["trad"]
        if not has_cjk(zh):
            continue
        for g in m["glosses"].split("/"):
            g = re.sub(r"\([^)]*\)", "", g).strip().lower()
            g = g[3:] if g.startswith("to ") else g
            if _GLOSS_WORD.match(g):
                pairs.append((zh, g) if direction == "zh-en" else (g, zh))
    if not pairs:
        raise UserError(f"{path}: no single-word CC-CEDICT entries")
    pairs, changed, seen = _convert_pairs(list(dict.fromkeys(pairs)), convert)
    return Dictionary(pairs, str(path), "cedict", changed, seen, None if convert == "none" else convert)


def choose_conversion(dictionary: Dictionary, corpora_by_side: tuple[Sequence[str], Sequence[str]]) -> str | None:
    """`--convert auto`: t2s when the dictionary's Chinese is Traditional and the matching corpus Simplified
    (MUSE vs most corpora), s2t in the opposite case, else none. Script is judged by how much opencc's t2s
    changes: a sample of the dictionary's Chinese words, and a sample of the corpus's Chinese characters."""
    import numpy as np
    import opencc

    t2s = opencc.OpenCC("t2s")
    for side, lines in enumerate(corpora_by_side):
        words = [p[side] for p in dictionary.pairs[:20000] if has_cjk(p[side])][:5000]
        if not words:
            continue
        dict_trad = np.mean([t2s.convert(w) != w for w in words])
        text = "".join(l for l in list(lines)[:3000] if has_cjk(l))
        cjk = [c for c in text if has_cjk(c)]
        if not cjk:
            return None
        conv = t2s.convert("".join(cjk))
        corpus_trad = np.mean([a != b for a, b in zip(cjk, conv)]) if len(conv) == len(cjk) else 0.0
        # Traditional text changes in roughly a quarter to a third of characters, Simplified almost never.
        if dict_trad > 0.1 and corpus_trad < 0.03:
            return "t2s"
        if dict_trad < 0.03 and corpus_trad > 0.1:
            return "s2t"
        return None
    return None


def convert_dictionary(dictionary: Dictionary, convert: str | None) -> Dictionary:
    """The dictionary with its Chinese converted by opencc (t2s, s2t); none / None: unchanged."""
    if not convert or convert == "none":
        return dictionary
    pairs, changed, seen = _convert_pairs(dictionary.pairs, convert)
    return Dictionary(pairs, dictionary.path, dictionary.format, changed, seen, convert)


def load_dictionary(name_or_path: str, fmt: str = "auto", convert: str | None = None,
                    data_dir: str | None = None, direction: str = "en-zh") -> Dictionary:
    """A dictionary by data-set name (muse-en-zh, cedict, ...) or path; fmt auto: CEDICT for .zip / .u8."""
    from .storage import find_dataset

    path = find_dataset(name_or_path, data_dir)
    if fmt == "auto":
        fmt = "cedict" if path.name.endswith((".zip", ".u8")) or "cedict" in path.name.lower() else "muse"
    if fmt == "muse":
        return load_muse_dictionary(path, convert)
    if fmt == "cedict":
        return load_cedict(path, direction=direction, convert=convert)
    raise UserError(f"`dict_format` must be auto, muse or cedict, not {fmt!r}", fields=('dict_format',))
