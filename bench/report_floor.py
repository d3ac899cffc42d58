"""The least time `make report`'s two training sections can take on this CPU (issue 28's 8-minute goal).

    .venv/bin/python bench/report_floor.py OUT [--goal 480]

OUT is the folder of a finished `make report` (or `bertology report`) run. From what that run did (each transfer
run's optimizer steps, batch and sequence length; the QA fine-tuning's count of real, unpadded tokens) it counts the
floating-point work of training, 6 x (non-embedding parameters) + 12 x layers x length x width per token (forward
2, backward 4; the attention scores and their weighted sum), and divides it by the fastest fp32 GEMM rate
bench/peak.py measured on this machine (bench/results/peak.json, all cores). That is a floor: it leaves out the
embedding and output layers, layer norms, activations, the optimizer, every prediction pass and every other
section, and assumes every FLOP runs at the best GEMM's speed. Printed beside each floor: the section's measured
time and the fraction of the peak it reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_peak  # noqa: E402


def train_flop_per_token(config, length: float) -> float:
    """Training FLOPs per token of a BERT encoder at sequence length `length` (see the module docstring)."""
    d, layers, ffn = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    params = layers * (4 * d * d + 2 * d * ffn)          # Q, K, V, output; the two feed-forward matrices
    return 6 * params + 12 * layers * length * d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="a finished report's folder")
    ap.add_argument("--goal", type=float, default=480.0, help="the goal in seconds (issue 28: 8 minutes)")
    args = ap.parse_args()

    from bertology.core.models import load_config
    from bertology.experiments.crossdomain import load_task

    peak = load_peak()
    rate = max(g["gflops"] for g in peak["gemm"] if g["dtype"] == "fp32") * 1e9
    print(f"{peak['cpu_line']}\nfastest fp32 GEMM, {max(peak['threads'])} threads: {rate / 1e9:.0f} GFLOP/s")

    rows, floor_total, measured_total = [], 0.0, 0.0
    for res_file in sorted((args.out / "crossdomain").glob("*/results.json")):
        doc = json.loads(res_file.read_text())
        cfg = load_config(doc["model"])
        task = load_task(doc["task"])
        length = min(max(len(s) for s in task.sequences), doc["settings"]["max_length_used"] - 2) + 2
        batch = doc["settings"]["batch_size"]
        for run in doc["runs"]:
            if not run["steps"]:
                continue                                  # the k-mer baseline trains no network
            tokens = run["steps"] * batch * length
            floor = tokens * train_flop_per_token(cfg, length) / rate
            rows.append((f"transfer {doc['model']} {run['condition']}", tokens, floor, run["wall_time"]))
    qa_file = args.out / "qa" / "results.json"
    if qa_file.exists():
        doc = json.loads(qa_file.read_text())
        if doc.get("train"):
            t = doc["train"]
            tokens = t["tokens_per_s"] * t["wall_time"]
            length = tokens / t["train_windows"]          # the mean real length of a training window
            floor = tokens * train_flop_per_token(load_config(doc["model"]), length) / rate
            rows.append((f"QA training {doc['model']}", tokens, floor, t["wall_time"]))
    if not rows:
        sys.exit(f"{args.out}: no transfer or QA training results under it (crossdomain/*/results.json, "
                 "qa/results.json)")
    print("\n| training | tokens | floor (s) | measured (s) | of peak |\n|---|---|---|---|---|")
    for name, tokens, floor, measured in rows:
        floor_total += floor
        measured_total += measured
        print(f"| {name} | {tokens:,.0f} | {floor:.0f} | {measured:.0f} | {floor / measured:.0%} |")
    print(f"| **all** | | **{floor_total:.0f}** | {measured_total:.0f} | {floor_total / measured_total:.0%} |")
    report = args.out / "results.json"
    whole = json.loads(report.read_text()).get("wall_seconds") if report.exists() else None
    print(f"\nfloor of the training alone: {floor_total:.0f} s = {floor_total / args.goal:.2f} x the "
          f"{args.goal:.0f} s goal" + (f"; the whole report took {whole:.0f} s" if whole else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
