"""Helpers shared by the benchmarks: the CPU and its ISA (cpu_info), the measured GEMM peak stored by bench/peak.py
(load_peak, peak_fraction), and the protocol of bench/README.md (machine_load, abba, paired_ratio, report_abba,
compare_arrays)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

PEAK_FILE = Path(__file__).resolve().parent / "results" / "peak.json"


# --------------------------------------------------------------------------------------------- the machine
def cpu_info() -> dict:
    """The CPU as /proc/cpuinfo names it, the vector ISA it exposes (a hypervisor may hide some: the flags are
    what code can use), whether bf16 matmuls are native, and the theoretical FLOP per cycle per core that ISA
    allows: fp32 FMA lanes x 2 FLOP x 2 FMA pipes (AVX2: 8 lanes -> 32; AVX-512: 16 -> 64); bf16 with AMX 1,024
    (one TMUL tile op per cycle, 16x32 bf16 pairs), with AVX512-BF16 128 (vdpbf16ps: 2x the fp32 rate), else
    None: bf16 is emulated on the fp32 units and has no peak of its own."""
    from bertology.core.precision import native_bf16

    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break                                   # the first processor is enough
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    isa = [name for name, flag in (("AMX-BF16", "amx_bf16"), ("AVX512-BF16", "avx512_bf16"),
                                   ("AVX-512", "avx512f"), ("AVX2", "avx2"), ("FMA", "fma")) if flag in flags]
    fp32 = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 8
    bf16 = 1024 if "amx_bf16" in flags else 128 if "avx512_bf16" in flags else None
    return {"model": fields.get("model name", "unknown CPU"), "vendor": fields.get("vendor_id", ""),
            "family": fields.get("cpu family", ""), "model_id": fields.get("model", ""),
            "mhz": float(fields.get("cpu MHz", 0) or 0), "isa": isa, "native_bf16": native_bf16(),
            "fp32_flop_per_cycle_per_core": fp32, "bf16_flop_per_cycle_per_core": bf16}


def cpu_line() -> str:
    """One line naming the CPU, its ISA and whether bf16 is native (every benchmark prints it)."""
    c = cpu_info()
    bf16 = "bf16 native" if c["native_bf16"] else "bf16 NOT native (emulated on the fp32 units, slower than fp32)"
    return (f"cpu: {c['model']} (family {c['family']} model {c['model_id']}, {c['mhz']:.0f} MHz), "
            f"ISA {'+'.join(c['isa']) or 'none of AVX2/AVX-512/AMX'}, {bf16}")


def precision_label(precision: str) -> str:
    """'bf16 (emulated: no native bf16 on this CPU)' where bf16 is not native, so no bf16 row pretends."""
    from bertology.core.precision import native_bf16

    return precision if precision != "bf16" or native_bf16() else "bf16 (emulated: no native bf16 on this CPU)"


def load_peak(path: Path = PEAK_FILE) -> dict | None:
    """The JSON bench/peak.py wrote, or None when it has not been run on this machine."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def peak_fraction(flop_per_s: float, dtype: str, threads: int) -> str:
    """'80.1% of the fp32 GEMM peak (73 GFLOP/s, ...)': achieved FLOP/s against the machine's GEMM peak at the
    same thread count: the best rate bench/peak.py measured over all its shapes (model shapes and the large
    square). One peak for every workload: the best shape, because a peak is what the machine can reach, and a
    per-shape peak let a workload score above 100% (embedding at 107% of the square's 55 GFLOP/s, whose
    1-thread rate is below the model shapes' 71-73)."""
    peak = load_peak()
    if peak is None:
        return f"no peak: run bench/peak.py first ({PEAK_FILE} missing)"
    if peak.get("cpu", {}).get("model") != cpu_info()["model"]:
        return f"no peak: {PEAK_FILE.name} was measured on another CPU ({peak.get('cpu', {}).get('model')})"
    rows = [g for g in peak["gemm"] if g["threads"] == threads and g["dtype"] == dtype]
    if not rows:
        return f"no {dtype} peak at {threads} thread(s) in {PEAK_FILE.name} (run bench/peak.py --threads {threads})"
    best = max(rows, key=lambda g: g["gflops"])
    return (f"{100 * flop_per_s / 1e9 / best['gflops']:.1f}% of the {dtype} GEMM peak ({best['gflops']:.0f} GFLOP/s, "
            f"{best['shape']}, {threads} thread(s), bench/peak.py {peak['measured_at'][:16]}, "
            f"load {peak['load_before'][0]:.1f})")


