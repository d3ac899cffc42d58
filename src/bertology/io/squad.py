"""Extractive QA data in SQuAD v1.1 format (SQuAD, DRCD, CMRC 2018, XQuAD)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .storage import read_json

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
        keep = sorted(random.Random(seed).sample(range(len(self.examples)), n))
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


def _kind(value) -> str:
    return {str: "a string", list: "a list", dict: "an object", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _wrong(obj, name: str, want: type) -> str:
    """What is wrong with obj[name]: missing, or of the wrong JSON type (a string where a list belongs)."""
    if not isinstance(obj, dict):
        return f"expected an object with field {name!r}, found {_kind(obj)}"
    if name not in obj:
        return f"missing field {name!r}"
    return f"field {name!r} is {_kind(obj[name])}, not {_kind(want())}"


def _check_question(qa, qid, context, seen: set[str], require_answers: bool, check_offsets: bool = True
                    ) -> tuple[str | None, list[str], list[int], int]:
    """(what is wrong with one question or None, its answer texts, their starts, how many were relocated);
    without check_offsets the starts are not looked at (-1): see load_squad."""
    if qid is None:
        return "missing field 'id'", [], [], 0
    if str(qid) in seen:
        return "duplicate id", [], [], 0
    if not isinstance(qa.get("question"), str):
        return _wrong(qa, "question", str), [], [], 0
    if not isinstance(context, str):
        return ("missing field 'context'" if context is None else
                f"field 'context' is {_kind(context)}, not a string"), [], [], 0
    if not context.strip():
        return "empty context", [], [], 0
    if not isinstance(qa.get("answers", []), list):
        return "field 'answers' is not a list", [], [], 0
    # answers relocated before a bad one still count, as a skipped question's did before
    answers, starts, relocated = [], [], 0
    for n, ans in enumerate(qa.get("answers", [])):
        if not isinstance(ans, dict):
            return f"answer {n} is {_kind(ans)}, not an object {{\"text\", \"answer_start\"}}", [], [], relocated
        if not isinstance(ans.get("text"), str):
            return f"answer {n}: {_wrong(ans, 'text', str)}", [], [], relocated
        if check_offsets and "answer_start" not in ans:
            return f"answer {n}: missing field 'answer_start'", [], [], relocated
        if not ans["text"].strip():
            return f"answer {n}: empty text", [], [], relocated
        if not check_offsets:
            answers.append(ans["text"])
            starts.append(-1)
            continue
        start = ans["answer_start"]
        found = _relocate(context, ans["text"], start)
        if found is None:
            return (f"answer {n}: answer_start {start} does not match its text {ans['text']!r}, which does not "
                    f"occur in the context"), [], [], relocated
        relocated += found != start
        answers.append(ans["text"])
        starts.append(found)
    if require_answers and not answers:
        return "no answers", [], [], 0
    return None, answers, starts, relocated


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
        doc = read_json(path)
    except (UnicodeDecodeError, OSError, EOFError) as e:   # e.g. a truncated .gz
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise UserError(f"{path}: {_wrong(doc, 'data', list)} (expected SQuAD v1.1 format: "
                        f'{{"data": [{{"paragraphs": [{{"context", "qas"}}]}}]}})')
    examples: list[QAExample] = []
    skipped = relocated = 0
    seen: set[str] = set()
    for a_i, article in enumerate(doc["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"{path}: data[{a_i}]: {_wrong(article, 'paragraphs', list)}")
        for p_i, para in enumerate(paragraphs):
            where = f"data[{a_i}].paragraphs[{p_i}]"
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                raise UserError(f"{path}: {where}: {_wrong(para, 'qas', list)}")
            context = para.get("context")
            for q_i, qa in enumerate(para["qas"]):
                qid = qa.get("id") if isinstance(qa, dict) else None
                problem, answers, starts, moved = _check_question(qa, qid, context, seen, require_answers,
                                                                check_offsets)
                relocated += moved
                if problem:
                    if skip_bad:
                        skipped += 1
                        continue
                    name = f"question {qid!r}" if qid is not None else f"{where}.qas[{q_i}]"
                    raise UserError(f"{path}: {name}: {problem} (use `skip_bad` to skip such questions)",
                                    fields=('skip_bad',))
                seen.add(str(qid))
                examples.append(QAExample(str(qid), qa["question"], context, answers, starts,
                                          str(article.get("title", ""))))
    if not examples:
        raise UserError(f"{path}: no usable questions" + (f" ({skipped} skipped as bad)" if skipped else ""))
    return QADataset(str(path), examples, skipped, relocated)


