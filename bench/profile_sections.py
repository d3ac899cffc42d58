"""Where the time goes in the report's two slowest sections (issue 29): the QA section (fine-tune on SQuAD,
answer XQuAD in English and Chinese) and the transfer section (splice-junction fine-tuning), each at the
report's quick settings but scaled down to a short run. Prints, per section, the wall time of its phases
(tokenisation, training, prediction), torch.profiler's operators by self CPU time, and cProfile's bertology
functions by cumulative time.

    .venv/bin/python bench/profile_sections.py [--section qa,transfer] [--threads 1] [--steps 8]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_load, set_threads  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def qa_section(args, out: Path) -> None:
    """The quick QA section's work: minilm, windows of 192 tokens, batch 16, fp32 here (fast_precision)."""
    from bertology.core.precision import fast_precision
    from bertology.experiments.qa import QASettings, TrainSettings, load_data, predict, train

    s = QASettings(max_length=192, doc_stride=64, precision=fast_precision())
    t = TrainSettings(max_steps=args.steps, batch_size=16, lr=2e-4, checkpoint_every=100000)
    train_set = load_data("squad-train", str(DATA)).sample(16 * args.steps, 0)
    model, tok, res = train(args.model, [train_set], None, out / "qa", s, t, progress=False)
    print(f"  train: {res.steps} steps in {res.wall_time:.1f} s ({res.wall_time / max(1, res.steps):.2f} s a step)")
    for lang in ("en", "zh"):
        ev = load_data(f"xquad-{lang}", str(DATA)).sample(args.questions, 0)
        t0 = time.perf_counter()
        predict(model, tok, ev.examples, s, progress=False)
        print(f"  predict XQuAD-{lang}: {args.questions} questions in {time.perf_counter() - t0:.1f} s")


def transfer_section(args, out: Path) -> None:
    """The quick transfer section's work: splice, the pretrained condition, one epoch, on a subset."""
    from bertology.core.precision import fast_precision
    from bertology.experiments.crossdomain import CrossDomainConfig, run_crossdomain

    cfg = CrossDomainConfig(model=args.model, task="splice", conditions=("pretrained",), seeds=1, epochs=1,
                            patience=None, precision=fast_precision(), limit=args.splice, data_dir=str(DATA),
                            progress=False)
    t0 = time.perf_counter()
    res = run_crossdomain(cfg, out / "transfer")
    run = res.runs[0]
    print(f"  {args.splice} splice sequences, one epoch: {run.steps} steps, run {run.wall_time:.1f} s, "
          f"whole call {time.perf_counter() - t0:.1f} s")


def profile(name, fn, args, out: Path) -> None:
    print(f"\n== {name} ==", flush=True)
    prof = cProfile.Profile()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as tp:
        prof.enable()
        fn(args, out)
        prof.disable()
    print("  torch operators by self CPU time:")
    table = tp.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40)
    print("\n".join("  " + line for line in table.splitlines()))
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).sort_stats("cumulative")
    stats.print_stats(r"bertology|transformers/(models|tokenization)", args.rows)
    print("  Python functions (bertology, transformers models/tokenizers) by cumulative time:")
    body = buf.getvalue()
    print("\n".join("  " + line for line in body[body.find("ncalls"):].splitlines() if line.strip()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", default="qa,transfer")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=8, help="QA training steps (batch 16)")
    ap.add_argument("--questions", type=int, default=30, help="XQuAD questions per language")
    ap.add_argument("--splice", type=int, default=160, help="splice sequences (the quick report: all 3,190)")
    ap.add_argument("--rows", type=int, default=15)
    args = ap.parse_args()
    set_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()
    print(machine_load(), flush=True)
    sections = {"qa": qa_section, "transfer": transfer_section}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.section.split(","):
            profile(name, sections[name], args, Path(tmp))
    print(machine_load())


if __name__ == "__main__":
    main()
