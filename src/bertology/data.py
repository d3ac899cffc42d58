"""Data loaders: every file format the experiments read, with validation that names the file and line at
fault (`UserError`, exit code 2). Data sets are found by name with `storage.find_dataset`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .storage import open_text, read_lines

# ==== sentence files (word senses) ============================================================================
DEMO_DIR = Path(__file__).parent / "demo"
# Built-in sentence sets (name -> (file, default target)), written by the bertology team.
DEMO_SETS = {"apple-zh": ("apple_zh.tsv", "果"), "apple-en": ("apple_en.tsv", "apple")}


def read_sentences(path: str | Path) -> tuple[list[str], list[str], str]:
    """Read a sentence file: a TSV with header `label<TAB>sentence` (label may be empty), or plain text with
    one sentence a line. A built-in demo set name (see DEMO_SETS) also works.

    Returns (sentences, labels, source name). Labels are "" for plain text.
    """
    if str(path) in DEMO_SETS:
        path = DEMO_DIR / DEMO_SETS[str(path)][0]
    path = Path(path)
    with open_text(path) as f:
        lines = [line.rstrip("\n").rstrip("\r") for line in f]
    sentences, labels = [], []
    tsv = bool(lines) and lines[0].strip().lower().split("\t") == ["label", "sentence"]
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
    return sentences, labels, str(path)

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
        raise UserError(f"--corpus {spec!r}: expected LANG=FILE[#COLUMN][@MAX_LINES], e.g. en=corpus.txt.gz "
                        f"or zh=tatoeba-cmn-eng#1")
    return CorpusSpec(m["lang"], m["src"], int(m["col"]) if m["col"] else None,
                      int(m["max"]) if m["max"] else None)


def _source_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.name.endswith((".txt", ".txt.gz", ".json", ".json.gz")) and not p.name.startswith("."))
        if not files:
            raise UserError(f"{path}: directory holds no .txt / .txt.gz / .json files")
        return files
    return [path]


def _squad_contexts(path: Path) -> list[str]:
    import json

    try:
        with open_text(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
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


def read_corpora(specs: list[str], data_dir: str | None = None) -> dict[str, list[str]]:
    """{language: lines} from LANG=SOURCE specs (several sources of one language are concatenated)."""
    if not specs:
        raise UserError("no --corpus given: pass at least one LANG=FILE")
    out: dict[str, list[str]] = {}
    for s in specs:
        spec = parse_corpus_spec(s)
        out.setdefault(spec.lang, []).extend(read_corpus(spec, data_dir))
    for lang, lines in out.items():
        if not lines:
            raise UserError(f"--corpus {lang}=...: no text lines found")
    return out


# ==== sequence classification (DNA, protein, music) ===========================================================
# One in-memory form for every sequence task: each example is a list of symbols (nucleotides, residues, note
# tokens) with a label, its source line (so messages and saved splits point into the file) and, where the data
# has them, a group (a music piece) that a split must never cut across.
import csv as _csv
import re as _re
from dataclasses import dataclass as _dataclass, field as _field

SEQUENCE_FORMATS = ("auto", "splice", "protein-tsv", "fasta", "music", "table")
_SEQ_CHARS = _re.compile(r"^[A-Za-z*\-]+$")   # letters incl. ambiguity codes (N, D, S, R, X, B...); '*' stop; '-' gap


@_dataclass
class SequenceData:
    sequences: list[list[str]]
    labels: list[str]
    lines: list[int]                          # 1-based line in the source file (FASTA: the header line)
    groups: list[str] | None = None           # split unit (music: the piece); None: every example its own unit
    path: str = ""
    format: str = ""
    skipped: list[str] = _field(default_factory=list)   # "file:line: reason" for rows dropped by --skip-bad

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
            fields = [x for x in _re.split(r"[\s|]+", header.strip()) if x]
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
            row = next(_csv.reader([line], delimiter=delim))
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

# ==== extractive QA (SQuAD format) ============================================================================
# SQuAD v1.1 JSON: {"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers":
# [{"text", "answer_start"}]}]}]}]}. DRCD, CMRC 2018 and XQuAD use the same layout.
#
# Offsets policy. Real files are not all exact: the CMRC 2018 trial file has a few answers whose
# `answer_start` is off by some characters, and the rebuilt SQuAD train file stores the *first* occurrence
# of each answer text (the official offset in ~97% of cases). A text that does occur in the context but not
# at `answer_start` is *relocated* to the occurrence nearest the given offset and counted (`relocated`); an
# answer text that does not occur in the context at all is a bad item. Scoring only compares answer texts,
# so offsets matter for training labels alone.
import json as _json
import random as _random


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[str]          # reference texts (several for dev sets); may be empty for predict-only data
    answer_starts: list[int]    # character offsets in `context`, after relocation
    title: str = ""


@dataclass
class QADataset:
    path: str
    examples: list[QAExample]
    skipped: int = 0            # bad items dropped with skip_bad=True
    relocated: int = 0          # answers whose answer_start was off and was moved to where the text is

    def sample(self, n: int | None, seed: int = 0) -> "QADataset":
        """A seeded random sample of n questions, kept in file order: parallel files (XQuAD en/zh) of the
        same length give the same questions for the same seed."""
        if n is None or n >= len(self.examples):
            return self
        keep = sorted(_random.Random(seed).sample(range(len(self.examples)), n))
        return QADataset(self.path, [self.examples[i] for i in keep], self.skipped, self.relocated)

    def references(self) -> dict[str, list[str]]:
        return {e.id: e.answers for e in self.examples}


def _relocate(context: str, text: str, start) -> int | None:
    if isinstance(start, int) and context[start:start + len(text)] == text:
        return start
    hits = [m.start() for m in re.finditer(re.escape(text), context)]
    if not hits:
        return None
    anchor = start if isinstance(start, int) else 0
    return min(hits, key=lambda h: abs(h - anchor))


def load_squad(path: str | Path, skip_bad: bool = False, require_answers: bool = True,
               check_offsets: bool = True) -> QADataset:
    """Read and validate a SQuAD-format file (.json or .json.gz).

    A missing field, an empty context, or an answer text absent from its context raises UserError naming the
    file and question id; with skip_bad=True such questions are dropped and counted instead. Questions
    without answers are bad only when `require_answers` (training / evaluation; not for prediction).
    check_offsets=False (data that is only scored): the official SQuAD v1.1 and CMRC 2018 scripts score the
    answer texts of every question, wherever (and whether) the text occurs in the context; 174 of CMRC 2018
    dev's 3,219 answers do not occur verbatim, and dropping them changes EM. Offsets matter for training only.
    """
    path = Path(path)
    try:
        with open_text(path) as f:
            doc = _json.load(f)
    except _json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise UserError(f"{path}: missing field 'data' (expected SQuAD v1.1 format: "
                        f'{{"data": [{{"paragraphs": [{{"context", "qas"}}]}}]}})')
    examples: list[QAExample] = []
    skipped = relocated = 0
    seen: set[str] = set()

    for a_i, article in enumerate(doc["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"{path}: data[{a_i}]: missing field 'paragraphs'")
        for p_i, para in enumerate(paragraphs):
            where = f"data[{a_i}].paragraphs[{p_i}]"
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                raise UserError(f"{path}: {where}: missing field 'qas'")
            context = para.get("context")
            for q_i, qa in enumerate(para["qas"]):
                qid = qa.get("id") if isinstance(qa, dict) else None
                name = f"question {qid!r}" if qid is not None else f"{where}.qas[{q_i}]"
                problem = None
                answers, starts = [], []
                if qid is None:
                    problem = "missing field 'id'"
                elif str(qid) in seen:
                    problem = "duplicate id"
                elif not isinstance(qa.get("question"), str):
                    problem = "missing field 'question'"
                elif not isinstance(context, str):
                    problem = "missing field 'context'"
                elif not context.strip():
                    problem = "empty context"
                elif not isinstance(qa.get("answers", []), list):
                    problem = "field 'answers' is not a list"
                else:
                    for n, ans in enumerate(qa.get("answers", [])):
                        if not isinstance(ans, dict) or not isinstance(ans.get("text"), str):
                            problem = f"answer {n}: missing field 'text'"
                            break
                        if "answer_start" not in ans:
                            problem = f"answer {n}: missing field 'answer_start'"
                            break
                        if not ans["text"].strip():
                            problem = f"answer {n}: empty text"
                            break
                        start = ans["answer_start"]
                        found = _relocate(context, ans["text"], start) if check_offsets else -1
                        if found is None:
                            problem = (f"answer {n}: answer_start {start} does not match its text "
                                       f"{ans['text']!r}, which does not occur in the context")
                            break
                        relocated += check_offsets and found != start
                        answers.append(ans["text"])
                        starts.append(found)
                    if problem is None and require_answers and not answers:
                        problem = "no answers"
                if problem:
                    if skip_bad:
                        skipped += 1
                        continue
                    raise UserError(f"{path}: {name}: {problem} (use --skip-bad to skip such questions)")
                seen.add(str(qid))
                examples.append(QAExample(str(qid), qa["question"], context, answers, starts,
                                          str(article.get("title", ""))))
    if not examples:
        raise UserError(f"{path}: no usable questions" + (f" ({skipped} skipped as bad)" if skipped else ""))
    return QADataset(str(path), examples, skipped, relocated)


# ==== bilingual dictionaries ==================================================================================
# Two formats: MUSE (`source<TAB>target`, one pair a line, several lines per source word) and CC-CEDICT
# (`Traditional Simplified [pinyin] /gloss/gloss/`, here read straight from the distributed .zip). Chinese comes
# in two scripts (MUSE: Traditional; most corpora: Simplified), so a dictionary can be converted with opencc;
# the number of words the conversion changed is kept so coverage can be reported.
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
SCRIPT_CONVERSIONS = ("t2s", "s2t")


def has_cjk(text: str) -> bool:
    return bool(_CJK_CHAR.search(text))


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
        raise UserError(f"--convert must be one of none, {', '.join(SCRIPT_CONVERSIONS)}, not {convert!r}")
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
    raise UserError(f"--dict-format must be auto, muse or cedict, not {fmt!r}")
