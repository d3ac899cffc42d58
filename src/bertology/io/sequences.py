"""Sequence classification files (DNA, protein, music) for the cross-disciplinary experiment."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .storage import open_text

# ==== sequence classification (DNA, protein, music) ===========================================================
# One in-memory form for every sequence task: each example is a list of symbols (nucleotides, residues, note
# tokens) with a label, its source line (so messages and saved splits point into the file) and, where the data
# has them, a group (a music piece) that a split must never cut across.

_SEQ_CHARS = re.compile(r"^[A-Za-z*\-]+$")   # letters incl. ambiguity codes (N, D, S, R, X, B...); '*' stop; '-' gap


@dataclass
class SequenceData:
    sequences: list[list[str]]
    labels: list[str]
    lines: list[int]                          # 1-based line in the source file (FASTA: the header line)
    groups: list[str] | None = None           # split unit (music: the piece); None: every example its own unit
    path: str = ""
    format: str = ""
    skipped: list[str] = field(default_factory=list)   # "file:line: reason" for rows dropped by --skip-bad
    # symbols outside the format's alphabet (splice: IUPAC ambiguity codes such as N, D, S, R) -> occurrences;
    # kept and mapped like any other symbol, but counted so a reader sees them
    outside_alphabet: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> "SequenceData":
        return SequenceData([self.sequences[i] for i in idx], [self.labels[i] for i in idx],
                            [self.lines[i] for i in idx], [self.groups[i] for i in idx] if self.groups else None,
                            self.path, self.format, self.skipped, self.outside_alphabet)


def kmers(symbols: list[str], k: int) -> list[str]:
    """Overlapping k-mers, stride 1 (as DNABERT): ACGTA, k=3 -> ACG CGT GTA. Token symbols join with '_'."""
    if k <= 1:
        return list(symbols)
    if len(symbols) < k:
        return ["_".join(symbols) if any(len(s) > 1 for s in symbols) else "".join(symbols)]
    sep = "_" if any(len(s) > 1 for s in symbols) else ""
    return [sep.join(symbols[i:i + k]) for i in range(len(symbols) - k + 1)]


def _detect_sequence_format(path: Path, first: str) -> str:
    name = path.name.lower()
    if name.endswith((".fasta", ".fa", ".faa", ".fasta.gz", ".fa.gz")) or first.startswith(">"):
        return "fasta"
    low = first.lower()
    if low.startswith("composer\t"):
        return "music"
    if low.replace(" ", "").startswith("label\tid\tsequence"):
        return "protein-tsv"
    if "splice" in name:
        return "splice"
    return "table"


# The alphabet of each built-in format (a user's table or FASTA may use any symbols).
ALPHABETS = {"splice": set("ACGT"), "protein-tsv": set("ACDEFGHIKLMNPQRSTVWY")}


class _SequenceReader:
    """Collects the examples of one file: validates each row, and stops or skips (and lists) a bad one."""

    def __init__(self, path: Path, fmt: str, symbols: str, kmer: int, skip_bad: bool):
        self.path, self.symbols, self.kmer, self.skip_bad = path, symbols, kmer, skip_bad
        self.data = SequenceData([], [], [], [] if fmt == "music" else None, str(path), fmt)
        self.alphabet = ALPHABETS.get(fmt)
        self.shortest = 10 ** 9                 # symbols in the shortest sequence read

    def bad(self, lineno: int, why: str) -> None:
        msg = f"{self.path}:{lineno}: {why}"
        if not self.skip_bad:
            raise UserError(msg + " (use `skip_bad` to skip bad rows)", fields=('skip_bad',))
        self.data.skipped.append(msg)

    def add(self, lineno: int, seq: str, label: str, group: str | None = None) -> None:
        seq, label = seq.strip(), label.strip()
        if not label:
            return self.bad(lineno, "empty label")
        mode = self.symbols if self.symbols != "auto" else ("tokens" if any(c.isspace() for c in seq) else "chars")
        if mode == "tokens":
            syms = seq.split()
        else:
            if not _SEQ_CHARS.match(seq):
                what = "empty sequence" if not seq else \
                    f"sequence has character {next(c for c in seq if not _SEQ_CHARS.match(c))!r} (expected letters)"
                return self.bad(lineno, what)
            syms = list(seq.upper())
        if not syms:
            return self.bad(lineno, "empty sequence")
        data = self.data
        if self.alphabet:
            for sym in syms:
                if sym not in self.alphabet:
                    data.outside_alphabet[sym] = data.outside_alphabet.get(sym, 0) + 1
        self.shortest = min(self.shortest, len(syms))
        data.sequences.append(kmers(syms, self.kmer))
        data.labels.append(label)
        data.lines.append(lineno)
        if data.groups is not None:
            data.groups.append(group or f"line{lineno}")


def _read_fasta(reader: _SequenceReader, raw: list[str], first: str) -> None:
    header, header_line, chunks = None, 0, []

    def flush():
        if header is None:
            return
        fields = [x for x in re.split(r"[\s|]+", header.strip()) if x]
        if len(fields) < 2:
            reader.bad(header_line, "FASTA header has no label (expected '>ID LABEL')")
        else:
            reader.add(header_line, "".join(chunks), fields[-1])

    for lineno, line in enumerate(raw, 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            flush()
            header, header_line, chunks = line[1:], lineno, []
        elif header is None:
            reader.bad(lineno, "sequence line before the first '>' header")
        else:
            chunks.append(line)
    flush()


def _delimited_rows(reader: _SequenceReader, raw: list[str], first: str, delim: str, width: int,
                    is_header: Callable[[list[str]], bool]):
    """(line number, stripped cells) of every row with `width` fields; the first line is dropped when
    `is_header(its lower-cased cells)` says so, and a later copy of it (files concatenated with their headers)
    is a bad row: read as data, its `label` cell became a class of its own."""
    header = None
    for lineno, line in enumerate(raw, 1):
        if not line.strip():
            continue
        cells = [c.strip() for c in next(csv.reader([line], delimiter=delim))]
        low = [c.lower() for c in cells]
        if header is None and (lineno == 1 or line is first) and is_header(low):
            header = (lineno, low)
            continue
        if header is not None and low == header[1]:
            reader.bad(lineno, f"repeats the header row of line {header[0]} (files joined with their headers?)")
            continue
        if len(cells) != width:
            reader.bad(lineno, f"expected {width} fields separated by {delim!r}, found {len(cells)}")
            continue
        yield lineno, cells


def _read_splice(reader: _SequenceReader, raw: list[str], first: str) -> None:
    # the common CSV copy has a header line, the original splice.data none
    for lineno, cells in _delimited_rows(reader, raw, first, ",", 3, lambda low: bool(low) and low[0] == "class"):
        reader.add(lineno, cells[2], cells[0])


def _read_protein_tsv(reader: _SequenceReader, raw: list[str], first: str) -> None:
    for lineno, cells in _delimited_rows(reader, raw, first, "\t", 3, lambda low: True):
        reader.add(lineno, cells[2], cells[0])


def _read_music(reader: _SequenceReader, raw: list[str], first: str) -> None:
    for lineno, cells in _delimited_rows(reader, raw, first, "\t", 4, lambda low: True):
        reader.add(lineno, cells[3], cells[0], group=cells[1])


def _read_table(reader: _SequenceReader, raw: list[str], first: str) -> None:
    columns = {"sequence": 0, "label": 1}     # a header line may swap them

    def is_header(low: list[str]) -> bool:
        if sorted(low) != ["label", "sequence"]:
            return False
        columns.update(sequence=low.index("sequence"), label=low.index("label"))
        return True

    delim = "\t" if "\t" in first else ","
    for lineno, cells in _delimited_rows(reader, raw, first, delim, 2, is_header):
        reader.add(lineno, cells[columns["sequence"]], cells[columns["label"]])


# One reader per format; "auto" is resolved by _detect_sequence_format first.
SEQUENCE_READERS: dict[str, Callable[[_SequenceReader, list[str], str], None]] = {
    "splice": _read_splice, "protein-tsv": _read_protein_tsv, "fasta": _read_fasta, "music": _read_music,
    "table": _read_table}
SEQUENCE_FORMATS = ("auto", *SEQUENCE_READERS)


def load_sequences(path: str | Path, fmt: str = "auto", symbols: str = "auto", kmer: int = 1,
                   skip_bad: bool = False) -> SequenceData:
    """Read a sequence classification file.

    Formats (`fmt="auto"` detects them from the name and first line):
    - `splice`: UCI splice-junction, `class, instance name, sequence` (fields padded with spaces), with the
      header line of the common CSV copy or without it (the original `splice.data`).
    - `protein-tsv`: `label<TAB>id<TAB>sequence` with a header line (MultiLoc).
    - `fasta`: `>ID LABEL` headers (the label is the last field split on whitespace or `|`), sequence lines below.
    - `music`: `composer<TAB>piece<TAB>part<TAB>notes` with a header; the piece is the split group.
    - `table`: any CSV/TSV of `sequence,label` (tab if the first line has one); a first line whose fields are
      `sequence` and `label` (either order) is a header.
    Symbols: `chars` (DNA, protein) or `tokens` (whitespace-separated, music); `auto`: tokens when the sequence
    contains whitespace. Ambiguity codes stay symbols of their own. `kmer > 1` turns symbols into overlapping
    k-mers. A bad row raises UserError naming file and line, or is skipped (and listed) with `skip_bad`.
    """
    path = Path(path)
    if fmt not in SEQUENCE_FORMATS:
        raise UserError(f"format must be one of {', '.join(SEQUENCE_FORMATS)}, not {fmt!r}")
    if symbols not in ("auto", "chars", "tokens"):
        raise UserError(f"symbols must be auto, chars or tokens, not {symbols!r}")
    if kmer < 1:
        raise UserError(f"k-mer size must be >= 1, not {kmer}")
    with open_text(path) as f:
        try:
            raw = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    first = next((ln for ln in raw if ln.strip()), "")
    if not first:
        raise UserError(f"{path}: empty file")
    if fmt == "auto":
        fmt = _detect_sequence_format(path, first)
    reader = _SequenceReader(path, fmt, symbols, kmer, skip_bad)
    SEQUENCE_READERS[fmt](reader, raw, first)
    data = reader.data
    if not data.labels:
        raise UserError(f"{path}: no usable examples" + (f" ({len(data.skipped)} bad rows skipped)" if data.skipped else ""))
    if kmer > reader.shortest:
        # a sequence shorter than k is one "k-mer" of its own: every such example its own symbol, nothing to learn
        raise UserError(f"`kmer` {kmer}: longer than the shortest sequence of {path} ({reader.shortest} symbols)",
                        fields=("kmer",))
    return data
