"""Precision policy: the numeric precisions a model can run in, checked once where a choice enters the
library, and the one way to run a model in each.

- `fp32`: as loaded.
- `bf16` for training and plain inference: autocast (`autocast`), fp32 master weights; the model is untouched.
- Two explicit, named alternatives for inference, faster on CPUs than autocast (which re-casts the weights at
  every matmul):
  - `cast_in_place`: the caller's module itself is cast to bf16 once (the embedding experiments, which own
    their model);
  - `cpu_fusion.fused_bf16_copy`: a bf16 deep copy with oneDNN-fused linears and an fp32 span head (QA
    prediction, whose caller keeps training or comparing its fp32 model).
- `bf16-verified` (QA prediction only): bf16, then the near-tie questions re-run in fp32 (experiments.qa).

A precision is checked once, where it enters (`check_precision`: a command's options, a server's settings, an
experiment's entry point); below that it is trusted, and a name that is not a precision is a programming error
(ValueError), not a user's.
"""

from __future__ import annotations

import contextlib

import torch

from ..config import PREDICT_PRECISIONS, PRECISIONS  # noqa: F401  (declared with the settings, torch-free)
from ..errors import UserError


def check_precision(precision: str, allowed: tuple[str, ...] = PRECISIONS) -> str:
    """`precision` if it is one of `allowed` (default: fp32 | bf16), else exit 2 naming the choices."""
    if precision not in allowed:
        raise UserError(f"`precision` must be one of {', '.join(allowed)}, not {precision!r}", fields=('precision',))
    return precision


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 matmuls run natively (a GPU, or a CPU with AVX512-BF16 or AMX). Elsewhere (an AVX2-only CPU)
    PyTorch emulates them, about 20x slower than fp32 (splice fine-tuning: 31 s a step against 1.7 s), so a
    choice made for speed must not pick bf16 there."""
    if torch.device(device).type == "cuda":
        return True
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def fast_precision(device: torch.device | str = "cpu") -> str:
    """The faster precision on this machine: bf16 where it is native, else fp32. For settings chosen for speed
    (the report's quick runs); a precision the user asks for is used as asked."""
    return "bf16" if native_bf16(device) else "fp32"


def dtype_of(precision: str) -> torch.dtype:
    """The weights' dtype of a checked precision (fp32 | bf16)."""
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if precision not in dtypes:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(dtypes)}: check_precision it where "
                         f"it enters")
    return dtypes[precision]


def autocast(precision: str, device: torch.device | str = "cpu"):
    """bf16 autocast context (fp32 master weights); a no-op for fp32."""
    if dtype_of(precision) == torch.bfloat16:
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cast_in_place(model: torch.nn.Module, precision: str, device: torch.device | str | None = None):
    """Cast the caller's module itself to the precision's dtype (on `device`), once: no autocast needed."""
    dtype = dtype_of(precision)
    return model.to(device, dtype=dtype) if device is not None else model.to(dtype)
