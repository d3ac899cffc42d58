"""QA scoring: the official SQuAD v1.1 (English) or CMRC 2018 (Chinese; also DRCD) EM / F1 (in metrics.py),
the language that picks between them, and the verdict's yardsticks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...io.squad import QADataset, QAExample
from ...metrics import cjk_fraction, qa_scores


def detect_lang(examples: list[QAExample]) -> str:
    """'zh' when CJK characters make up over a third of the contexts' characters, else 'en'."""
    sample = list(dict.fromkeys(e.context for e in examples[:200]))
    return "zh" if cjk_fraction(sample) > 0.33 else "en"


def resolve_lang(lang: str, examples: list[QAExample]) -> str:
    if lang == "auto":
        return detect_lang(examples)
    if lang not in ("en", "zh"):
        raise UserError(f"`lang` must be auto, en or zh, not {lang!r}", fields=('lang',))
    return lang


@dataclass
class QAScore:
    name: str
    path: str
    lang: str                 # which official metric: en = SQuAD v1.1, zh = CMRC 2018 (also for DRCD)
    exact_match: float        # 0-100
    f1: float                 # 0-100
    total: int
    missing: int              # questions without a prediction (scored 0)
    skipped: int = 0          # bad items dropped by --skip-bad
    relocated: int = 0        # answers whose answer_start was off (see io/squad.py)
    convert: str | None = None  # opencc conversion applied to the data before prediction
    windows: int | None = None
    seconds: float | None = None

    def line(self) -> str:
        """The score as the terminal shows it."""
        return (f"{self.name:28s} {self.lang}  EM {self.exact_match:6.2f}  F1 {self.f1:6.2f}  "
                f"({self.total} questions, {self.missing} unanswered)")


def score(dataset: QADataset, answers: dict[str, str], lang: str = "auto", name: str | None = None) -> QAScore:
    lang = resolve_lang(lang, dataset.examples)
    if answers and not any(e.id in answers for e in dataset.examples):
        # every question "unanswered" scores 0: the mark of predictions for another data set, not of a model
        raise UserError(f"the predictions answer none of the {len(dataset.examples)} questions of "
                        f"{dataset.path} (no question id in common; e.g. {next(iter(answers))!r})")
    r = qa_scores(dataset.references(), answers, lang)
    return QAScore(name or Path(dataset.path).stem, dataset.path, lang, r["exact_match"], r["f1"], r["total"],
                   r["missing"], dataset.skipped, dataset.relocated)


def load_predictions(path: str | Path) -> dict[str, str]:
    from ...io.storage import read_json

    doc = read_json(path)
    if not isinstance(doc, dict):
        raise UserError(f'{path}: predictions must be a JSON object {{"question id": "answer text"}}')
    for k, v in doc.items():
        if not isinstance(v, str):
            raise UserError(f"{path}: question {k!r}: the prediction is {type(v).__name__}, not a string")
    return doc


def overlap_heuristic_answer(question: str, context: str, length: int = 6) -> str:
    """A model-free answer: the `length` characters right after the context window (as long as the question)
    that shares the most distinct characters with the question. Questions restate their context, and in
    Chinese the answer often follows the restated part: this scores CMRC-style F1 ~13 on XQuAD-zh and DRCD
    dev, the floor a zero-shot model has to clear before its Chinese F1 means reading."""
    wanted = {ch for ch in question if ch.isalnum()}
    w = max(len(question), 1)
    best, best_end = -1, 0
    for end in range(1, len(context) + 1):
        hits = len(wanted & set(context[max(0, end - w):end]))
        if hits > best:
            best, best_end = hits, end
    return context[best_end:best_end + length]


def per_question_f1(examples, answers: dict[str, str]) -> np.ndarray:
    """CMRC 2018 F1 (0-100) per question, max over its references: the same metric for both languages (it
    segments Chinese into characters and English into words), so English and Chinese F1 compare."""
    from ...metrics import cmrc_f1

    return np.array([100 * max((cmrc_f1(answers.get(e.id, ""), r) for r in e.answers), default=0.0)
                     for e in examples])


def transfer_measures(zh: list[QAExample], zh_answers: dict[str, str], en: list[QAExample],
                      en_answers: dict[str, str]) -> dict:
    """The verdict's numbers on parallel questions (XQuAD en / zh): the model's Chinese and English F1 and the
    model-free heuristic's, per question and with one metric, and the Chinese lead over the heuristic."""
    from ...metrics import paired_difference

    zh_f1, en_f1 = per_question_f1(zh, zh_answers), per_question_f1(en, en_answers)
    heur = per_question_f1(zh, {e.id: overlap_heuristic_answer(e.question, e.context) for e in zh})
    diff = paired_difference(zh_f1, heur)
    return {"zh_f1": float(zh_f1.mean()), "en_f1": float(en_f1.mean()), "heuristic_f1": float(heur.mean()),
            "questions": len(zh), "ci": diff["ci"], "effect": diff["mean"]}
