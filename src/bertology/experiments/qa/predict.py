"""QA prediction: the start/end logits of every window (length-sorted, dynamically padded batches under
`torch.inference_mode`, in the settings' precision), turned into answers by `postprocess`; and prediction on
text converted between Traditional and Simplified Chinese, answers mapped back to the original."""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch

from ...core.cpu_fusion import fused_bf16_copy
from ...errors import UserError
from ...io.squad import QADataset, QAExample
from .features import QASettings, eval_features, fit_to_model, validate_settings
from .postprocess import Predictions, add_spans, needs_fp32, rank_answers

# the precision each setting's windows run in (bf16-verified: bf16 first, the near-ties again in fp32)
WINDOW_PRECISION = {"fp32": "fp32", "bf16": "bf16", "bf16-verified": "bf16"}


def window_logits(model, items: list[dict], s: QASettings, device=None, progress: bool = False):
    """Start/end logits of every window (core.inference.batched_inference). bf16 (and bf16-verified) run a
    bf16 copy of an fp32 model (cpu_fusion.fused_bf16_copy); the caller's model is untouched."""
    from ...core.inference import batched_inference

    device = device or next(model.parameters()).device
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(items)
    if not items:
        return out
    run_model, precision = model, WINDOW_PRECISION[s.precision]
    if precision == "bf16" and next(model.parameters()).dtype == torch.float32:
        run_model, precision = fused_bf16_copy(model, device), "fp32"
    for g, _, res in batched_inference(model, items, s.eval_batch_size, pad_id(model), precision, device,
                                       forward=lambda batch: run_model(**batch), progress=progress):
        starts = res.start_logits.float().cpu().numpy()
        ends = res.end_logits.float().cpu().numpy()
        for j, i in enumerate(g):
            n = len(items[i]["input_ids"])
            out[i] = (starts[j, :n], ends[j, :n])
    return out


def pad_id(model) -> int:
    """The model's padding token id (0 when its config names none)."""
    pid = getattr(getattr(model, "config", None), "pad_token_id", None)
    return int(pid) if pid is not None else 0


def predict(model, tokenizer, examples: list[QAExample], s: QASettings, progress: bool = True,
            device=None) -> Predictions:
    """Answer every question (settings validated here: the entry point for a library caller). See answer."""
    return answer(model, tokenizer, examples, validate_settings(s), progress, device)


def answer(model, tokenizer, examples: list[QAExample], s: QASettings, progress: bool = True,
           device=None) -> Predictions:
    """Answer every question with settings already validated (validate_settings): n-best span search over all
    windows, answers cut from the original context.

    precision bf16-verified: every window runs in bf16; then each question whose best answer does not lead every
    different answer by s.verify_margin (half of it for overlapping spans; see needs_fp32), i.e. where bf16's
    rounding could change the answer, has its windows re-run in fp32, and its answer and n-best come from the
    fp32 logits."""
    t0 = time.perf_counter()
    s = fit_to_model(tokenizer, getattr(model, "config", None), s)
    feats = eval_features(tokenizer, examples, s)
    logits = window_logits(model, feats.items, s, device=device, progress=progress)
    cands: list[dict[tuple[int, int], float]] = [dict() for _ in examples]
    add_spans(cands, feats, logits, range(len(logits)), s)
    rerun = 0
    if s.precision == "bf16-verified":
        redo = {q for q, (ex, c) in enumerate(zip(examples, cands)) if needs_fp32(ex.context, c, s.verify_margin)}
        windows = [w for w, q in enumerate(feats.example_index) if q in redo]
        fp32 = QASettings(**{**asdict(s), "precision": "fp32"})
        for w, lg in zip(windows, window_logits(model, [feats.items[w] for w in windows], fp32, device=device)):
            logits[w] = lg
        for q in redo:
            cands[q] = {}
        add_spans(cands, feats, logits, windows, s)
        rerun = len(redo)
    answers, nbest = rank_answers(examples, cands, s.n_best)
    return Predictions(answers, nbest, len(feats.items), time.perf_counter() - t0, rerun)


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


def conversion_changes(dataset: QADataset, config: str) -> bool:
    """Whether OpenCC changes any context (t2s on Simplified text usually does not: skip the duplicate run)."""
    import opencc

    cc = opencc.OpenCC(config)
    return any(cc.convert(c) != c for c in dict.fromkeys(e.context for e in dataset.examples))


def predict_converted(model, tokenizer, dataset: QADataset, config: str, s: QASettings, progress: bool = True):
    """Predict on converted text (settings validated: see answer); map answers back to the original script by character offsets where the
    context kept its length, and otherwise score the converted answer against converted references.
    Returns (predictions, references to score against, number of questions scored in converted text)."""
    conv, aligned = convert_dataset(dataset, config)
    preds = answer(model, tokenizer, conv.examples, s, progress=progress)
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
