"""Extractive question answering, and the lecture's cross-lingual result: fine-tune on English SQuAD, answer
Chinese questions (multilingual BERT: 78.8 F1 on DRCD without seeing one Chinese training example).

The pipeline follows Hugging Face's run_qa.py, on the shared training engine:
1. features: each (question, context) pair is tokenised into windows of `max_len` tokens that overlap by
   `doc_stride` tokens (`return_overflowing_tokens` + offset mappings), so long contexts are fully covered.
   Training labels the answer's first/last token in the window that contains the whole answer; windows that
   do not contain it point at [CLS] (index 0), as in BERT's SQuAD recipe.
2. training: `engine.train` with length-bucketed, dynamically padded batches, bf16, resume, early stopping
   on dev F1.
3. prediction: the start/end logits of every window; every span of at most `max_answer_len` tokens inside
   the context part of any window is scored start_logit + end_logit (an exact search, not just the top-k
   starts × top-k ends); the `n_best` spans are kept; the best one's character offsets cut the answer out of
   the *original* context, so answers are exact substrings (no detokenisation artefacts, accents and
   Chinese intact).
4. scoring: the official SQuAD v1.1 (English) or CMRC 2018 (Chinese; also DRCD) EM / F1, in metrics.py.

Speed: windows are sorted by length and padded per batch, inference runs under `torch.inference_mode`
with optional bf16 autocast, and span search is vectorised with numpy (bench/qa_predict.py measures it
against the Hugging Face question-answering pipeline).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..io.squad import QADataset, QAExample, load_squad
from ..checks import check_number
from ..errors import UserError
from ..metrics import cjk_fraction, qa_scores
from ..core.precision import PREDICT_PRECISIONS, check_precision, fused_bf16_copy
from ..io.storage import replace_dir

SCHEMA = "bertology.qa/1"

# The lecture's table (F1 on DRCD dev, Traditional Chinese; Hsu, Liu & Lee 2019, "Zero-shot reading
# comprehension by cross-lingual transfer learning with multi-lingual language representation model").
LECTURE_DRCD_F1 = {
    "QANet, trained on Chinese": 78.1,
    "Chinese BERT, trained on Chinese": 89.1,
    "mBERT, trained on English SQuAD only": 78.8,
    "humans": 93.3,
}


@dataclass
class QASettings:
    """How questions are cut into windows and answers searched (run_qa.py's defaults)."""

    max_len: int = 384          # tokens per window (question + context + special tokens)
    doc_stride: int = 128       # tokens shared by consecutive windows of one context
    max_query_len: int = 64     # longer questions are cut (their start is kept)
    n_best: int = 20            # spans kept per question (nbest.json)
    max_answer_len: int = 30    # longest answer, in tokens
    span_score: str = "logit"   # logit: start + end logit, as run_qa.py; window-prob: log-probabilities
                                # normalised within each window, as the HF pipeline (matters only when
                                # a context spans several windows: it makes their scores comparable)
    batch_size: int = 16        # windows per inference batch (on a CPU, batching gains little beyond this,
                                # and a wider batch spans more lengths, so more padding)
    precision: str = "fp32"     # fp32 | bf16 | bf16-verified (bf16, then the near-ties re-run in fp32)
    verify_margin: float = 0.3   # bf16-verified: questions whose best answer leads a span with a different
                                 # answer text by less than this (half of it if the two spans overlap;
                                 # log-probability units) are re-run in fp32; docs/qa.md: how it was calibrated


# --------------------------------------------------------------------------------------------- features
def check_settings(tokenizer, model_config, s: QASettings) -> QASettings:
    """Clamp max_len to what the model can take, and refuse settings the tokenizer cannot honour."""
    from ..core.adapter import usable_length

    # the model's positions (less RoBERTa's offset of pad_token_id + 1) and the tokenizer's limit if it has one
    limits = [s.max_len, usable_length(tokenizer, model_config)]
    max_len = min(limits)
    if max_len < 16:
        raise UserError(f"`max_len` {max_len} is too short for a question and a context "
                        f"(the model allows at most {min(limits[1:], default=max_len)} tokens)", fields=('max_len',))
    query_len = min(s.max_query_len, (max_len - 3) // 2)   # short windows: questions get at most half
    room = max_len - query_len - 3
    if not 0 <= s.doc_stride < room:
        raise UserError(f"`doc_stride` must be at least 0 and below {room} (max-len {max_len} minus the question "
                        f"and 3 special tokens), not {s.doc_stride}", fields=('doc_stride',))
    if s.span_score not in ("logit", "window-prob"):
        raise UserError(f"`span_score` must be logit or window-prob, not {s.span_score!r}", fields=('span_score',))
    check_precision(s.precision, PREDICT_PRECISIONS)
    # in backticks: the CLI says --verify-margin; inf re-runs every question in fp32, nan none (refused)
    check_number("verify_margin", s.verify_margin, low=0, inf_ok=True)
    if s.n_best < 1 or s.max_answer_len < 1 or s.batch_size < 1:
        raise UserError("`n_best`, `max_answer_len` and `batch_size` must be positive",
                        fields=('n_best', 'max_answer_len', 'batch_size'))
    return QASettings(**{**asdict(s), "max_len": max_len, "max_query_len": query_len})


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
        enc = tokenizer(questions, [e.context for e in part], truncation="only_second", max_length=s.max_len,
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


# --------------------------------------------------------------------------------------------- prediction
def window_logits(model, items: list[dict], s: QASettings, device=None, progress: bool = False):
    """Start/end logits of every window (core.inference.batched_inference). bf16 (and bf16-verified) run a
    bf16 copy of an fp32 model (precision.fused_bf16_copy); the caller's model is untouched."""
    from ..core.inference import batched_inference

    device = device or next(model.parameters()).device
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(items)
    if not items:
        return out
    run_model, precision = model, "bf16" if s.precision.startswith("bf16") else "fp32"
    if precision == "bf16" and next(model.parameters()).dtype == torch.float32:
        run_model, precision = fused_bf16_copy(model, device), "fp32"
    for g, _, res in batched_inference(model, items, s.batch_size, _pad_id(model), precision, device,
                                       forward=lambda batch: run_model(**batch), progress=progress):
        starts = res.start_logits.float().cpu().numpy()
        ends = res.end_logits.float().cpu().numpy()
        for j, i in enumerate(g):
            n = len(items[i]["input_ids"])
            out[i] = (starts[j, :n], ends[j, :n])
    return out


def _pad_id(model) -> int:
    pid = getattr(getattr(model, "config", None), "pad_token_id", None)
    return int(pid) if pid is not None else 0


def _logsumexp(x: np.ndarray) -> float:
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum()))


def _top_spans(start: np.ndarray, end: np.ndarray, max_answer_len: int, k: int):
    """The k best (score, i, j) spans with 0 <= j - i < max_answer_len, exact, vectorised:
    row d of the band matrix holds start[i] + end[i + d]."""
    n = len(start)
    width = min(max_answer_len, n)
    band = np.full((width, n), -np.inf, dtype=np.float64)
    for d in range(width):
        band[d, :n - d] = start[:n - d] + end[d:]
    flat = band.ravel()
    k = min(k, int(np.isfinite(flat).sum()))
    top = np.argpartition(-flat, k - 1)[:k] if k < flat.size else np.arange(flat.size)
    top = top[np.argsort(-flat[top], kind="stable")][:k]
    d, i = np.divmod(top, n)
    return flat[top], i, i + d


@dataclass
class Predictions:
    answers: dict[str, str]               # question id -> answer text (the official predictions JSON)
    nbest: dict[str, list[dict]]          # question id -> [{text, start, end, score, probability}]
    windows: int
    seconds: float
    rerun: int = 0                        # bf16-verified: questions re-run in fp32 (near-ties in bf16)

    @property
    def questions_per_s(self) -> float:
        return len(self.answers) / self.seconds if self.seconds else float("nan")


def _add_spans(cands: list[dict], feats: EvalFeatures, logits, windows, s: QASettings) -> None:
    """Score every span of the given windows (exact top n_best per window) into cands[question]:
    {(start char, end char): best score over the windows that hold the span}."""
    for w in windows:
        start, end = logits[w]
        first, last = feats.context_range[w]
        scores, i, j = _top_spans(start[first:last + 1], end[first:last + 1], s.max_answer_len, s.n_best)
        if s.span_score == "window-prob":   # softmax over [CLS] + context, as the pipeline normalises
            keep = np.r_[0, first:last + 1]
            scores = scores - _logsumexp(start[keep]) - _logsumexp(end[keep])
        offs = feats.offsets[w]
        best = cands[feats.example_index[w]]
        for sc, a, b in zip(scores.tolist(), i.tolist(), j.tolist()):
            span = (int(offs[a, 0]), int(offs[b, 1]))
            if span[1] > span[0] and sc > best.get(span, -math.inf):   # overlapping windows: keep the best
                best[span] = sc


def answer_margins(context: str, cands: dict[tuple[int, int], float]) -> tuple[float, float]:
    """How far the best span's score leads the best span with a *different answer text* that overlaps it
    (shares characters: "1-3 μm" vs "1-3 μm thick"), and the best such span that does not (inf when there is
    none). Spans with the same text (the answer at two places) do not compete."""
    if not cands:
        return math.inf, math.inf
    (a, b), top = max(cands.items(), key=lambda kv: kv[1])
    text = context[a:b]
    near = far = -math.inf
    for (i, j), v in cands.items():
        if context[i:j] != text:
            if i < b and a < j:
                near = max(near, v)
            else:
                far = max(far, v)
    return top - near, top - far


def needs_fp32(context: str, cands: dict[tuple[int, int], float], margin: float) -> bool:
    """bf16-verified: whether bf16 rounding could change this question's answer. Calibrated (docs/qa.md) on
    minilm: bf16 moved the score difference of two overlapping spans by at most 0.134, of two disjoint spans
    (whose logits, and possibly windows, differ in every term) by up to 0.29; so overlapping competitors need
    a lead of margin / 2, disjoint ones of margin."""
    near, far = answer_margins(context, cands)
    return near < margin / 2 or far < margin


def predict(model, tokenizer, examples: list[QAExample], s: QASettings, progress: bool = True,
            device=None) -> Predictions:
    """Answer every question: n-best span search over all windows, answers cut from the original context.

    precision bf16-verified: every window runs in bf16; then each question whose best answer does not lead every
    different answer by s.verify_margin (half of it for overlapping spans; see needs_fp32), i.e. where bf16's
    rounding could change the answer, has its windows re-run in fp32, and its answer and n-best come from the
    fp32 logits."""
    t0 = time.perf_counter()
    s = check_settings(tokenizer, getattr(model, "config", None), s)
    feats = eval_features(tokenizer, examples, s)
    logits = window_logits(model, feats.items, s, device=device, progress=progress)
    cands: list[dict[tuple[int, int], float]] = [dict() for _ in examples]
    _add_spans(cands, feats, logits, range(len(logits)), s)
    rerun = 0
    if s.precision == "bf16-verified":
        redo = {q for q, (ex, c) in enumerate(zip(examples, cands)) if needs_fp32(ex.context, c, s.verify_margin)}
        windows = [w for w, q in enumerate(feats.example_index) if q in redo]
        fp32 = QASettings(**{**asdict(s), "precision": "fp32"})
        for w, lg in zip(windows, window_logits(model, [feats.items[w] for w in windows], fp32, device=device)):
            logits[w] = lg
        for q in redo:
            cands[q] = {}
        _add_spans(cands, feats, logits, windows, s)
        rerun = len(redo)
    answers, nbest = {}, {}
    for ex, c in zip(examples, cands):
        ranked = sorted(c.items(), key=lambda kv: -kv[1])[:s.n_best]
        if not ranked:
            answers[ex.id], nbest[ex.id] = "", []
            continue
        sc = np.array([v for _, v in ranked])
        prob = np.exp(sc - sc.max())
        prob /= prob.sum()
        nbest[ex.id] = [{"text": ex.context[a:b], "start": a, "end": b, "score": float(v), "probability": float(p)}
                        for ((a, b), v), p in zip(ranked, prob)]
        answers[ex.id] = nbest[ex.id][0]["text"]
    return Predictions(answers, nbest, len(feats.items), time.perf_counter() - t0, rerun)


# --------------------------------------------------------------------------------------------- scoring
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
    relocated: int = 0        # answers whose answer_start was off (see data.py)
    convert: str | None = None  # opencc conversion applied to the data before prediction
    windows: int | None = None
    seconds: float | None = None


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
    from ..io.storage import read_json

    doc = read_json(path)
    if not isinstance(doc, dict):
        raise UserError(f'{path}: predictions must be a JSON object {{"question id": "answer text"}}')
    for k, v in doc.items():
        if not isinstance(v, str):
            raise UserError(f"{path}: question {k!r}: the prediction is {type(v).__name__}, not a string")
    return doc


# --------------------------------------------------------------------------------------------- script conversion
def convert_dataset(dataset: QADataset, config: str) -> tuple[QADataset, list[bool]]:
    """Convert Traditional <-> Simplified Chinese with OpenCC ('t2s' or 's2t'). Returns the converted data and,
    per example, whether the conversion kept the context's length (then predicted character offsets map
    straight back onto the original text; OpenCC's phrase rules rarely change lengths)."""
    import opencc

    if config not in ("t2s", "s2t"):
        raise UserError(f"`convert` must be t2s or s2t, not {config!r}", fields=('convert',))
    cc = opencc.OpenCC(config)
    cache: dict[str, str] = {}
    out, aligned = [], []
    for e in dataset.examples:
        ctx = cache.get(e.context)
        if ctx is None:
            ctx = cache[e.context] = cc.convert(e.context)
        same = len(ctx) == len(e.context)
        aligned.append(same)
        answers = [cc.convert(a) for a in e.answers]
        starts = [st if same else max(0, ctx.find(a)) for st, a in zip(e.answer_starts, answers)]
        out.append(QAExample(e.id, cc.convert(e.question), ctx, answers, starts, e.title))
    return QADataset(dataset.path, out, dataset.skipped, dataset.relocated), aligned


def _conversion_changes(dataset: QADataset, config: str) -> bool:
    """Whether OpenCC changes any context (t2s on Simplified text usually does not: skip the duplicate run)."""
    import opencc

    cc = opencc.OpenCC(config)
    return any(cc.convert(c) != c for c in dict.fromkeys(e.context for e in dataset.examples))


def predict_converted(model, tokenizer, dataset: QADataset, config: str, s: QASettings, progress: bool = True):
    """Predict on converted text; map answers back to the original script by character offsets where the
    context kept its length, and otherwise score the converted answer against converted references.
    Returns (predictions, references to score against, number of questions scored in converted text)."""
    conv, aligned = convert_dataset(dataset, config)
    preds = predict(model, tokenizer, conv.examples, s, progress=progress)
    answers, refs, unaligned = {}, {}, 0
    for orig, c, ok in zip(dataset.examples, conv.examples, aligned):
        if orig.id not in preds.nbest or not preds.nbest[orig.id]:
            answers[orig.id] = ""
        elif ok:
            top = preds.nbest[orig.id][0]
            answers[orig.id] = orig.context[top["start"]:top["end"]]
        else:
            answers[orig.id] = preds.answers[orig.id]
        refs[orig.id] = orig.answers if ok else c.answers
        unaligned += not ok
    preds.answers = answers
    return preds, refs, unaligned


# --------------------------------------------------------------------------------------------- training
@dataclass
class TrainSettings:
    epochs: float = 2.0
    max_steps: int | None = None
    batch_size: int = 16
    lr: float = 5e-5
    warmup: float = 0.1
    weight_decay: float = 0.01
    grad_accum: int = 1
    eval_every: int | None = None     # steps between dev evaluations (None: once per epoch)
    checkpoint_every: int = 200
    patience: int | None = None
    seed: int = 0
    resume: bool = False


@dataclass
class QATrainResult:
    model_dir: str                 # the fine-tuned model (a directory any --model accepts)
    train_files: list[str]
    train_questions: int
    train_windows: int
    answerless_windows: int        # windows labelled [CLS] because the answer lies outside them
    steps: int
    epochs_done: float
    best_step: int | None
    best_dev_f1: float | None
    wall_time: float
    tokens_per_s: float
    history: list[dict] = field(default_factory=list)
    train_log: list[dict] = field(default_factory=list)


def check_train_settings(t: TrainSettings) -> None:
    """Fine-tuning's numbers, refused before the model loads and the data is tokenised."""
    from ..core.engine import check_schedule

    check_schedule(t.lr, t.warmup, t.epochs, t.max_steps)
    for name in ("batch_size", "grad_accum", "checkpoint_every"):
        check_number(name, getattr(t, name), low=1, integer=True)
    check_number("seed", t.seed, low=0, integer=True)


def load_data(name_or_path: str, data_dir: str | None = None, skip_bad: bool = False,
              require_answers: bool = True, check_offsets: bool = True) -> QADataset:
    """A SQuAD-format file or data set name; check_offsets=False for data that is only scored (see load_squad)."""
    from ..io.storage import find_dataset

    return load_squad(find_dataset(name_or_path, data_dir), skip_bad=skip_bad, require_answers=require_answers,
                      check_offsets=check_offsets)


def load_qa_model(model_name: str, trust_remote_code: bool):
    from ..core.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(model_name, trust_remote_code=trust_remote_code)
    model = load_model(model_name, head="qa", trust_remote_code=trust_remote_code)
    return model, tokenizer


def _save_model_atomically(model, tokenizer, target: Path) -> Path:
    """save_pretrained into a temporary directory, then rename it into place."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return replace_dir(tmp, target)


def train(model_name: str, train_data: list[QADataset], dev: QADataset | None, out_dir: str | Path,
          s: QASettings = QASettings(), t: TrainSettings = TrainSettings(), dev_lang: str = "auto",
          trust_remote_code: bool = False, progress: bool = True):
    """Fine-tune `model_name` with a fresh span head on the training sets (concatenated); keep the weights
    with the best dev F1 (when a dev set is given). Returns (model, tokenizer, QATrainResult)."""
    from ..core.engine import ExampleBatches, TrainConfig, check_resume_settings, set_seed
    from ..core.engine import train as engine_train

    check_train_settings(t)
    out_dir = Path(out_dir)
    # what shapes the fine-tuned weights (not how often to evaluate or checkpoint, nor the eval batch size)
    shaping = {k: v for k, v in asdict(t).items() if k not in ("eval_every", "checkpoint_every", "patience",
                                                                "resume")}
    check_resume_settings(out_dir / "train", {
        "model": model_name, "train": [[d.path, len(d.examples)] for d in train_data],
        **{k: v for k, v in asdict(s).items() if k in ("max_len", "doc_stride", "precision")}, **shaping},
        t.resume)
    # The new span head (`qa_outputs`) is initialised at random as the model loads: seeded first, so the same
    # --seed gives the same weights (the engine's own seeding comes after the model exists).
    set_seed(t.seed)
    model, tokenizer = load_qa_model(model_name, trust_remote_code)
    s = check_settings(tokenizer, model.config, s)
    examples = [e for d in train_data for e in d.examples]
    feats = train_features(tokenizer, examples, s)
    dev_lang = resolve_lang(dev_lang, dev.examples) if dev is not None else None
    quiet = QASettings(**{**asdict(s), "precision": "fp32"})   # the engine's autocast already applies

    def evaluate(m):
        p = predict(m, tokenizer, dev.examples, quiet, progress=False)
        r = qa_scores(dev.references(), p.answers, dev_lang)
        return {"f1": r["f1"], "exact_match": r["exact_match"]}
    config = TrainConfig(out_dir=out_dir / "train", lr=t.lr, weight_decay=t.weight_decay, warmup=t.warmup,
                         epochs=t.epochs, max_steps=t.max_steps, grad_accum=t.grad_accum, precision=s.precision,
                         seed=t.seed, eval_every=t.eval_every, checkpoint_every=t.checkpoint_every,
                         metric="f1" if dev is not None else "loss", greater_is_better=dev is not None,
                         patience=t.patience, resume=t.resume, progress=progress)
    batches = ExampleBatches(feats, t.batch_size, seed=t.seed, pad_id=_pad_id(model))
    r = engine_train(model, batches, config, evaluate=evaluate if dev is not None else None)
    model_dir = _save_model_atomically(model, tokenizer, out_dir / "model")
    result = QATrainResult(
        model_dir=str(model_dir), train_files=[d.path for d in train_data], train_questions=len(examples),
        train_windows=len(feats), answerless_windows=sum(f["start_positions"] == 0 for f in feats),
        steps=r.steps, epochs_done=r.epochs_done, best_step=r.best_step,
        best_dev_f1=r.best_metric if dev is not None else None, wall_time=r.wall_time,
        tokens_per_s=r.tokens / max(r.wall_time, 1e-9), history=r.history, train_log=r.train_log)
    return model, tokenizer, result


# --------------------------------------------------------------------------------------------- experiments
@dataclass
class QAResult:
    """What every `bertology qa` command saves (schema bertology.qa/1)."""

    command: str                      # score | train | predict | eval | crosslingual
    model: str | None
    settings: dict | None
    scores: list[QAScore] = field(default_factory=list)
    train: QATrainResult | None = None
    predictions: dict[str, str] = field(default_factory=dict)    # predict / eval: question id -> answer
    nbest: dict[str, list[dict]] = field(default_factory=dict)
    questions_per_s: float | None = None                          # predict / eval: end-to-end throughput
    lecture_drcd_f1: dict = field(default_factory=lambda: dict(LECTURE_DRCD_F1))
    notes: list[str] = field(default_factory=list)

    def payload(self) -> dict:
        d = asdict(self)
        d.pop("predictions")          # written to predictions.json / nbest.json, not results.json
        d.pop("nbest")
        return d


def save(result: QAResult, out_dir: str | Path) -> Path:
    """results.json (bertology.qa/1), with predictions.json + nbest.json when there are predictions."""
    from ..io.storage import atomic_write_json, save_results

    out_dir = Path(out_dir)
    if result.predictions:
        atomic_write_json(out_dir / "predictions.json", result.predictions)
    if result.nbest:
        atomic_write_json(out_dir / "nbest.json", result.nbest)
    return save_results(out_dir, SCHEMA, result.payload())


def predict_file(command: str, model_name: str, dataset: QADataset, s: QASettings, lang: str = "auto",
                 convert: str | None = None, trust_remote_code: bool = False, progress: bool = True) -> QAResult:
    """`qa predict` (answers only) and `qa eval` (answers + official scores; with `convert`, Chinese data is
    scored both as is and after OpenCC conversion)."""
    from ..core.models import has_qa_head, resolve_model, weight_names

    if weight_names(resolve_model(model_name)) is not None and not has_qa_head(model_name):
        raise UserError(f"model {model_name!r} has no trained span head (no `qa_outputs` weights): its answers "
                        f"would be random. Fine-tune it first with `bertology qa train` and pass OUT/model")
    model, tokenizer = load_qa_model(model_name, trust_remote_code)
    model.to(_device())
    s = check_settings(tokenizer, model.config, s)
    name = Path(dataset.path).stem
    notes: list[str] = []
    if command == "eval":
        scores, preds_by, notes = evaluate_sets(model, tokenizer, {name: dataset}, s, lang, convert, progress)
        p = preds_by[name]
        return QAResult(command, model_name, asdict(s), scores, predictions=p.answers, nbest=p.nbest,
                        questions_per_s=scores[0].total / scores[0].seconds, notes=notes)
    if convert:
        preds, _, unaligned = predict_converted(model, tokenizer, dataset, convert, s, progress)
        if unaligned:
            notes.append(f"{unaligned} contexts changed length under OpenCC; their answers are in the converted "
                         f"script")
    else:
        preds = predict(model, tokenizer, dataset.examples, s, progress=progress)
    if preds.rerun:
        notes.append(f"bf16-verified: {preds.rerun} of {len(preds.answers)} questions re-run in fp32 (near-ties)")
    return QAResult(command, model_name, asdict(s), [], predictions=preds.answers, nbest=preds.nbest,
                    questions_per_s=preds.questions_per_s, notes=notes)


def _device():
    from ..core.models import pick_device

    return pick_device()


def evaluate_sets(model, tokenizer, evals: dict[str, QADataset], s: QASettings, lang: str = "auto",
                  convert: str | None = None, progress: bool = True) -> tuple[list[QAScore], dict, list[str]]:
    """Predict and score every eval set; with `convert`, Chinese sets are scored a second time after OpenCC
    conversion. Returns (scores, {name: Predictions}, notes)."""
    scores, preds_by_name, notes = [], {}, []
    for name, ds in evals.items():
        ds_lang = resolve_lang(lang, ds.examples)
        with _kept_in(notes, "oneDNN fusion"):      # modules the bf16 path could not fuse: said in results.json
            p = predict(model, tokenizer, ds.examples, s, progress=progress)
        if p.rerun:
            notes.append(f"{name}: bf16-verified re-ran {p.rerun} of {len(p.answers)} questions in fp32 (near-ties)")
        sc = score(ds, p.answers, ds_lang, name)
        sc.windows, sc.seconds = p.windows, p.seconds
        scores.append(sc)
        preds_by_name[name] = p
        if convert and ds_lang == "zh" and _conversion_changes(ds, convert):
            pc, refs, unaligned = predict_converted(model, tokenizer, ds, convert, s, progress=progress)
            r = qa_scores(refs, pc.answers, "zh")
            scores.append(QAScore(f"{name} [{convert}]", ds.path, "zh", r["exact_match"], r["f1"], r["total"],
                                  r["missing"], ds.skipped, ds.relocated, convert, pc.windows, pc.seconds))
            preds_by_name[f"{name} [{convert}]"] = pc
            if unaligned:
                notes.append(f"{name} [{convert}]: {unaligned} contexts changed length under OpenCC; those "
                             f"questions were scored in the converted script")
    return scores, preds_by_name, notes


@contextlib.contextmanager
def _kept_in(notes: list[str], prefix: str):
    """Warnings starting with `prefix` raised inside are shown as usual and also kept (once) in `notes`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        message = str(w.message)
        if message.startswith(prefix) and message not in notes:
            notes.append(message)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def unk_rate(tokenizer, texts: list[str]) -> float:
    """Share of tokens that are [UNK]: how much of a language the vocabulary cannot even spell."""
    unk = tokenizer.unk_token_id
    if unk is None:
        return 0.0
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    n = sum(len(x) for x in ids)
    return sum(x.count(unk) for x in ids) / n if n else 0.0


def crosslingual(model_name: str, train_sets: dict[str, QADataset], eval_sets: dict[str, QADataset],
                 out_dir: str | Path, s: QASettings = QASettings(), t: TrainSettings = TrainSettings(),
                 dev: QADataset | None = None, convert: str | None = None, trust_remote_code: bool = False,
                 progress: bool = True) -> QAResult:
    """One fine-tuning run on `train_sets` (e.g. {"en": SQuAD}), evaluated zero-shot on every eval set."""
    model, tokenizer, tr = train(model_name, list(train_sets.values()), dev, out_dir, s, t,
                                 trust_remote_code=trust_remote_code, progress=progress)
    s = check_settings(tokenizer, model.config, s)
    scores, preds, notes = evaluate_sets(model, tokenizer, eval_sets, s, convert=convert, progress=progress)
    for name, ds in eval_sets.items():
        if resolve_lang("auto", ds.examples) == "zh":
            rate = unk_rate(tokenizer, list(dict.fromkeys(e.context for e in ds.examples))[:200])
            notes.append(f"{name}: {100 * rate:.1f}% of context tokens are [UNK] for this tokenizer")
    write_predictions(out_dir, preds)
    notes.insert(0, "trained on " + ", ".join(f"{k}={len(v.examples)} questions" for k, v in train_sets.items()))
    return QAResult("crosslingual", model_name, asdict(s), scores, tr, {}, notes=notes)


# ---------------------------------------------------------------------------------------- the verdict's yardsticks
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
    from ..metrics import cmrc_f1

    return np.array([100 * max((cmrc_f1(answers.get(e.id, ""), r) for r in e.answers), default=0.0)
                     for e in examples])


def predictions_path(out_dir: str | Path, name: str) -> Path:
    """Where `write_predictions` puts one eval set's official predictions JSON."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name).strip("_")
    return Path(out_dir) / f"predictions_{safe}.json"


def write_predictions(out_dir: str | Path, preds_by_name: dict[str, Predictions]) -> None:
    from ..io.storage import atomic_write_json

    for name, p in preds_by_name.items():
        atomic_write_json(predictions_path(out_dir, name), p.answers)
