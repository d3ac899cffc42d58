"""Bilingual data for alignment and language vectors: the corpora of two languages and a dictionary in their
script. Every front end (CLI, report, explorer, training-time alignment probe) assembles it here, so that
which languages are the two sides and which OpenCC conversion the dictionary gets is decided one way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ..errors import UserError
from .corpora import CorpusSpec, read_corpora
from .dictionaries import SCRIPT_CONVERSIONS, Dictionary, choose_conversion, convert_dictionary, load_dictionary

CONVERSIONS = ("auto", "none", *SCRIPT_CONVERSIONS)   # `convert`: auto = chosen from the corpora's script


@dataclass
class BilingualData:
    """Lines of text per language, the two languages compared, and the dictionary from source to target."""
    corpora: dict[str, list[str]]
    source: str
    target: str
    dictionary: Dictionary


def pick_languages(corpora: Mapping[str, Sequence[str]], source: str | None = None,
                   target: str | None = None) -> tuple[str, str]:
    """(source, target): as given, else the first and second language of `corpora` (the first twice when there
    is only one, as for an identity dictionary)."""
    langs = list(corpora)
    source = source or langs[0]
    target = target or (langs[1] if len(langs) > 1 else langs[0])
    for lang in (source, target):
        if lang not in corpora:
            raise UserError(f"`source`/`target` {lang!r}: no `corpus` {lang}=... given (have {', '.join(langs)})",
                            fields=("source", "target", "corpus"))
    return source, target


def dictionary_for_corpora(name_or_path: str, corpora: Mapping[str, Sequence[str]], source: str, target: str,
                           convert: str | None = "auto", fmt: str = "auto", data_dir: str | None = None) -> Dictionary:
    """The dictionary (data set name or path), its Chinese converted as `convert` says; auto: to the script of
    the corpora (MUSE's Chinese is Traditional, most corpora Simplified; see `choose_conversion`)."""
    if convert is not None and convert not in CONVERSIONS:
        raise UserError(f"`convert` must be auto, t2s, s2t or none, not {convert!r}", fields=("convert",))
    dictionary = load_dictionary(name_or_path, fmt, None, data_dir, direction=f"{source}-{target}")
    if convert == "auto":
        convert = choose_conversion(dictionary, (corpora[source], corpora[target]))
    return convert_dictionary(dictionary, convert)


def read_bilingual(corpus_specs: Sequence[str | CorpusSpec], dictionary: str, source: str | None = None,
                   target: str | None = None, convert: str | None = "auto", fmt: str = "auto",
                   max_lines: int | None = None, data_dir: str | None = None) -> BilingualData:
    """Read the corpora (LANG=SOURCE specs; at most `max_lines` lines per language), choose the two languages
    and load the dictionary in their script."""
    corpora = read_corpora(corpus_specs, data_dir, limit=max_lines)
    source, target = pick_languages(corpora, source, target)
    return BilingualData(corpora, source, target,
                         dictionary_for_corpora(dictionary, corpora, source, target, convert, fmt, data_dir))
