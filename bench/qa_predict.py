"""Questions per second of `bertology qa predict` against the Hugging Face question-answering pipeline, on
the same QA model and the same SQuAD dev questions, measured in one run; plus how often the answers agree.

transformers 5 removed the question-answering pipeline, so the baseline runs the last 4.x release (4.57) in
a subprocess from a side directory, with the same torch. Create it once (about 15 MB, no torch download):

    .venv/bin/pip install --no-deps --target runs/qa/hf4 "transformers<5" "tokenizers>=0.22,<=0.23.0" \
        "huggingface_hub<1.0" requests certifi charset_normalizer idna urllib3

    .venv/bin/python bench/qa_predict.py --model runs/qa/minilm-squad5k/model --n 500 --threads 1

The pipeline gets our settings (max_seq_len 384, doc_stride 128, max_answer_len 30) and align_to_words=False
(so neither side widens spans to whole words), and is timed two ways in every round: with all questions in one
call and batch_size 16 (--pipeline-batch: equal batch, the one-flag option a user would set; the equal-settings
row) and one question at a time (as its docs show it: the "as used by default" row). The pipeline runs fp32; on a
CPU without native bf16 (core.precision.native_bf16) a bf16 row is labelled emulated, and ratios of our bf16 to
the fp32 pipeline are labelled as unequal precision in the same line. Ours runs fp32 with run_qa's span score (raw logits compared across windows), fp32
with the pipeline's (probabilities normalised per window: same arithmetic, answers should be identical),
bf16 (answers may differ where two spans nearly tie) and bf16-verified (bf16, then the questions whose answer
bf16 rounding could change re-run in fp32), with its default margin and with a tighter 0.1.
Goal: >= 3x with identical answers.

    .venv/bin/python bench/qa_predict.py --model runs/qa/minilm-squad5k/model --n 500 --threads 1 --calibrate 1500

compares bf16 with fp32 on 1,500 other dev questions: how to choose bf16-verified's margin (docs/qa.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_questions(n: int, seed: int):
    sys.path.insert(0, str(ROOT / "src"))
    from bertology.experiments import qa

    return qa.load_data("squad-dev").sample(n, seed)


def baseline_worker(args) -> None:
    """Runs under transformers 4.x: the pipeline, one question at a time. After the untimed warm-up it prints
    "ready", then answers each "run" line on stdin with one JSON line (seconds, answers) until "quit", so the
    main process can alternate its timed runs with ours (ABBA) in a process that stays warm."""
    import torch
    import transformers
    from transformers import pipeline

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    ds = load_questions(args.n, args.seed)
    pipe = pipeline("question-answering", model=args.model, tokenizer=args.model, device=-1)

    def answer_all(examples, batch: int = 1):
        kw = dict(max_seq_len=384, doc_stride=128, max_answer_len=30, align_to_words=False)
        if batch == 1:
            return {e.id: pipe(question=e.question, context=e.context, **kw)["answer"] for e in examples}
        out = pipe(question=[e.question for e in examples], context=[e.context for e in examples],
                   batch_size=batch, **kw)
        return {e.id: o["answer"] for e, o in zip(examples, out if isinstance(out, list) else [out])}

    answer_all(ds.examples[:8])                       # the same untimed warm-up as ours: the first 8 questions
    answer_all(ds.examples[:8], args.pipeline_batch)
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.startswith("run"):
            break
        batch = int(line.split()[1])
        t0 = time.perf_counter()
        answers = answer_all(ds.examples, batch)
        print(json.dumps({"seconds": time.perf_counter() - t0, "answers": answers,
                          "version": transformers.__version__}), flush=True)


class Baseline:
    """The pipeline in its warm subprocess: `run()` times one pass over the questions there."""

    def __init__(self, args):
        env = {**os.environ, "PYTHONPATH": args.hf4, "OMP_NUM_THREADS": str(args.threads)}
        cmd = [sys.executable, __file__, "--worker", "--model", args.model, "--n", str(args.n), "--seed",
               str(args.seed), "--threads", str(args.threads), "--pipeline-batch", str(args.pipeline_batch)]
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            sys.exit("bench: the baseline worker failed to start (see its stderr above)")

    def run(self, batch: int) -> dict:
        self.proc.stdin.write(f"run {batch}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            sys.exit("bench: the baseline worker died (see its stderr above)")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def bf16_and_fp32(qa, model, tok, exs):
    """The same questions run in bf16 and in fp32 (window-prob span scores): the windows, their start/end logits
    and the span candidates of every question, per precision."""
    s = qa.check_settings(tok, model.config, qa.QASettings(span_score="window-prob"))
    feats = qa.eval_features(tok, exs, s)
    logits, cands = {}, {}
    for p in ("bf16", "fp32"):
        logits[p] = qa.window_logits(model, feats.items, qa.QASettings(**{**qa.asdict(s), "precision": p}))
        cands[p] = [dict() for _ in exs]
        qa.add_spans(cands[p], feats, logits[p], range(len(feats.items)), s)
    return feats, logits, cands


def calibrate(args, qa, model, tok, exclude: set[str]) -> None:
    """bf16 vs fp32 on questions the benchmark does not use: how far bf16 moves the logits and, what matters,
    the score differences that decide answers (the best span vs the next 7 spans with another text,
    window-prob scores), for spans that overlap the best one and for disjoint ones; which answers bf16
    changes, at what bf16 margins; how many questions each verify_margin would re-run."""
    import random

    import numpy as np

    pool = [e for e in qa.load_data("squad-dev").examples if e.id not in exclude]
    exs = random.Random(args.seed + 1).sample(pool, min(args.calibrate, len(pool)))
    feats, logits, cands = bf16_and_fp32(qa, model, tok, exs)
    err = np.concatenate([np.abs(x - y) for w in range(len(feats.items))
                          for x, y in zip(logits["bf16"][w], logits["fp32"][w])])
    errs = {"overlapping": [], "disjoint": []}
    flips, near, far = [], [], []
    for e, c16, c32 in zip(exs, cands["bf16"], cands["fp32"]):
        (a, b), top = max(c16.items(), key=lambda kv: kv[1])
        best32 = max(c32.items(), key=lambda kv: kv[1])[0]
        flips.append(e.context[a:b] != e.context[best32[0]:best32[1]])
        n, f = qa.answer_margins(e.context, c16)
        near.append(n)
        far.append(f)
        others = [(sp, v) for sp, v in sorted(c16.items(), key=lambda kv: -kv[1])
                  if e.context[sp[0]:sp[1]] != e.context[a:b]][:7]
        for (i, j), v in others:
            if (i, j) in c32 and (a, b) in c32:
                moved = abs((top - v) - (c32[(a, b)] - c32[(i, j)]))
                errs["overlapping" if i < b and a < j else "disjoint"].append(moved)
    flips, near, far = np.array(flips), np.array(near), np.array(far)
    pct = (50, 90, 99, 99.9, 100)
    fmt = lambda xs: " / ".join(f"{x:.4f}" for x in np.percentile(xs, pct))   # noqa: E731
    print(f"calibration: {len(exs)} SQuAD dev questions outside the benchmark's sample, {len(feats.items)} windows; "
          f"percentiles {' / '.join(map(str, pct))}")
    print(f"  |bf16 - fp32| start/end logits: {fmt(err)}")
    for k, v in errs.items():
        print(f"  |error| bf16 adds to best-vs-other score differences, {k} spans ({len(v)} pairs): {fmt(v)}")
    lead = np.minimum(near, far)
    print(f"  answers bf16 changes: {flips.sum()}, bf16 lead over the other answer: "
          + ", ".join(f"{m:.4f}" for m in np.sort(lead[flips])))
    for t in (0.1, 0.2, 0.25, 0.3, 0.4):
        redo = (near < t / 2) | (far < t)
        print(f"  verify_margin {t:.2f} (overlapping {t / 2:.3f}): re-runs {redo.sum()}/{len(exs)} "
              f"({100 * redo.mean():.1f}%), changed answers left: {(flips & ~redo).sum()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a QA-fine-tuned model directory (e.g. from `qa train`)")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="ABBA rounds, odd (median of paired ratios)")
    ap.add_argument("--pipeline-batch", type=int, default=16, help="the pipeline's batch_size in the equal row")
    ap.add_argument("--variants", default="fp32/logit,fp32/window-prob,bf16/window-prob,bf16-verified/window-prob,"
                                          "bf16-verified:0.1/window-prob",
                    help="our runs, as PRECISION[:VERIFY_MARGIN]/SPAN_SCORE (see `bertology qa predict --help`)")
    ap.add_argument("--calibrate", type=int, default=0, metavar="N",
                    help="instead of the benchmark: compare bf16 with fp32 logits on N dev questions outside the "
                         "benchmark's sample, to choose bf16-verified's margin")
    ap.add_argument("--hf4", default=str(ROOT / "runs/qa/hf4"), help="side directory holding transformers 4.x")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return baseline_worker(args)

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(Path(__file__).parent))
    from common import check_odd, machine_load, precision_label

    check_odd(args.repeats)
    print(machine_load())
    from bertology.experiments import qa
    from bertology.metrics import qa_scores
    from bertology.core.models import load_model, load_tokenizer

    if not (Path(args.hf4) / "transformers").exists():
        sys.exit(f"bench: {args.hf4} holds no transformers 4.x; see this script's docstring")
    ds = load_questions(args.n, args.seed)
    tok = load_tokenizer(args.model)
    model = load_model(args.model, head="qa")
    if args.calibrate:
        return calibrate(args, qa, model, tok, {e.id for e in ds.examples})
    # Batch sizes differ: the pipeline answers one question at a time (batch 1), ours batches 16 length-sorted
    # windows. Stated in the output, and the first variant is also run at batch 1 ("@batch1"): equal batch.
    variants = args.variants.split(",")
    variants.append(variants[0] + "@batch1")
    settings = {}
    for variant in variants:
        spec, _, batch1 = variant.partition("@")
        precision, span_score = spec.split("/")
        precision, _, margin = precision.partition(":")
        settings[variant] = qa.QASettings(precision=precision, span_score=span_score,
                                          **({"verify_margin": float(margin)} if margin else {}),
                                          **({"eval_batch_size": 1} if batch1 else {}))
        qa.predict(model, tok, ds.examples[:8], settings[variant], progress=False)        # warm-up, untimed

    def ours_once() -> dict:
        out = {}
        for variant, s in settings.items():
            t0 = time.perf_counter()
            out[variant] = (qa.predict(model, tok, ds.examples, s, progress=False), time.perf_counter() - t0)
        return out

    # ABBA over rounds: baseline, ours | ours, baseline | ...; the median of each side's times is reported.
    baseline = Baseline(args)
    times: dict[str, list[float]] = {v: [] for v in variants}
    base_times: list[float] = []
    batched_times: list[float] = []
    for r in range(args.repeats):
        order = ("base", "ours") if r % 2 == 0 else ("ours", "base")
        for side in order:
            if side == "base":
                batched = baseline.run(args.pipeline_batch)
                batched_times.append(batched["seconds"])
                base = baseline.run(1)
                base_times.append(base["seconds"])
            else:
                runs = ours_once()
                for v, (_, secs) in runs.items():
                    times[v].append(secs)
    baseline.close()
    median = lambda xs: sorted(xs)[len(xs) // 2]   # noqa: E731  (odd repeats: one round's value)
    paired = lambda ours_t, base_t: median([b / a for a, b in zip(ours_t, base_t)])  # noqa: E731
    base["seconds"] = median(base_times)
    runs = {v: (runs[v][0], median(times[v])) for v in variants}
    print(f"ABBA x {args.repeats} rounds; medians; ratios from paired rounds. Pipeline runs (s), batch "
          f"{args.pipeline_batch}: " + ", ".join(f"{t:.2f}" for t in batched_times) + "; one at a time: "
          + ", ".join(f"{t:.2f}" for t in base_times))
    print(machine_load())

    refs = ds.references()
    n = len(refs)
    f_base = qa_scores(refs, base["answers"], "en")
    print(f"questions: {n} SQuAD dev (seed {args.seed}), model {args.model}, {args.threads} thread(s); batch: the "
          f"pipeline 1 question at a time, ours {qa.QASettings().eval_batch_size} length-sorted windows (and the first "
          f"variant again at batch 1: @batch1); warm-up: the same 8 questions on both sides, untimed")
    eq = "fp32/window-prob"
    if eq in runs:
        same = sum(runs[eq][0].answers[k] == batched["answers"][k] for k in refs)
        print(f"1. equal settings (fp32, the pipeline's span score, batch {args.pipeline_batch} on both sides; order: "
              f"ours length-sorted windows, the pipeline in arrival order, it has no sorting option): pipeline "
              f"{median(batched_times):.2f} s, ours {runs[eq][1]:.2f} s: {paired(times[eq], batched_times):.2f}x "
              f"(paired rounds), identical answers {same}/{n}")
    print(f"2. as each is used by default: HF pipeline (transformers {base['version']}, fp32, one question at a time):"
          f" {base['seconds']:7.2f} s  {n / base['seconds']:6.2f} q/s  EM {f_base['exact_match']:.2f} "
          f"F1 {f_base['f1']:.2f}")
    for variant, (ours, secs) in runs.items():
        f = qa_scores(refs, ours.answers, "en")
        same = sum(ours.answers[k] == base["answers"][k] for k in refs)
        print(f"bertology qa predict ({variant}): {secs:7.2f} s  {n / secs:6.2f} q/s  EM {f['exact_match']:.2f} "
              f"F1 {f['f1']:.2f}  ({ours.windows} windows)  vs the one-at-a-time fp32 pipeline "
              f"{paired(times[variant], base_times):.2f}x"
              f"{'' if variant.startswith('fp32') else ' (unequal: ' + precision_label('bf16') + ' vs fp32)'}  "
              f"identical answers {same}/{n} ({100 * same / n:.1f}%)"
              + (f"  re-run in fp32: {ours.rerun}/{n}" if variant.startswith("bf16-verified") else ""))
        for k in [k for k in refs if ours.answers[k] != base["answers"][k]][:3]:
            print(f"    differs {k}: ours {ours.answers[k]!r}  pipeline {base['answers'][k]!r}")


if __name__ == "__main__":
    main()
