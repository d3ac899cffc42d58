"""Helpers shared by the benchmarks: this CPU's measured matmul peak, timing."""

from __future__ import annotations

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
