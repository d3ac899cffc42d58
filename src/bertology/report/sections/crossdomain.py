"""The report's cross-disciplinary transfer section (or an earlier run's, re-drawn)."""

from __future__ import annotations

import html
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ...experiments.crossdomain import (CrossDomainConfig, result_from_json, run_crossdomain, save,
                                       summary_rows)
from ...io.storage import load_results
from ...core.precision import fast_precision
from ...errors import UserError
from .. import ReportContext, Section, on_each_model
from ..figures import crossdomain_figures

CLAIM_IDS = ["transfer", "controls"]   # decided by this module's sections (report.claims)


REPORT_RESULTS_ENV = "BERTOLOGY_CROSSDOMAIN_RESULTS"   # a results.json (or its directory) the report shows instead


# A full-scale run recorded with its command (scripts/record_crossdomain.py), shown beside the quick run: the quick
# run is what this machine just computed, the recorded one what the paper-scale settings give.
RECORDED = Path(__file__).resolve().parent.parent / "recorded" / "crossdomain-splice.json"


def report_section(ctx: ReportContext):
    """Quick settings (the default report): all 3,190 splice sequences, one seed, one epoch (80 optimizer
    steps), pretrained / scratch / composition, with a paired McNemar test of pretrained against scratch.
    With --full: 3 seeds, up to 8 epochs (the default), every condition. Or, when $BERTOLOGY_CROSSDOMAIN_RESULTS points at
    the results.json of an earlier `bertology crossdomain` run, that run is shown (re-drawn) instead of
    computing anything. A recorded full-scale run (RECORDED) is shown beside, when the package has one."""
    reused = os.environ.get(REPORT_RESULTS_ENV)
    if not reused:
        return _on_each_model(ctx)
    result = result_from_json(load_results(reused, "bertology.crossdomain"))
    crossdomain_figures(result, ctx.out_dir)
    save(result, ctx.out_dir)
    n = len(result.splits.get("train", [])) + len(result.splits.get("dev", [])) + len(result.splits.get("test", []))
    size = (f"the earlier run {html.escape(str(reused))} (task {html.escape(result.task)}, model "
            f"{html.escape(result.model)}, {n} sequences, {max(s['n'] for s in result.summary.values())} seed(s); "
            f"shown as saved, not recomputed)")
    return present(result, size)


def preset(ctx: ReportContext, model: str) -> CrossDomainConfig:
    """`bertology crossdomain` at the report's settings. Quick: pretrained / scratch / composition, one seed, one
    epoch, without early stopping, in the precision this CPU runs fastest; full: every condition, 3 seeds."""
    # Chosen by measurement (docs/crossdomain.md, "The report's quick run"): one epoch over all of splice
    # beats 4 epochs over a subset, because the pretrained model's advantage is fastest early.
    common = dict(model=model, task="splice", seed=ctx.seed, data_dir=ctx.data_dir,
                  trust_remote_code=ctx.trust_remote_code, progress=False,
                  resume=True)    # a report re-run reuses the runs it already finished
    if ctx.quick:
        return CrossDomainConfig(conditions=("pretrained", "scratch", "composition"), seeds=1, epochs=1,
                                 patience=None, precision=fast_precision(), **common)
    return CrossDomainConfig(seeds=3, precision=ctx.precision, **common)


def _on_each_model(ctx: ReportContext) -> list[Section]:
    """This machine's run on every chosen model of the report, one section each (the recorded run beside the
    first); a model that cannot run it is named with its reason in the first section."""
    def run(model: str) -> Section:
        cfg = preset(ctx, model)
        where = ctx.model_dir(model)
        result = run_crossdomain(cfg, where)
        crossdomain_figures(result, where)
        save(result, where)
        size = (f"all 3,190 splice-junction sequences, one seed, one epoch in {cfg.precision} (quick settings: the full-scale "
                "result, 3 seeds and every control, is in the second table when recorded, and in "
                "docs/crossdomain.md)" if ctx.quick else
                "all 3,190 splice-junction sequences, 3 seeds, up to 8 epochs with early stopping")
        return present(result, size, recorded=model == ctx.chosen_models[0])

    try:
        return on_each_model(ctx, run)
    except UserError as e:
        return [Section("Cross-disciplinary transfer: DNA, protein, music", error=ctx.describe_error(e),
                        claim_ids=list(CLAIM_IDS))]


def paired_measures(runs: list[dict], test_labels: list[int], a: str, b: str) -> dict | None:
    """a against b on the same test sequences, seed k against seed k (the seeds both ran): the two-level
    bootstrap CI of the accuracy difference over seeds and items, and McNemar's exact p on the first seed.
    None when the runs kept no test predictions: the paired test is then *not run*, never passed."""
    from ...metrics import mcnemar_p, seed_item_difference

    by = {(r["condition"], r["seed"]): r for r in runs}
    seeds = sorted(s for (c, s) in by if c == a and (b, s) in by and by[(a, s)].get("test_predictions")
                   and by[(b, s)].get("test_predictions"))
    if not seeds or not test_labels:
        return None
    truth = np.asarray(test_labels)
    right = {c: np.array([np.asarray(by[(c, s)]["test_predictions"]) == truth for s in seeds]) for c in (a, b)}
    diff = seed_item_difference(right[a], right[b])
    return {"ci": diff["ci"], "p": mcnemar_p(right[a][0], right[b][0]), "seeds": len(seeds)}


