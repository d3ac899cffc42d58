"""Helpers shared by the benchmarks: this CPU's measured matmul peak, and the protocol of bench/README.md
(machine_load, abba, report_abba, compare_arrays)."""

from __future__ import annotations

import statistics
import time

import torch


def matmul_peak(dtype=torch.float32, n: int = 2048, seconds: float = 2.0) -> float:
    """Measured FLOP/s of a large square matmul in `dtype` with the current thread count."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def encoder_flops_per_token(config, seq_len: float) -> float:
    """Forward FLOPs per token of a BERT encoder: 2 x (non-embedding weights) + attention scores/values."""
    h, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    weights = layers * (4 * h * h + 2 * h * ff)
    return 2 * weights + layers * 4 * seq_len * h


# --------------------------------------------------------------------------------------------- the protocol
# bench/README.md: equal untimed warm-up on both sides, ABBA order with repeats and the median, the same
# threads / batch / truncation / precision (or both stated), outputs compared, the machine's load printed.

def set_threads(n: int) -> None:
    """The same thread count for torch and for numpy's BLAS (threadpoolctl), so both sides use n threads."""
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        import os

        os.environ["OMP_NUM_THREADS"] = str(n)     # effective only before numpy's BLAS starts


def machine_load() -> str:
    """One line: load average, CPUs, torch threads, and the busiest other processes (what else ran)."""
    import os
    import subprocess

    one, five, fifteen = os.getloadavg()
    line = (f"machine: load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} CPUs, "
            f"torch threads {torch.get_num_threads()}")
    try:
        ps = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True, timeout=5)
        busy = [l.split(None, 1) for l in ps.stdout.splitlines()[1:6]]
        line += "; busiest: " + ", ".join(f"{c.strip()} {p}%" for p, c in busy if float(p) >= 5)
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return line


def abba(sides: dict, repeats: int = 3, warmup: int = 1) -> dict:
    """Time two callables fairly: `warmup` untimed calls of each (equal on both sides), then `repeats` rounds in
    ABBA order (A B B A A B B A ...), so drift in the machine's load hits both sides alike. Returns, per side,
    {"median": s, "times": [...], "result": the last call's return value} (the result is for comparing
    outputs). Each call must do the whole timed work (a fresh pass over the same inputs)."""
    (a, fa), (b, fb) = sides.items()
    out = {a: {"times": [], "result": None}, b: {"times": [], "result": None}}
    for _ in range(warmup):
        fa()
        fb()
    for r in range(repeats):
        order = [(a, fa), (b, fb)] if r % 2 == 0 else [(b, fb), (a, fa)]
        for name, fn in order:
            t0 = time.perf_counter()
            result = fn()
            out[name]["times"].append(time.perf_counter() - t0)
            out[name]["result"] = result
    for v in out.values():
        v["median"] = statistics.median(v["times"])
    return out


def report_abba(res: dict, unit_work: float | None = None, unit: str = "items") -> str:
    """'A median 1.23 s (1.20-1.30, 4 runs) | B ... | A/B speed-up 2.1x' for two sides timed by `abba`."""
    (a, ra), (b, rb) = res.items()
    parts = []
    for name, r in res.items():
        rate = f", {unit_work / r['median']:,.0f} {unit}/s" if unit_work else ""
        parts.append(f"{name}: median {r['median']:.3f} s ({min(r['times']):.3f}-{max(r['times']):.3f}, "
                     f"{len(r['times'])} runs{rate})")
    return " | ".join(parts) + f" | {a} / {b}: {rb['median'] / ra['median']:.2f}x faster"


def compare_arrays(a, b, atol: float, rtol: float = 0.0) -> str:
    """Outputs compared within a stated tolerance: raises AssertionError beyond it, else says how close."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"outputs differ in shape: {a.shape} vs {b.shape}"
    diff = np.abs(a - b)
    worst = float(diff.max()) if diff.size else 0.0
    assert np.all(diff <= atol + rtol * np.abs(b)), f"outputs differ: max |diff| {worst:.3g} > atol {atol} (rtol {rtol})"
    return f"outputs equal within atol {atol:g}, rtol {rtol:g} (max |diff| {worst:.3g})"
