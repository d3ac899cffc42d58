"""The masked-LM objective: BERT's masking (which tokens are predicted, 80/10/10), the loss over masked
positions only, and the held-out evaluation.

Why masking is a pure function of (seed, epoch, batch index): a run resumed after SIGKILL regenerates exactly
the masks it would have seen, whatever the global RNG did; and 2 processes with batch B see the same rows and
masks as 1 process with batch 2B (each rank takes a strided slice of the global batch).

Why the MLM head only scores masked positions (as Google's original BERT `gather_indexes` does, and unlike
`BertForMaskedLM.forward`): with a 30K vocabulary and a small encoder, the vocabulary projection of every
position costs more than the encoder itself; only the 15% masked positions carry a loss.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .tokenizer import SPECIAL_TOKENS


@dataclass
class Masker:
    """BERT's masking: `prob` of the non-special tokens are predicted; of those 80% become [MASK], 10% a
    random token, 10% stay. Whole-word masking selects words (a token plus its `##` continuations) instead."""
    mask_id: int
    vocab_size: int
    special_ids: tuple[int, ...]
    continuation: torch.Tensor | None = None   # bool[vocab]: token starts with "##" (for whole-word masking)
    prob: float = 0.15
    whole_word: bool = False

    def __call__(self, ids: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        ids = ids.long()
        special = torch.isin(ids, torch.tensor(self.special_ids))
        r = torch.rand(ids.shape, generator=gen)
        if self.whole_word and self.continuation is not None:
            # every token takes the draw of the word start at or before it
            start = ~self.continuation[ids] | special
            pos = torch.arange(ids.shape[1]).expand_as(ids)
            owner = torch.cummax(torch.where(start, pos, torch.zeros_like(pos)), dim=1).values
            r = torch.gather(r, 1, owner)
        selected = (r < self.prob) & ~special
        labels = torch.where(selected, ids, torch.full_like(ids, -100))
        action = torch.rand(ids.shape, generator=gen)
        random_tokens = torch.randint(len(SPECIAL_TOKENS), self.vocab_size, ids.shape, generator=gen)
        inputs = torch.where(selected & (action < 0.8), torch.full_like(ids, self.mask_id), ids)
        inputs = torch.where(selected & (action >= 0.8) & (action < 0.9), random_tokens, inputs)
        return inputs, labels


def make_masker(tokenizer, prob: float = 0.15, whole_word: bool = False) -> Masker:
    vocab = tokenizer.get_vocab()
    cont = torch.zeros(len(tokenizer), dtype=torch.bool)
    for t, i in vocab.items():
        if t.startswith("##") and i < len(cont):
            cont[i] = True
    return Masker(tokenizer.mask_token_id, len(tokenizer), tuple(tokenizer.all_special_ids), cont, prob, whole_word)


def mask_generator(*keys: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int.from_bytes(hashlib.sha256(repr(keys).encode()).digest()[:8], "little") & (2**63 - 1))
    return g


def mlm_head(mlm):
    """The masked-LM head of a `*ForMaskedLM` model (BERT: `cls`; RoBERTa family: `lm_head`)."""
    return mlm.cls if hasattr(mlm, "cls") else mlm.lm_head


class MaskedLMObjective(torch.nn.Module):
    """Wraps a `*ForMaskedLM` (BERT or pre-LN) so that the loss scores only masked positions (see the module docstring).

    The loss is sum(cross-entropy over this rank's masked tokens) / (masked tokens in the *global* batch)
    x world size: after DDP averages gradients over ranks this is exactly the global mean, so N processes
    with batch B compute the same update as one process with batch N x B.

    compile=True: training steps run the encoder and the MLM head + loss through `torch.compile` (inductor),
    which fuses the casts, LayerNorms, GELUs, attention softmax and the log-softmax over the vocabulary that
    dominate a small model's step on a CPU. Two graphs, because the number of masked positions changes every
    batch: the encoder (static shape) and head + loss (dynamic in the masked count). The compiled callables
    live outside the module tree, so `state_dict()` keys stay those of the plain model (no `_orig_mod.`
    prefix: checkpoints and exports are interchangeable with eager runs). If compilation fails (no C++
    compiler, an unsupported op) the first step says why and training goes on in eager mode. Evaluation
    (no grad) always runs eagerly.
    """

    def __init__(self, mlm, compile: bool = False):
        super().__init__()
        self.mlm = mlm
        object.__setattr__(self, "_compiled", None)     # not a submodule: keeps state_dict keys unchanged
        object.__setattr__(self, "_compiled_ok", False)
        object.__setattr__(self, "compile_error", None)
        if compile:
            self.compile_for_training()

    def compile_for_training(self) -> bool:
        """Compile the training path (lazily: the work happens at the first training step)."""
        try:
            enc = torch.compile(self.mlm.base_model, dynamic=False)
            head = torch.compile(self._head_loss_sum, dynamic=True)
        except Exception as e:  # torch.compile itself unavailable (e.g. an unsupported Python)
            return self._compile_failed(e)
        object.__setattr__(self, "_compiled", (enc, head))
        return True

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def _compile_failed(self, e: Exception) -> bool:
        import warnings

        object.__setattr__(self, "_compiled", None)
        object.__setattr__(self, "compile_error", f"{type(e).__name__}: {e}".splitlines()[0][:500])
        warnings.warn(f"torch.compile failed, training in eager mode: {self.compile_error}", RuntimeWarning)
        return False

    def _head_loss_sum(self, hidden_sel, target):
        return F.cross_entropy(mlm_head(self.mlm)(hidden_sel).float(), target, reduction="sum")

    def _compiled_loss_sum(self, input_ids, sel, target):
        enc, head = self._compiled
        hidden = enc(input_ids=input_ids).last_hidden_state
        return head(hidden[sel], target)

    def forward(self, input_ids, labels, n_masked=None, attention_mask=None):
        # packed sequences have no padding: no attention mask (no masking work, SDPA's fastest path on GPUs)
        sel = labels != -100
        target = labels[sel]
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        denom = n_masked.float() if n_masked is not None else torch.tensor(float(max(1, target.numel())))
        if self._compiled is not None and self.training and torch.is_grad_enabled():
            if self._compiled_ok:
                return self._compiled_loss_sum(input_ids, sel, target) * world / denom, None, target
            try:  # the first call compiles; a failure there falls back to eager for good
                if not torch.distributed.is_initialized():
                    # The backward graph compiles at the first backward, in the engine, out of this try: run
                    # one throwaway forward + backward here (gradients discarded; random state restored, so
                    # dropout masks and resumed runs are unchanged) so that a failure there falls back too.
                    # Under DDP the reducer owns the backward: not done.
                    with torch.random.fork_rng(devices=[input_ids.device] if input_ids.is_cuda else []):
                        probe = self._compiled_loss_sum(input_ids, sel, target)
                        torch.autograd.grad(probe, [p for p in self.parameters() if p.requires_grad][:1],
                                            allow_unused=True)
                loss_sum = self._compiled_loss_sum(input_ids, sel, target)
                object.__setattr__(self, "_compiled_ok", True)
                return loss_sum * world / denom, None, target
            except Exception as e:
                self._compile_failed(e)
        hidden = self.mlm.base_model(input_ids=input_ids).last_hidden_state
        logits = mlm_head(self.mlm)(hidden[sel]).float()
        loss_sum = F.cross_entropy(logits, target, reduction="sum")
        return loss_sum * world / denom, logits, target


def mlm_loss(model, batch):
    """engine.train's loss_fn: the objective's normalised loss of one batch."""
    return model(**batch)[0]


@torch.inference_mode()
def evaluate_mlm(objective: MaskedLMObjective, heldout: dict[str, np.ndarray], masker: Masker,
                 batch_size: int = 32, seed: int = 0) -> dict[str, float]:
    """Held-out masked-LM loss (nats per masked token), its perplexity, and masked-token accuracy (top-1),
    per language and pooled. Masks are fixed by `seed`, so every evaluation scores the same blanks."""
    device = next(objective.parameters()).device
    out: dict[str, float] = {}
    tot_loss = tot_correct = tot_n = 0.0
    for li, (lang, seqs) in enumerate(heldout.items()):
        loss_sum = correct = n = 0.0
        for b in range(0, len(seqs), batch_size):
            ids = torch.from_numpy(seqs[b:b + batch_size])
            inputs, labels = masker(ids, mask_generator(seed, 99991, li, b))
            if (labels != -100).sum() == 0:
                continue
            _, logits, target = objective(inputs.to(device), labels.to(device))
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += float((logits.argmax(-1) == target).sum())
            n += target.numel()
        # No masked token held out: "not measured" (None -> null), never a loss of 0.000 and accuracy 0.000
        out[f"eval_loss_{lang}"] = loss_sum / n if n else None
        out[f"eval_acc_{lang}"] = correct / n if n else None
        tot_loss, tot_correct, tot_n = tot_loss + loss_sum, tot_correct + correct, tot_n + n
    out["eval_loss"] = tot_loss / tot_n if tot_n else None
    out["eval_ppl"] = math.exp(min(out["eval_loss"], 50)) if tot_n else None
    out["eval_acc"] = tot_correct / tot_n if tot_n else None
    return out


