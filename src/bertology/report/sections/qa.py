"""The report's cross-lingual zero-shot QA section: `bertology qa crosslingual` at the report's settings (preset),
run by the same experiments.qa.run_crosslingual as the command, then presented."""

from __future__ import annotations

import shutil
from pathlib import Path

from ...core.models import load_config
from ...core.precision import fast_precision
from ...experiments.configs import QACrosslingualConfig
from ...experiments.qa import LECTURE_DRCD_F1, load_data, measure_transfer, run_crosslingual, save
from .. import ReportContext, Section, plots

# (SQuAD train questions, XQuAD questions per language). Quick: chosen by measurement so that minilm learns the task
# in English within ~4 minutes on 2 cores with native bf16: 2,400 questions, 192-token windows, lr 2e-4 gave XQuAD-en
# F1 44.7 in 3 min 49 s (800 questions, 256 tokens, lr 1e-4 gave 7.3). minilm now reads Chinese as [UNK] and is not
# applicable, so the report runs QA on zh-en-mini (128-token windows), where the same settings reach only XQuAD-en F1
# 12.1 (CMRC-style) in 429 s of fp32 on an AVX2-only CPU (docs/recorded/report-quick.json): the section says so.
REPORT_QUICK = (2400, 150)
REPORT_FULL = (20000, None)   # None: every question

CLAIM_IDS = ["qa"]   # decided by this module's sections (report.claims)
EN, ZH = "XQuAD-en", "XQuAD-zh"   # the parallel eval sets (the same questions) the verdict compares


def report_section(ctx: ReportContext):
    """The QA section on the first model of the report that reads Chinese (QA trains a model: once per report);
    the others are not applicable (their vocabulary reads Chinese as [UNK]) or not run, with the reason."""
    from ...core.models import load_tokenizer
    from ...core.vocab import UNKNOWN_LIMIT, unknown_token_share

    sec, measures = None, []
    contexts = list(dict.fromkeys(e.context for e in load_data("xquad-zh", ctx.data_dir).examples))[:200]
    for model in ctx.models:
        share = unknown_token_share(load_tokenizer(model, ctx.trust_remote_code), contexts)
        if share > UNKNOWN_LIMIT:
            measures.append({"model": model, "not_applicable": f"{share:.0%} of XQuAD-zh's context tokens are [UNK] "
                                                               f"to its vocabulary (limit {UNKNOWN_LIMIT:.0%})"})
        elif sec is None:
            sec = _qa_section(ctx, model)
            measures += sec.measures["qa"]
        else:
            measures.append({"model": model, "not_run": "the report fine-tunes QA on one model; "
                                                        f"`bertology report --model {model}` runs it on this one"})
    if sec is None:
        sec = Section("Cross-lingual zero-shot QA", error="; ".join(f"{m['model']}: {m['not_applicable']}"
                                                                   for m in measures))
    sec.claim_ids, sec.measures = ["qa"], {"qa": measures}
    return sec


def preset(ctx: ReportContext, model: str) -> QACrosslingualConfig:
    """`bertology qa crosslingual` at the report's settings, sized to the model. Quick: fine-tune on 2,400 SQuAD
    train questions (one epoch, lr 2e-4, windows of up to 192 tokens, bf16 where the CPU runs it natively), then
    answer the same 150 XQuAD questions in English and in their Chinese translation. Full: 20,000 questions, two
    epochs at lr 5e-5, windows of up to 384 tokens, all of XQuAD and DRCD dev (also scored after t2s conversion).
    A model that already has a QA head (from `qa train`) is evaluated as it is, without training."""
    from ...core.adapter import usable_length
    from ...core.models import load_tokenizer

    quick = ctx.quick
    n_train, n_eval = REPORT_QUICK if quick else REPORT_FULL
    # the model's usable length (its tokenizer's limit and its positions): zh-en-mini reads 128 tokens, and a
    # stride computed from a longer window would not fit beside the question
    max_length = usable_length(load_tokenizer(model, ctx.trust_remote_code), load_config(model, ctx.trust_remote_code),
                               cap=192 if quick else 384)
    return QACrosslingualConfig(
        model=model, trust_remote_code=ctx.trust_remote_code, seed=ctx.seed, data_dir=ctx.data_dir, out=ctx.out_dir,
        train=["en=squad-train"], max_train=n_train, limit=n_eval,    # n_eval None: every question of each set
        eval=[f"{EN}=xquad-en", f"{ZH}=xquad-zh", *([] if quick else ["DRCD dev=drcd-dev"])],
        convert=None if quick else "t2s", reuse_trained_head=True,
        max_length=max_length, doc_stride=max_length // 3,
        # Quick mode trains and predicts in bf16 where the CPU runs it natively (what fits a few minutes there); an
        # AVX2-only CPU emulates bf16 ~20x slower than fp32, so it gets fp32 (core.precision.fast_precision).
        precision=fast_precision() if quick else ctx.precision,
        epochs=1 if quick else 2, batch_size=16, lr=2e-4 if quick else 5e-5,
        # no mid-run checkpoint in a minutes-long run; a report re-run over a kept checkpoint continues it
        checkpoint_every=100000, resume=True)