def transfer_measures(summary: dict, runs: list[dict], test_labels: list[int], majority: float, n_test: int,
                      lr_search: dict | None = None, **extra) -> dict:
    """The numbers the transfer and controls rules need (report.claims), from a result or a recorded run."""
    m = {c: {"mean": v["accuracy_mean"], "std": v["accuracy_std"] or 0.0, "n": v["n"]} for c, v in summary.items()}
    m.update(n_test=n_test, majority=majority, **extra)
    if lr_search and "scratch" in lr_search:
        m["scratch_lr"] = lr_search["scratch"]["chosen"]
    m["paired"] = {b: p for b in ("scratch", "shuffled")
                   if b in summary and "pretrained" in summary
                   and (p := paired_measures(runs, test_labels, "pretrained", b)) is not None}
    return m


def _recorded_rows() -> tuple[str, list[dict], dict] | None:
    if not RECORDED.exists():
        return None
    import json

    doc = json.loads(RECORDED.read_text(encoding="utf-8"))
    rows = summary_rows(doc["summary"])
    title = (f"recorded full-scale run, not recomputed here: {doc['model']} on {doc['task']}, "
             f"`{doc['command']}` ({doc['date']}, {doc['machine']}, {doc['wall_minutes']:.0f} min)")
    measures = transfer_measures(doc["summary"], doc.get("runs", []), doc.get("test_labels", []),
                                 doc["majority_accuracy"]["test"], doc.get("split_sizes", {}).get("test", 0),
                                 doc.get("lr_search"),
                                 model=f"{doc['model']} (recorded full run, {doc['date']})", recorded=True)
    return title, rows, measures


def _dev_curve_text(runs: list[dict]) -> str:
    """The learning curves' sentence: what they show, or, when every run has one epoch (a single point is not a
    curve, so none is drawn), the dev accuracy after it per condition (mean over seeds)."""
    if any(len(r.get("dev_curve") or []) >= 2 for r in runs):
        return "The learning curves show convergence speed on dev."
    last: dict[str, list[float]] = {}
    for r in runs:
        if r.get("dev_curve"):
            last.setdefault(r["condition"], []).append(r["dev_curve"][-1]["accuracy"])
    if not last:
        return ""
    return ("Dev accuracy after the one epoch (no learning curve at one point): "
            + ", ".join(f"{c} {np.mean(v):.3f}" for c, v in last.items()) + ".")


def present(result, size: str, recorded: bool = True) -> Section:
    s = result.summary
    runs = [asdict(r) for r in result.runs]
    numbers = transfer_measures(s, runs, result.test_labels, result.majority_accuracy.get("test", 0.0),
                                len(result.splits.get("test", [])), result.lr_search, model=result.model)
    p = numbers["paired"].get("scratch", {}).get("p")
    gap = ""
    if "pretrained" in s and "scratch" in s:
        gap = (f" Here pretrained reaches {s['pretrained']['accuracy_mean']:.3f} test accuracy against "
               f"{s['scratch']['accuracy_mean']:.3f} from scratch"
               + (f" (McNemar's exact test on the same test sequences: p = {p:.2g})." if p is not None else "."))
    explanation = (
        "Sequences (for splice: DNA around exon/intron junctions, classes EI, IE or neither) written as random "
        f"English words, one word per symbol, then classified by the English model — on {size}. The lecture's "
        "claim (Kao &amp; Lee 2021) is that the pretrained network beats the same network trained from "
        "scratch." + gap + " The controls ask why: <i>rand-embed</i> re-initialises the word embeddings, "
        "<i>shuffled</i> keeps every pretrained weight value but destroys their arrangement (if it did as well, "
        "the gain would be mere weight scale), <i>frozen</i> is a linear probe on untouched pretrained features, "
        "<i>composition</i> is no network at all: logistic regression on k-mer counts, what the symbols' "
        "composition alone gives without their order. The dotted line is the majority-class accuracy: a bar near "
        "it learned nothing. " + _dev_curve_text(runs))
    tables = [("test scores per condition (this run)", summary_rows(result.summary))]
    measures = [numbers]
    recorded = _recorded_rows() if recorded else None
    if recorded:
        tables.append(recorded[:2])
        measures.append(recorded[2])
    return Section("Cross-disciplinary transfer: DNA, protein, music", explanation,
                   figures=[Path(f) for f in result.figures], tables=tables,
                   claim_ids=["transfer", "controls"], measures={"transfer": measures, "controls": measures})
