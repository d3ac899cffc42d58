"""Batched inference, the one loop every forward pass over many inputs goes through (embeddings, QA windows,
classifier logits and features): length-sorted batches (longest first, so memory peaks come early), dynamic
padding, inference mode, the precision's autocast, a progress bar."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import torch

from .engine import length_batches, pad_batch
from .precision import autocast


def batched_inference(model, items: Sequence[dict[str, Any]], batch_size: int, pad_id: int = 0,
                      precision: str = "fp32", device=None, forward: Callable[[dict], Any] | None = None,
                      progress: bool = False, desc: str = "predict",
                      max_tokens: int | None = None) -> Iterator[tuple[list[int], dict, Any]]:
    """Yield (indices of the items in this batch, the padded batch on `device`, the model's output).

    items: tokenised inputs (`input_ids`, optionally `token_type_ids` ...), padded by `engine.pad_batch`.
    forward(batch) -> output; default `model(**batch)`. The caller's model is left in the mode it was in.
    max_tokens: batches cut by a budget of padded tokens instead of `batch_size` rows (engine.length_batches).
    """
    from tqdm.auto import tqdm

    device = device or next(model.parameters()).device
    forward = forward or (lambda batch: model(**batch))
    was_training = model.training
    model.eval()
    groups = length_batches([len(it["input_ids"]) for it in items], batch_size, shuffle=False, max_tokens=max_tokens)
    bar = tqdm(total=len(items), desc=desc, unit="input", disable=not progress, dynamic_ncols=True)
    try:
        for group in groups:
            batch = {k: v.to(device) for k, v in pad_batch([items[i] for i in group], pad_id).items()}
            with torch.inference_mode(), autocast(precision, device):
                out = forward(batch)
            bar.update(len(group))
            yield group, batch, out
    finally:
        bar.close()
        if was_training:
            model.train()
