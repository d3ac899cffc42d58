"""Questions per second of `bertology qa predict` against the Hugging Face question-answering pipeline, on
the same QA model and the same SQuAD dev questions, measured in one run; plus how often the answers agree.

transformers 5 removed the question-answering pipeline, so the baseline runs the last 4.x release (4.57) in
a subprocess from a side directory, with the same torch. Create it once (about 15 MB, no torch download):

    .venv/bin/pip install --no-deps --target runs/qa/hf4 "transformers<5" "tokenizers>=0.22,<=0.23.0" \
        "huggingface_hub<1.0" requests certifi charset_normalizer idna urllib3

    .venv/bin/python bench/qa_predict.py --model runs/qa/minilm-squad5k/model --n 500 --threads 1

The pipeline is called the usual way, one question at a time, with our settings (max_seq_len 384,
doc_stride 128, max_answer_len 30) and align_to_words=False (so neither side widens spans to whole words).
The pipeline runs fp32. Ours runs fp32 with run_qa's span score (raw logits compared across windows), fp32
with the pipeline's (probabilities normalised per window: same arithmetic, answers should be identical) and
bf16 (one of its features; answers may differ where two spans nearly tie).
Goal: >= 3x with identical answers.
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
    from bertology import qa

    return qa.load_data("squad-dev").sample(n, seed)


def baseline_worker(args) -> None:
    """Runs under transformers 4.x: the pipeline, one question at a time; prints JSON on stdout."""
    import torch
    import transformers
    from transformers import pipeline

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    ds = load_questions(args.n, args.seed)
    pipe = pipeline("question-answering", model=args.model, tokenizer=args.model, device=-1)
    pipe(question=ds.examples[0].question, context=ds.examples[0].context)   # warm-up, as ours gets
    t0 = time.perf_counter()
    answers = {}
    for e in ds.examples:
        r = pipe(question=e.question, context=e.context, max_seq_len=384, doc_stride=128, max_answer_len=30,
                 align_to_words=False)
        answers[e.id] = r["answer"]
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": secs, "answers": answers, "version": transformers.__version__}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a QA-fine-tuned model directory (e.g. from `qa train`)")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default="fp32/logit,fp32/window-prob,bf16/window-prob",
                    help="our runs, as PRECISION/SPAN_SCORE (see `bertology qa predict --help`)")
    ap.add_argument("--hf4", default=str(ROOT / "runs/qa/hf4"), help="side directory holding transformers 4.x")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return baseline_worker(args)

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    from bertology import qa
    from bertology.metrics import qa_scores
    from bertology.models import load_model, load_tokenizer

    if not (Path(args.hf4) / "transformers").exists():
        sys.exit(f"bench: {args.hf4} holds no transformers 4.x; see this script's docstring")
    ds = load_questions(args.n, args.seed)
    tok = load_tokenizer(args.model)
    model = load_model(args.model, head="qa")
    runs = {}
    for variant in args.variants.split(","):
        precision, span_score = variant.split("/")
        s = qa.QASettings(precision=precision, span_score=span_score)
        qa.predict(model, tok, ds.examples[:8], s, progress=False)        # warm-up
        t0 = time.perf_counter()
        runs[variant] = (qa.predict(model, tok, ds.examples, s, progress=False), time.perf_counter() - t0)

    env = {**os.environ, "PYTHONPATH": args.hf4, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--worker", "--model", args.model, "--n", str(args.n), "--seed",
           str(args.seed), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"bench: baseline failed:\n{proc.stderr[-2000:]}")
    base = json.loads(proc.stdout.strip().splitlines()[-1])

    refs = ds.references()
    n = len(refs)
    f_base = qa_scores(refs, base["answers"], "en")
    print(f"questions: {n} SQuAD dev (seed {args.seed}), model {args.model}, {args.threads} thread(s)")
    print(f"HF pipeline (transformers {base['version']}, fp32, one question at a time): {base['seconds']:7.2f} s  "
          f"{n / base['seconds']:6.2f} q/s  EM {f_base['exact_match']:.2f} F1 {f_base['f1']:.2f}")
    for variant, (ours, secs) in runs.items():
        f = qa_scores(refs, ours.answers, "en")
        same = sum(ours.answers[k] == base["answers"][k] for k in refs)
        print(f"bertology qa predict ({variant}): {secs:7.2f} s  {n / secs:6.2f} q/s  EM {f['exact_match']:.2f} "
              f"F1 {f['f1']:.2f}  ({ours.windows} windows)  speed-up {base['seconds'] / secs:.2f}x  "
              f"identical answers {same}/{n} ({100 * same / n:.1f}%)")
        for k in [k for k in refs if ours.answers[k] != base["answers"][k]][:3]:
            print(f"    differs {k}: ours {ours.answers[k]!r}  pipeline {base['answers'][k]!r}")


if __name__ == "__main__":
    main()
