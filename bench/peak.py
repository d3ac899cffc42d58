"""The machine's GEMM peak, measured one way, for every benchmark's "fraction of peak" (bench/common.peak_fraction).

Measures fp32 and bf16 matmul throughput (GFLOP/s) at the shapes the models run (a batch of `--tokens` token rows
times each encoder weight: MiniLM-L6 H384 / FF1536 and BERT-base H768 / FF3072: QKV and attention output
[T x H] x [H x H], FF in [T x H] x [H x FF], FF out [T x FF] x [FF x H]) and at a large square shape, at each
thread count asked. Prints the CPU model (/proc/cpuinfo), the ISA the machine exposes (AMX / AVX-512 / AVX2 /
FMA), its theoretical FLOP per cycle per core and the theoretical peak at the nominal clock, whether bf16 is
native (on an AVX2-only CPU bf16 is emulated: its row says so), and the machine's load before and after. Each
figure is the best of three short windows (a peak is what the machine reaches). Emulated bf16 (~1 GFLOP/s)
runs at `--bf16-tokens` rows and a square of at most 1,024, so the script stays under a few minutes. Stores JSON in
bench/results/peak.json (atomically), the file the other benchmarks read.

Measure on an idle machine: a peak measured under load is low, and every fraction computed from it high.

    .venv/bin/python bench/peak.py [--threads 1,2] [--tokens 2048] [--square 2048] [--seconds 0.4]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import PEAK_FILE, cpu_info, cpu_line, gemm_rate, machine_load, precision_label, set_threads  # noqa: E402

MODELS = {"minilm": (384, 1536), "bert-base": (768, 3072)}     # hidden, intermediate


def shapes(tokens: int, square: int) -> list[tuple[str, int, int, int]]:
    """(name, m, k, n): every encoder GEMM of both models at `tokens` rows, then the large square."""
    out = []
    for model, (h, ff) in MODELS.items():
        out += [(f"{model} qkv/out [{tokens}x{h}]x[{h}x{h}]", tokens, h, h),
                (f"{model} ff-in [{tokens}x{h}]x[{h}x{ff}]", tokens, h, ff),
                (f"{model} ff-out [{tokens}x{ff}]x[{ff}x{h}]", tokens, ff, h)]
    return out + [(f"square {square}", square, square, square)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--tokens", type=int, default=2048, help="token rows of the model-shape GEMMs")
    ap.add_argument("--bf16-tokens", type=int, default=256,
                    help="token rows for bf16 where it is emulated (~1 GFLOP/s: 2048 rows would take minutes)")
    ap.add_argument("--square", type=int, default=2048, help="side of the large square GEMM")
    ap.add_argument("--seconds", type=float, default=0.4, help="length of each of the 3 timing windows")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--out", default=str(PEAK_FILE), help=f"JSON written here (default {PEAK_FILE})")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    wanted = [d.strip() for d in args.dtypes.split(",")]
    if any(d not in dtypes for d in wanted):
        raise SystemExit(f"--dtypes: choose from fp32,bf16, not {args.dtypes!r}")
    load_before = os.getloadavg()
    print(machine_load(), flush=True)
    cpu = cpu_info()
    ghz = cpu["mhz"] / 1000
    theory = {"fp32": cpu["fp32_flop_per_cycle_per_core"], "bf16": cpu["bf16_flop_per_cycle_per_core"]}
    print(f"theoretical FLOP/cycle/core: fp32 {theory['fp32']} ({'+'.join(cpu['isa'])}: FMA lanes x 2 FLOP x 2 pipes)"
          f", bf16 {theory['bf16'] or 'none (emulated)'}; at the nominal {ghz:.2f} GHz: fp32 "
          f"{theory['fp32'] * ghz:.0f} GFLOP/s per core" + (f", bf16 {theory['bf16'] * ghz:.0f}" if theory["bf16"] else ""))
    rows = []
    for t in threads:
        set_threads(t)
        for dtype in wanted:
            emulated = dtype == "bf16" and not cpu["native_bf16"]
            rows_t, side = (args.bf16_tokens, min(args.square, 1024)) if emulated else (args.tokens, args.square)
            for name, m, k, n in shapes(rows_t, side):
                gflops = gemm_rate(m, k, n, dtypes[dtype], args.seconds) / 1e9
                limit = theory[dtype] * ghz * t if theory[dtype] else None
                of_theory = f"{100 * gflops / limit:5.1f}% of theoretical" if limit else "no native peak"
                print(f"{t} thread(s) {precision_label(dtype):44s} {name:38s} {gflops:8.1f} GFLOP/s  {of_theory}",
                      flush=True)
                rows.append({"threads": t, "dtype": dtype, "shape": name, "m": m, "k": k, "n": n,
                             "gflops": round(gflops, 2), "theoretical_gflops": round(limit, 1) if limit else None})
    load_after = os.getloadavg()
    print(machine_load())
    if load_before[0] > 0.5 * (os.cpu_count() or 1):
        print(f"WARNING: measured under load ({load_before[0]:.2f} on {os.cpu_count()} CPUs): the peak is low and "
              f"every fraction computed from it high; re-run on an idle machine")
    result = {"version": 1, "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "cpu": cpu, "cpu_line": cpu_line(), "torch": torch.__version__, "threads": threads,
              "tokens": args.tokens, "square": args.square, "seconds_per_window": args.seconds,
              "load_before": list(load_before), "load_after": list(load_after),
              "cpus": os.cpu_count(), "gemm": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
