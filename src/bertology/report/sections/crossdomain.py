"""The report's cross-disciplinary transfer section (or an earlier run's, re-drawn)."""

from __future__ import annotations

import html
import os
from pathlib import Path

from ...experiments.crossdomain import (CrossDomainConfig, result_from_json, run_crossdomain, save,
                                       summary_rows)
from ...io.storage import load_results
from .. import ReportContext, Section
from ..figures import crossdomain_figures

CLAIM_IDS = ["transfer", "controls"]   # decided by this module's sections (report.claims)


REPORT_RESULTS_ENV = "BERTOLOGY_CROSSDOMAIN_RESULTS"   # a results.json (or its directory) the report shows instead


def report_section(ctx: ReportContext):
    """Quick settings (the default report): splice, a fixed stratified subset of 800 sequences, one seed, 4
    epochs (80 optimizer steps), pretrained / scratch / frozen. With --full: 1,000 sequences, 3 seeds, 4 epochs, all five conditions.
    Or, when $BERTOLOGY_CROSSDOMAIN_RESULTS points at the results.json of an earlier `bertology crossdomain`
    run, that run is shown (re-drawn) instead of computing anything."""
    reused = os.environ.get(REPORT_RESULTS_ENV)
    if reused:
        result = result_from_json(load_results(reused, "bertology.crossdomain"))
        crossdomain_figures(result, ctx.out_dir)
        save(result, ctx.out_dir)
        n = len(result.splits.get("train", [])) + len(result.splits.get("dev", [])) + len(result.splits.get("test", []))
        size = (f"the earlier run {html.escape(str(reused))} (task {html.escape(result.task)}, model "
                f"{html.escape(result.model)}, {n} sequences, {max(s['n'] for s in result.summary.values())} seed(s); "
                f"shown as saved, not recomputed)")
    else:
        common = dict(model=ctx.model, task="splice", seed=ctx.seed, lr=1e-4, precision=ctx.precision,
                      data_dir=ctx.data_dir, trust_remote_code=ctx.trust_remote_code, progress=False,
                      resume=True)    # a report re-run reuses the runs it already finished
        if ctx.quick:
            cfg = CrossDomainConfig(conditions=("pretrained", "scratch", "frozen"), seeds=1, epochs=4, patience=None,
                                    limit=800, **common)
        else:
            cfg = CrossDomainConfig(seeds=3, epochs=4, patience=2, limit=1000, **common)
        result = run_crossdomain(cfg, ctx.out_dir)
        crossdomain_figures(result, ctx.out_dir)
        save(result, ctx.out_dir)
        size = ("a fixed stratified subset of 800 of the 3,190 splice-junction sequences, one seed, 4 epochs "
                "(quick settings: a smoke view, not the paper-scale result; see docs/crossdomain.md for 3-seed runs "
                "with all controls, or point $BERTOLOGY_CROSSDOMAIN_RESULTS at one)" if ctx.quick else
                "1,000 of the 3,190 splice-junction sequences, 3 seeds, up to 4 epochs with early stopping")
    s = result.summary
    gap = ""
    if "pretrained" in s and "scratch" in s:
        gap = (f" Here pretrained reaches {s['pretrained']['accuracy_mean']:.3f} test accuracy against "
               f"{s['scratch']['accuracy_mean']:.3f} from scratch.")
    explanation = (
        "Sequences (for splice: DNA around exon/intron junctions, classes EI, IE or neither) written as random "
        f"English words, one word per symbol, then classified by the English model — on {size}. The lecture's "
        "claim (Kao &amp; Lee 2021) is that the pretrained network (red bar) beats the same network trained from "
        "scratch (blue)." + gap + " The controls ask why: <i>rand-embed</i> re-initialises the word embeddings, "
        "<i>shuffled</i> keeps every pretrained weight value but destroys their arrangement (if it did as well, "
        "the gain would be mere weight scale), <i>frozen</i> is a linear probe on untouched pretrained features. "
        "The dotted line is the majority-class accuracy: a bar near it learned nothing. The learning curves show "
        "convergence speed on dev.")
    numbers = {c: {"mean": v["accuracy_mean"], "std": v["accuracy_std"] or 0.0} for c, v in s.items()}
    numbers.update(n_test=len(result.splits.get("test", [])), majority=result.majority_accuracy.get("test", 0.0),
                   model=result.model)
    return Section("Cross-disciplinary transfer: DNA, protein, music", explanation,
                   figures=[Path(f) for f in result.figures], tables=[("test scores per condition", summary_rows(result))],
                   claim_ids=["transfer", "controls"], measures={"transfer": numbers, "controls": numbers})
