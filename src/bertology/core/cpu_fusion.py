"""oneDNN fusion for CPU inference: a BERT-family model's linears as single oneDNN calls on pre-packed weights,
with the following GELU or residual add fused in (what torch.compile's CPU freezing passes do, without
compiling), and the bf16 inference copy QA prediction runs (`fused_bf16_copy`). Every swap is checked against
the module it replaces; the precision policy itself is core.precision.
"""

from __future__ import annotations

import copy
import warnings

import torch


class Fp32Head(torch.nn.Module):
    """The span head in fp32 on bf16 hidden states: start/end logits are not rounded to bf16's 8 bits (which
    would make spans tie: logits of 2-4 would only come in steps of 1/64)."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.linear = linear

    def forward(self, x):
        return self.linear(x.float())


class OneDnnLinear(torch.nn.Module):
    """An nn.Linear (bf16 or fp32) as one oneDNN call on a pre-packed weight, optionally with the following GELU
    (erf) or residual add fused into the matmul: what torch.compile's CPU freezing passes do, without compiling.
    With layer_norm: forward(x, other) = LayerNorm(x W^T + b + other), i.e. BertSelfOutput / BertOutput
    (dropout is the identity at inference)."""

    def __init__(self, linear: torch.nn.Linear, act: str = "none", layer_norm=None, batch_hint: int = 4096):
        super().__init__()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), batch_hint)
        self.bias = None if linear.bias is None else linear.bias.detach()
        self.act = act
        self.layer_norm = layer_norm

    def forward(self, x, other=None):
        if other is None:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.act, [], "none")
        y = torch.ops.mkldnn._linear_pointwise.binary(x, other.contiguous(), self.weight, self.bias, "add")
        return self.layer_norm(y)


def _is_erf_gelu(act) -> bool:
    f = getattr(act, "act", act)
    return f is torch.nn.functional.gelu or (isinstance(act, torch.nn.GELU) and act.approximate == "none")


def _swap_if_equal(parent, name, child, make, args, skipped: list[str] | None = None) -> int:
    """Replace parent.name by make() when it gives the original module's output on a random input; otherwise
    keep the original and append why to `skipped` (fuse_onednn warns with the list: nothing is dropped silently)."""
    try:
        new = make()
        with torch.inference_mode():
            ref, got = child.eval()(*args).float(), new(*args).float()
        if got.shape != ref.shape or not torch.allclose(got, ref, atol=0.1, rtol=0.05):
            err = float((got - ref).abs().max()) if got.shape == ref.shape else f"shape {tuple(got.shape)}"
            if skipped is not None:
                skipped.append(f"{type(child).__name__} {name}: fused output differs (max |diff| {err})")
            return 0
    except Exception as e:   # noqa: BLE001 - an op or a signature this torch / architecture lacks: keep eager
        if skipped is not None:
            skipped.append(f"{type(child).__name__} {name}: {type(e).__name__}: {e}".splitlines()[0][:200])
        return 0
    setattr(parent, name, new)
    return 1


def fuse_onednn(model: torch.nn.Module) -> int:
    """Swap the BERT-family blocks of a CPU model (in place) for oneDNN fused ops (OneDnnLinear): dense+GELU
    (…Intermediate) and dense+residual add (…SelfOutput / …Output, then LayerNorm); in bf16 also the other
    linears (query/key/value), for their pre-packed weights. Each swap is checked against the original module
    on a random input and skipped when it disagrees or fails (another architecture, a torch without these
    ops); skipped swaps are listed in a RuntimeWarning and kept in `model.onednn_skipped`. Returns how many
    modules were swapped."""
    if not (hasattr(torch.ops.mkldnn, "_linear_pointwise") and torch.backends.mkldnn.is_available()):
        return 0
    swapped, skipped = 0, []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            dense = getattr(child, "dense", None)
            if not isinstance(dense, torch.nn.Linear) or dense.weight.dtype not in (torch.bfloat16, torch.float32):
                continue
            x = torch.randn(2, 5, dense.in_features, dtype=dense.weight.dtype)
            if hasattr(child, "intermediate_act_fn") and _is_erf_gelu(child.intermediate_act_fn):
                swapped += _swap_if_equal(parent, name, child, lambda: OneDnnLinear(dense, "gelu"), (x,),
                                          skipped)
            elif type(child).__name__.endswith("Output") and \
                    isinstance(getattr(child, "LayerNorm", None), torch.nn.LayerNorm):
                other = torch.randn(2, 5, dense.out_features, dtype=dense.weight.dtype)
                swapped += _swap_if_equal(parent, name, child,
                                          lambda: OneDnnLinear(dense, layer_norm=child.LayerNorm), (x, other),
                                          skipped)
    for parent in list(model.modules()):    # the other bf16 linears (query, key, value): pre-packed weights
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear) and child.weight.dtype == torch.bfloat16 and name != "qa_outputs":
                x = torch.randn(2, 5, child.in_features, dtype=child.weight.dtype)
                swapped += _swap_if_equal(parent, name, child, lambda: OneDnnLinear(child), (x,), skipped)
    model.onednn_skipped = skipped
    if skipped:
        warnings.warn(f"oneDNN fusion: {len(skipped)} module(s) kept unfused: " + "; ".join(skipped[:5])
                      + (" ..." if len(skipped) > 5 else ""), RuntimeWarning, stacklevel=2)
    return swapped


def fused_bf16_copy(model, device=None):
    """A bf16 copy of an fp32 model for inference, so the caller's model is untouched: weights cast once (on CPU
    faster than autocast, which re-casts them at every matmul), span head kept in fp32. On CPU the linears run
    as oneDNN calls with pre-packed weights, GELU and residual adds fused (fuse_onednn).
    fp32 predictions do not use a copy: they run the caller's model as is (the reference that bf16-verified
    falls back to). Fused fp32 was ~9% faster on minilm with logits within 1.5e-5, but oneDNN parallelises even
    tiny matmuls, and with 2 threads on a busy 2-core CPU a tiny model's predict took 0.36 s instead of 0.016 s."""
    run = copy.deepcopy(model).eval().to(torch.bfloat16)
    if isinstance(getattr(run, "qa_outputs", None), torch.nn.Linear):
        run.qa_outputs = Fp32Head(copy.deepcopy(model.qa_outputs).float())
    if torch.device(device or "cpu").type == "cpu":
        fuse_onednn(run)
    return run