def _qa_section(ctx: ReportContext, model_name: str) -> Section:
    """The experiment on one model: run, saved in the section's folder, drawn and presented."""
    cfg = preset(ctx, model_name)
    res = run_crosslingual(cfg, progress=False)
    if res.train and not ctx.keep_models:   # ~90 MB of weights and optimizer state: the report keeps results only
        for d in ("model", "train"):
            shutil.rmtree(cfg.out / d, ignore_errors=True)
    save(res, cfg.out)
    figs = [plots.plot_qa_scores(res.scores, LECTURE_DRCD_F1, cfg.out / "qa_scores.png",
                                 title=f"{Path(str(model_name)).name}: English QA training only")]
    if res.train and len(res.train.train_log) >= 2:   # a line needs two points
        figs.append(plots.plot_qa_training(res.train, cfg.out / "qa_training.png"))
    return present(res, {"model": model_name, **measure_transfer(cfg, ZH, EN)}, figs)


def present(res, m: dict, figures: list[Path]) -> Section:
    """The section: the scores table beside the lecture's, and the verdict's measures `m` (measure_transfer on the
    parallel XQuAD sets, with the model's name)."""
    if res.train is None:
        how = "This model already has a trained span head, so it was evaluated as it is (no fine-tuning)."
    else:
        how = (f"The model was fine-tuned for extractive QA on {res.train.train_questions} English SQuAD questions "
               f"only ({res.train.steps} steps, {res.train.wall_time:.0f} s).")
    return Section(f"Cross-lingual zero-shot QA on {res.model}", _qa_explanation(how, res, m), figures,
                   [("EM / F1 (0-100)", _score_rows(res, m))], claim_ids=["qa"], measures={"qa": [m]})


def _score_rows(res, m: dict) -> list[dict]:
    """The table: each eval set's EM / F1, the lecture's DRCD numbers, and the model-free heuristic's F1."""
    rows = [{"eval set": sc.name, "lang": sc.lang, "EM": sc.exact_match, "F1": sc.f1, "questions": sc.total}
            for sc in res.scores]
    rows += [{"eval set": f"lecture: {k}", "lang": "zh", "EM": "", "F1": v, "questions": "DRCD dev"}
             for k, v in LECTURE_DRCD_F1.items()]
    rows.append({"eval set": "XQuAD-zh: character-overlap heuristic (no model)", "lang": "zh", "EM": "",
                 "F1": m["heuristic_f1"], "questions": m["questions"]})
    return rows


def _qa_explanation(how: str, res, m: dict) -> str:
    """The section's text: what was run, what the lecture found, and what this run's numbers can say."""
    en_f1 = next((sc.f1 for sc in res.scores if sc.lang == "en"), None)
    unk = "; ".join(n for n in res.notes if "[UNK]" in n)
    expl = (f"{how} It then answered the same XQuAD questions in English and in their Chinese translation. "
            f"The lecture's multilingual BERT keeps most of its English skill in Chinese (78.8 F1 on DRCD vs 89.1 "
            f"for a Chinese BERT trained on Chinese); the gap between the English and the Chinese bars is what "
            f"multilingual pretraining closes. " + (f"Tokenizer coverage: {unk}. " if unk else ""))
    if en_f1 is not None and en_f1 < 25:
        expl += (f"Here English F1 is only {en_f1:.1f}: the run was too short for the model to learn the task "
                 f"even in English, so the Chinese score says nothing about transfer yet. Longer runs (docs/qa.md: "
                 f"minilm on 5,000 SQuAD questions reaches 56.9 F1 on SQuAD dev, 13.4 on XQuAD-zh), or "
                 f"`bertology report --model DIR` with a model from `bertology qa train`, show it.")
    expl += (f"The verdict scores both languages with the same (CMRC) F1 on the same {m['questions']} questions: "
             f"English {m['en_f1']:.1f}, Chinese {m['zh_f1']:.1f}, against {m['heuristic_f1']:.1f} for a model-free "
             f"heuristic (the 6 characters after the context window that shares most characters with the question).")
    return expl