def gemm_rate(m: int, k: int, n: int, dtype=torch.float32, seconds: float = 0.5, windows: int = 3) -> float:
    """Measured FLOP/s of an [m x k] x [k x n] matmul in `dtype` with the current thread count: the best of
    `windows` timing windows of about `seconds` each (at least one product each), after one untimed product.
    The best window, since a peak is what the machine can reach; another process's burst only lowers a window.
    A product slower than the whole budget (emulated bf16: ~1 GFLOP/s, 10 s for one BERT-base FF GEMM) stops
    after the first window, so the script stays short."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    start = time.perf_counter()
    torch.mm(a, b, out=out)
    best = 0.0
    for _ in range(windows):
        if best and time.perf_counter() - start > windows * seconds:
            break
        reps, t0 = 0, time.perf_counter()
        while reps < 1 or time.perf_counter() - t0 < seconds:
            torch.mm(a, b, out=out)
            reps += 1
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - t0))
    return best


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
    line = (f"{cpu_line()}\nmachine: load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} CPUs, "
            f"torch threads {torch.get_num_threads()}")
    try:
        ps = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True, timeout=5)
        busy = [l.split(None, 1) for l in ps.stdout.splitlines()[1:6]]
        line += "; busiest: " + ", ".join(f"{c.strip()} {p}%" for p, c in busy if float(p) >= 5)
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return line


def check_odd(repeats: int) -> int:
    """An odd number of ABBA rounds, so the median is one round's value (of two, the median would be a mean or,
    as bench/qa_predict.py once took it, the slower)."""
    if repeats < 1 or repeats % 2 == 0:
        raise SystemExit(f"--repeats must be odd (1, 3, 5 ...), not {repeats}: the median must be one round's")
    return repeats


def abba(sides: dict, repeats: int = 3, warmup: int = 1) -> dict:
    """Time two callables fairly: `warmup` untimed calls of each (equal on both sides), then `repeats` rounds in
    ABBA order (A B B A A B B A ...), so drift in the machine's load hits both sides alike. Returns, per side,
    {"median": s, "times": [...], "result": the last call's return value} (the result is for comparing
    outputs). Each call must do the whole timed work (a fresh pass over the same inputs)."""
    check_odd(repeats)
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


def paired_ratio(res: dict) -> tuple[float, float, float]:
    """(median, min, max) over rounds of B's time / A's time, each from the same ABBA round (adjacent runs, the
    same machine load): a ratio never divides one run's median by another run's."""
    (_, ra), (_, rb) = res.items()
    ratios = [tb / ta for ta, tb in zip(ra["times"], rb["times"])]
    return statistics.median(ratios), min(ratios), max(ratios)


def report_abba(res: dict, unit_work: float | None = None, unit: str = "items") -> str:
    """'A median 1.23 s (1.20-1.30, 3 runs) | B ... | A / B: 2.1x faster (paired rounds 2.0-2.2)' for two sides
    timed by `abba` in one run."""
    (a, ra), (b, rb) = res.items()
    parts = []
    for name, r in res.items():
        rate = f", {unit_work / r['median']:,.0f} {unit}/s" if unit_work else ""
        parts.append(f"{name}: median {r['median']:.3f} s ({min(r['times']):.3f}-{max(r['times']):.3f}, "
                     f"{len(r['times'])} runs{rate})")
    ratio, low, high = paired_ratio(res)
    return " | ".join(parts) + f" | {a} / {b}: {ratio:.2f}x faster (paired rounds {low:.2f}-{high:.2f})"


def compare_arrays(a, b, atol: float, rtol: float = 0.0) -> str:
    """Outputs compared within a stated tolerance: raises AssertionError beyond it, else says how close."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"outputs differ in shape: {a.shape} vs {b.shape}"
    diff = np.abs(a - b)
    worst = float(diff.max()) if diff.size else 0.0
    assert np.all(diff <= atol + rtol * np.abs(b)), f"outputs differ: max |diff| {worst:.3g} > atol {atol} (rtol {rtol})"
    return f"outputs equal within atol {atol:g}, rtol {rtol:g} (max |diff| {worst:.3g})"
