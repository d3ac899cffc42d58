"""QA features: the settings that cut (question, context) pairs into windows, and the windows themselves.

Each pair is tokenised into windows of `max_length` tokens that overlap by `doc_stride` tokens
(`return_overflowing_tokens` + offset mappings), so long contexts are fully covered. Training labels the
answer's first/last token in the window that contains the whole answer; windows that do not contain it point at
[CLS] (index 0), as in BERT's SQuAD recipe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ...core.precision import PREDICT_PRECISIONS, check_precision
from ...errors import UserError
from ...io.squad import QAExample
from ..configs import QASettings


def validate_settings(s: QASettings, precisions: tuple[str, ...] = PREDICT_PRECISIONS) -> QASettings:
    """Refuse settings no model can honour; where a user's settings enter (once per command, before the model
    loads). `precisions`: what the command runs in (training: fp32 | bf16; prediction also bf16-verified)."""
    # QASettings checked its bounds and choices as it was made; what it allows depends on the command
    check_precision(s.precision, precisions)
    return s


def fit_to_model(tokenizer, model_config, s: QASettings) -> QASettings:
    """Clamp max_length to what the model can take (and the question's share of a short window), and refuse a
    stride that leaves no room for the context. Idempotent: every prediction entry point calls it."""
    from ...core.adapter import usable_length

    # the model's positions (less RoBERTa's offset of pad_token_id + 1) and the tokenizer's limit if it has one
    limits = [s.max_length, usable_length(tokenizer, model_config)]
    max_len = min(limits)
    if max_len < 16:
        raise UserError(f"`max_length` {max_len} is too short for a question and a context "
                        f"(the model allows at most {min(limits[1:], default=max_len)} tokens)", fields=('max_length',))
    query_len = min(s.max_query_len, (max_len - 3) // 2)   # short windows: questions get at most half
    room = max_len - query_len - 3
    if not 0 <= s.doc_stride < room:
        raise UserError(f"`doc_stride` must be at least 0 and below {room} (max-len {max_len} minus the question "
                        f"and 3 special tokens), not {s.doc_stride}", fields=('doc_stride',))
    return QASettings(**{**asdict(s), "max_length": max_len, "max_query_len": query_len})


def check_settings(tokenizer, model_config, s: QASettings) -> QASettings:
    """validate_settings then fit_to_model: for a caller that has the model already."""
    return fit_to_model(tokenizer, model_config, validate_settings(s))


def _cut_questions(tokenizer, questions: list[str], max_query_len: int) -> list[str]:
    """Strip leading white space (some SQuAD questions have a lot, run_qa does the same) and cut questions
    longer than max_query_len tokens at a token boundary, so truncation="only_second" always works."""
    questions = [q.lstrip() for q in questions]
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for q, offs in zip(questions, enc["offset_mapping"]):
        out.append(q[:offs[max_query_len - 1][1]] if len(offs) > max_query_len else q)
    return out


def _windows(tokenizer, examples: list[QAExample], s: QASettings, chunk: int = 512):
    """Yield (example index, encoding dict, context token range, offsets) for every window of every example."""
    pad_right = tokenizer.padding_side == "right"
    if not pad_right:
        raise UserError("question-first tokenizers only (padding_side='right'); this one pads on the left")
    for lo in range(0, len(examples), chunk):
        part = examples[lo:lo + chunk]
        questions = _cut_questions(tokenizer, [e.question for e in part], s.max_query_len)
        enc = tokenizer(questions, [e.context for e in part], truncation="only_second", max_length=s.max_length,
                        stride=s.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                        padding=False)
        for i, ex_i in enumerate(enc["overflow_to_sample_mapping"]):
            seq = enc.sequence_ids(i)
            first = seq.index(1)
            last = len(seq) - 1 - seq[::-1].index(1)
            item = {"input_ids": enc["input_ids"][i]}
            if "token_type_ids" in enc:
                item["token_type_ids"] = enc["token_type_ids"][i]
            yield lo + ex_i, item, first, last, enc["offset_mapping"][i]


def train_features(tokenizer, examples: list[QAExample], s: QASettings) -> list[dict]:
    """Windows labelled with the answer's token span (first answer), or [CLS] when the window lacks it."""
    feats = []
    for ex_i, item, first, last, offsets in _windows(tokenizer, examples, s):
        ex = examples[ex_i]
        start_char = ex.answer_starts[0]
        end_char = start_char + len(ex.answers[0])
        if offsets[first][0] <= start_char and offsets[last][1] >= end_char:
            ts = first
            while ts <= last and offsets[ts][0] <= start_char:
                ts += 1
            te = last
            while te >= first and offsets[te][1] >= end_char:
                te -= 1
            item["start_positions"], item["end_positions"] = ts - 1, te + 1
        else:
            item["start_positions"] = item["end_positions"] = 0   # [CLS]
        feats.append(item)
    return feats


@dataclass
class EvalFeatures:
    """Windows for prediction, with what maps their tokens back to characters of the original context."""

    items: list[dict]            # model inputs
    example_index: list[int]     # which example each window belongs to
    context_range: list[tuple[int, int]]   # first/last context token of each window
    offsets: list[np.ndarray]    # (n context tokens, 2) character offsets of the context tokens


def eval_features(tokenizer, examples: list[QAExample], s: QASettings) -> EvalFeatures:
    f = EvalFeatures([], [], [], [])
    for ex_i, item, first, last, offsets in _windows(tokenizer, examples, s):
        f.items.append(item)
        f.example_index.append(ex_i)
        f.context_range.append((first, last))
        f.offsets.append(np.asarray(offsets[first:last + 1], dtype=np.int64))
    return f
