"""A masked-LM head at work: the lecture's fill-in-the-blank (`fill_mask`), for the `fill-mask` command, the
cloze accuracy (`cloze`) and the explorer (`serve`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import UserError

FILL_MASK_SCHEMA = "bertology.fill-mask/1"


@dataclass
class FillMaskResult:
    model: str
    top_k: int
    items: list[dict]     # {text, masks: [{position, candidates: [{token, prob}]}]}


def fill_mask(model: str, texts: Sequence[str], top_k: int = 5, precision: str = "fp32",
              trust_remote_code: bool = False, convert: str | None = None, mlm=None,
              tokenizer=None, command: str = "fill-mask") -> FillMaskResult:
    """The lecture's fill-in-the-blank: for every [MASK] in each text, the top-k tokens and probabilities.

    convert: an OpenCC conversion applied to the texts first (e.g. "t2s": the lecture's Traditional example
    for a model whose vocabulary was learnt from Simplified text). mlm, tokenizer: the model already loaded
    (bertology serve keeps it in memory); by default both are loaded from `model`. command: named when the
    model cannot fill in blanks (cloze calls this too)."""
    from ..checks import check_text
    from ..core.models import load_model, load_tokenizer

    for text in texts:
        check_text("texts", text)
    if convert:
        import opencc

        try:
            cc = opencc.OpenCC(convert)
        except Exception:  # opencc raises a bare RuntimeError / ValueError for unknown configurations
            raise UserError(f"`convert` {convert!r}: not an OpenCC conversion (e.g. t2s, s2t, tw2s)",
                            fields=('convert',)) from None
        texts = [cc.convert(t) for t in texts]

    tok = tokenizer or load_tokenizer(model, trust_remote_code)
    if tok.mask_token is None:
        raise UserError(f"model {model!r}: its tokenizer has no mask token")
    mlm = mlm if mlm is not None else load_model(model, head="mlm", trust_remote_code=trust_remote_code,
                                                 command=command)
    if top_k > len(tok):    # torch.topk would fail with a RuntimeError after the first text
        raise UserError(f"`top_k` {top_k}: more than the model's vocabulary ({len(tok)} tokens)", ("top_k",))
    return FillMaskResult(model=str(model), top_k=top_k,
                          items=[fill_mask_text(mlm, tok, text, top_k, precision) for text in texts])


def run(cfg: "FillMaskConfig", mlm=None, tokenizer=None) -> FillMaskResult:   # noqa: F821 (experiments.configs)
    """The top-k candidates of every [MASK] of the config's texts. mlm, tokenizer: cfg.model already loaded, to
    reuse (`bertology serve` keeps it in memory); by default both are loaded from cfg.model."""
    return fill_mask(cfg.model, cfg.texts, cfg.top_k, cfg.precision, cfg.trust_remote_code, cfg.convert,
                     mlm=mlm, tokenizer=tokenizer)


def fill_mask_text(mlm, tok, text: str, top_k: int, precision: str) -> dict:
    """One text's masks: {text, masks: [{position, candidates: [{token, id, prob}]}]}. `[MASK]` stands for the
    model's own mask token (`<mask>` for RoBERTa); tokens are printed as text (adapter.display_token)."""
    from ..core.adapter import count_masks, display_token, mask_text, usable_length
    from ..core.precision import autocast

    if not count_masks(text, tok):
        raise UserError(f"text {text!r}: contains no [MASK]" + (f" (nor {tok.mask_token})" if tok.mask_token != "[MASK]"
                                                                  else ""))
    masked = mask_text(text, tok)
    # the model's positions bound the length too (less RoBERTa's offset): a tokenizer saved without
    # model_max_length allows any
    enc = tok(masked, return_tensors="pt", truncation=True, max_length=usable_length(tok, mlm.config))
    with torch.inference_mode(), autocast(precision):
        logits = mlm(**enc).logits[0].float()
    positions = (enc["input_ids"][0] == tok.mask_token_id).nonzero().flatten().tolist()
    if len(positions) < masked.count(tok.mask_token):     # truncation cut a mask off: no silent gap
        raise UserError(f"text {text[:40]!r}...: a [MASK] lies beyond the model's "
                        f"{enc['input_ids'].shape[1]} tokens (shorten the text)")
    masks = []
    for p in positions:
        top = logits[p].softmax(-1).topk(top_k)
        masks.append({"position": p, "candidates": [
            {"token": display_token(tok, int(i)), "id": int(i), "prob": float(v)}
            for v, i in zip(top.values, top.indices)]})
    return {"text": text, "masks": masks}
