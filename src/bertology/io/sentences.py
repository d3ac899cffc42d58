"""Sentence files for the word-senses experiment: labelled TSV, plain text, or a built-in demo set."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .storage import open_text

# ==== sentence files (word senses) ============================================================================
DEMO_DIR = Path(__file__).parents[1] / "demo"
# Built-in sentence sets (name -> (file, default target)), written by the bertology team.
# Position-balanced sense sets (demo/senses/README.md): name -> (file, target, language). In each, both senses put
# the target at the same positions (8 of 16 sentences sentence-initial per sense), so position cannot stand in
# for sense; the Chinese ones are written in Traditional characters (the study adds their Simplified forms).
SENSE_SETS = {
    "zh-guo": ("senses/zh_guo.tsv", "果", "zh"), "zh-da": ("senses/zh_da.tsv", "打", "zh"),
    "zh-hua": ("senses/zh_hua.tsv", "花", "zh"), "zh-yisi": ("senses/zh_yisi.tsv", "意思", "zh"),
    "en-apple": ("senses/en_apple.tsv", "apple", "en"), "en-bank": ("senses/en_bank.tsv", "bank", "en"),
    "en-bat": ("senses/en_bat.tsv", "bat", "en"), "en-spring": ("senses/en_spring.tsv", "spring", "en"),
}
# Built-in sentence sets (name -> (file, default target)): the lecture's two demos and every sense set.
DEMO_SETS = {"apple-zh": ("senses/zh_guo.tsv", "果"), "apple-en": ("senses/en_apple.tsv", "apple"),
             **{name: (f, t) for name, (f, t, _) in SENSE_SETS.items()}}


def _refuse_headerless_labels(path: Path, lines: list[str]) -> None:
    """Plain text whose every line is `short field<TAB>text`, with few distinct first fields, is a labelled
    file without its header: read as plain text, each label became part of its sentence, silently."""
    rows = [line.split("\t") for line in lines if line.strip()]
    if len(rows) >= 2 and all(len(r) == 2 and 0 < len(r[0].strip()) <= 30 and r[1].strip() for r in rows):
        firsts = {r[0].strip() for r in rows}
        if len(firsts) < len(rows):
            raise UserError(f"{path}:1: the lines look like label<TAB>sentence (labels {', '.join(sorted(firsts)[:3])}"
                            f"...) but the header line 'label<TAB>sentence' is missing: add it")


def read_sentences(path: str | Path) -> tuple[list[str], list[str], str]:
    """Read a sentence file: a TSV with header `label<TAB>sentence` (label may be empty), or plain text with
    one sentence a line. A built-in demo set name (see DEMO_SETS) also works.

    Returns (sentences, labels, source name). Labels are "" for plain text.
    """
    builtin = str(path) if str(path) in DEMO_SETS else None
    if builtin:
        path = DEMO_DIR / DEMO_SETS[builtin][0]
    path = Path(path)
    with open_text(path) as f:
        lines = [line.rstrip("\n").rstrip("\r") for line in f]
    if lines:       # a UTF-8 BOM (Windows editors write one) hid the header, as the corpus reader strips it
        lines[0] = lines[0].lstrip("\ufeff")
    sentences, labels = [], []
    tsv = bool(lines) and lines[0].strip().lower().split("\t") == ["label", "sentence"]
    if not tsv:
        _refuse_headerless_labels(path, lines)
    for n, line in enumerate(lines[1:] if tsv else lines, start=2 if tsv else 1):
        if not line.strip():
            continue
        if tsv:
            fields = line.split("\t")
            if len(fields) != 2:
                raise UserError(f"{path}:{n}: expected 2 tab-separated fields (label, sentence), found {len(fields)}")
            label, sentence = fields[0].strip(), fields[1].strip()
            if not sentence:
                raise UserError(f"{path}:{n}: field 'sentence' is empty")
        else:
            label, sentence = "", line.strip()
        sentences.append(sentence)
        labels.append(label)
    if not sentences:
        raise UserError(f"{path}: no sentences")
    # a built-in set is named by its name and file, not by this machine's install path
    return sentences, labels, (f"{builtin} ({path.name})" if builtin else str(path))

