"""Sequence classification files (DNA, protein, music) for the cross-disciplinary experiment."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .storage import open_text

# ==== sequence classification (DNA, protein, music) ===========================================================
# One in-memory form for every sequence task: each example is a list of symbols (nucleotides, residues, note
# tokens) with a label, its source line (so messages and saved splits point into the file) and, where the data
# has them, a group (a music piece) that a split must never cut across.

SEQUENCE_FORMATS = ("auto", "splice", "protein-tsv", "fasta", "music", "table")
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

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> "SequenceData":
        return SequenceData([self.sequences[i] for i in idx], [self.labels[i] for i in idx],
                            [self.lines[i] for i in idx], [self.groups[i] for i in idx] if self.groups else None,
                            self.path, self.format, self.skipped)


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
    data = SequenceData([], [], [], [] if fmt == "music" else None, str(path), fmt)

    def bad(lineno: int, why: str) -> None:
        msg = f"{path}:{lineno}: {why}"
        if not skip_bad:
            raise UserError(msg + " (use --skip-bad to skip bad rows)")
        data.skipped.append(msg)

    def add(lineno: int, seq: str, label: str, group: str | None = None) -> None:
        seq, label = seq.strip(), label.strip()
        if not label:
            return bad(lineno, "empty label")
        mode = symbols if symbols != "auto" else ("tokens" if any(c.isspace() for c in seq) else "chars")
        if mode == "tokens":
            syms = seq.split()
        else:
            if not _SEQ_CHARS.match(seq):
                what = "empty sequence" if not seq else \
                    f"sequence has character {next(c for c in seq if not _SEQ_CHARS.match(c))!r} (expected letters)"
                return bad(lineno, what)
            syms = list(seq.upper())
        if not syms:
            return bad(lineno, "empty sequence")
        data.sequences.append(kmers(syms, kmer))
        data.labels.append(label)
        data.lines.append(lineno)
        if data.groups is not None:
            data.groups.append(group or f"line{lineno}")

    if fmt == "fasta":
        header, header_line, chunks = None, 0, []

        def flush():
            if header is None:
                return
            fields = [x for x in re.split(r"[\s|]+", header.strip()) if x]
            if len(fields) < 2:
                bad(header_line, "FASTA header has no label (expected '>ID LABEL')")
            else:
                add(header_line, "".join(chunks), fields[-1])

        for lineno, line in enumerate(raw, 1):
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            if line.startswith(">"):
                flush()
                header, header_line, chunks = line[1:], lineno, []
            elif header is None:
                bad(lineno, "sequence line before the first '>' header")
            else:
                chunks.append(line)
        flush()
    else:
        delim = {"splice": ",", "protein-tsv": "\t", "music": "\t"}.get(fmt) or ("\t" if "\t" in first else ",")
        width = {"splice": 3, "protein-tsv": 3, "music": 4, "table": 2}[fmt]
        order = (0, 1)  # table: (sequence column, label column)
        for lineno, line in enumerate(raw, 1):
            if not line.strip():
                continue
            row = next(csv.reader([line], delimiter=delim))
            cells = [c.strip() for c in row]
            if lineno == 1 or line is first:
                low = [c.lower() for c in cells]
                if fmt == "splice" and low and low[0] == "class":
                    continue
                if fmt in ("protein-tsv", "music"):
                    continue
                if fmt == "table" and sorted(low) == ["label", "sequence"]:
                    order = (low.index("sequence"), low.index("label"))
                    continue
            if len(cells) != width:
                bad(lineno, f"expected {width} fields separated by {delim!r}, found {len(cells)}")
                continue
            if fmt == "splice":
                add(lineno, cells[2], cells[0])
            elif fmt == "protein-tsv":
                add(lineno, cells[2], cells[0])
            elif fmt == "music":
                add(lineno, cells[3], cells[0], group=cells[1])
            else:
                add(lineno, cells[order[0]], cells[order[1]])
    if not data.labels:
        raise UserError(f"{path}: no usable examples" + (f" ({len(data.skipped)} bad rows skipped)" if data.skipped else ""))
    return data

