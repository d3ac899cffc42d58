"""core.inference.batched_inference: every item once, outputs mapped back to their items after the length sort,
padding that does not leak into results, inference mode and the precision's autocast, the caller's mode kept."""

from __future__ import annotations

import pytest
import torch

from bertology.core.inference import batched_inference


class RowSums(torch.nn.Module):
    """Sum of each row's unpadded input ids (so padding, if it leaked, would show), times a weight of 1."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.seen = []        # (inference mode, autocast on, batch lengths) at each call

    def forward(self, input_ids, attention_mask, **_):
        self.seen.append((torch.is_inference_mode_enabled(), torch.is_autocast_enabled("cpu"),
                          attention_mask.sum(-1).tolist()))
        return (input_ids * attention_mask).sum(-1).float() * self.weight


ITEMS = [{"input_ids": list(range(1, n + 1))} for n in (3, 7, 1, 5, 7, 2, 4)]


def _by_item(model, items, **kw):
    out = [None] * len(items)
    for group, batch, res in batched_inference(model, items, 3, pad_id=99, **kw):
        for j, i in enumerate(group):
            assert out[i] is None, f"item {i} came twice"
            out[i] = float(res[j])
    return out


def test_every_item_once_in_its_own_place_after_the_length_sort():
    model = RowSums()
    got = _by_item(model, ITEMS)
    assert got == [float(sum(it["input_ids"])) for it in ITEMS]     # pad id 99 is masked out: no leak
    lengths = [n for _, _, batch in model.seen for n in batch]
    assert lengths == sorted(lengths, reverse=True)                   # longest first
    assert all(len(batch) <= 3 for _, _, batch in model.seen)


def test_inference_mode_and_autocast_follow_the_precision():
    model = RowSums()
    _by_item(model, ITEMS[:2])
    assert all(inf and not ac for inf, ac, _ in model.seen)
    model.seen.clear()
    _by_item(model, ITEMS[:2], precision="bf16")
    assert all(inf and ac for inf, ac, _ in model.seen)


def test_the_callers_mode_is_kept_even_when_the_loop_stops_early():
    model = RowSums().train()
    _by_item(model, ITEMS)
    assert model.training
    loop = batched_inference(model, ITEMS, 2)
    next(loop)
    assert not model.training      # eval while it runs (dropout off)
    loop.close()                   # the caller broke out of the loop
    assert model.training


def test_custom_forward_and_an_unknown_precision():
    model = RowSums()
    outs = list(batched_inference(model, ITEMS[:3], 8, forward=lambda batch: batch["input_ids"].shape))
    assert [tuple(o) for _, _, o in outs] == [(3, 7)]
    with pytest.raises(ValueError, match="fp16"):      # a programming error: precisions are checked on entry
        list(batched_inference(model, ITEMS[:3], 8, precision="fp16"))
