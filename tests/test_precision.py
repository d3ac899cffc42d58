"""core.precision: the choices it accepts and refuses, what autocast and cast_in_place do with each, and the
choice made for speed on a CPU without native bf16."""

from __future__ import annotations

import pytest
import torch

from bertology.core import precision
from bertology.errors import UserError


@pytest.mark.parametrize("name", ["fp32", "bf16"])
def test_training_precisions_are_accepted_and_returned(name):
    assert precision.check_precision(name) == name


@pytest.mark.parametrize("name", ["fp16", "BF16", "", "bf16-verified"])
def test_other_names_are_refused_naming_the_choices_and_the_field(name):
    with pytest.raises(UserError, match=r"`precision` must be one of fp32, bf16, not") as e:
        precision.check_precision(name)
    assert e.value.fields == ("precision",)


def test_bf16_verified_is_a_prediction_precision_only():
    assert precision.check_precision("bf16-verified", precision.PREDICT_PRECISIONS) == "bf16-verified"
    assert "bf16-verified" not in precision.PRECISIONS


def test_autocast_runs_bf16_matmuls_only_for_bf16():
    x = torch.randn(4, 4)
    with precision.autocast("bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert (x @ x).dtype == torch.bfloat16
    with precision.autocast("fp32"):
        assert not torch.is_autocast_enabled("cpu")
        assert (x @ x).dtype == torch.float32


def test_below_the_boundary_an_unknown_precision_is_a_programming_error():
    with pytest.raises(ValueError, match="check_precision"):
        precision.autocast("fp16")
    with pytest.raises(ValueError):
        precision.cast_in_place(torch.nn.Linear(2, 2), "bf16-verified")


def test_cast_in_place_casts_the_callers_module_itself():
    layer = torch.nn.Linear(3, 2)
    assert precision.cast_in_place(layer, "bf16") is layer and layer.weight.dtype == torch.bfloat16
    assert precision.cast_in_place(layer, "fp32").weight.dtype == torch.float32


def test_fast_precision_is_fp32_where_bf16_is_emulated(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": False)
    assert precision.fast_precision() == "fp32"
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": True)
    assert precision.fast_precision() == "bf16"


def test_native_bf16_on_a_gpu_and_on_this_cpu():
    assert precision.native_bf16("cuda") is True
    has = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert precision.native_bf16("cpu") is has
