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

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import UserError
from .tokenizer import SPECIAL_TOKENS


# SpanBERT (Joshi et al. 2020): span lengths in words ~ Geometric(0.2) clipped at 10, mean 3.8
SPAN_P, SPAN_MAX = 0.2, 10
SPAN_MEAN = sum(k * SPAN_P * (1 - SPAN_P) ** (k - 1) for k in range(1, SPAN_MAX + 1)) / (1 - (1 - SPAN_P) ** SPAN_MAX)


@functools.lru_cache(maxsize=None)
def span_start_rate(rate: float) -> float:
    """The per-word probability of starting a span that leaves `rate` of the words covered: a word is left out
    when no span starting up to SPAN_MAX - 1 words before it reaches it, prod_k (1 - q P(length > k));
    solved for q by bisection (q = rate / SPAN_MEAN would ignore overlaps: 32% masked at a 40% rate)."""
    longer = [sum(SPAN_P * (1 - SPAN_P) ** (j - 1) for j in range(k + 1, SPAN_MAX + 1)) / (1 - (1 - SPAN_P) ** SPAN_MAX)
              for k in range(SPAN_MAX)]
    low, high = 0.0, 1.0
    for _ in range(50):
        q = (low + high) / 2
        covered = 1 - math.prod(1 - q * s for s in longer)
        low, high = (q, high) if covered < rate else (low, q)
    return (low + high) / 2


def require_jieba():
    """The Chinese word segmenter of whole-word masking (Chinese BERT-wwm, Cui et al. 2019, used LTP)."""
    try:
        import jieba
    except ImportError:
        raise UserError("`whole_word` needs the Chinese word segmenter jieba: pip install jieba",
                        fields=("whole_word",)) from None
    jieba.setLogLevel(60)       # its dictionary-loading chatter on stderr
    return jieba


class WordBoundaries:
    """Which tokens start a word, read from token ids alone (so masks stay a pure function of the batch).

    A word is what the tokenizer's pre-tokenizer keeps together: a first piece and its continuations
    (`##` for WordPiece; for `▁`/`Ġ` vocabularies a piece without the marker continues the word before it,
    adapter.piece_convention). BERT tokenizers make every CJK character a word of its own, so runs of
    Chinese characters are segmented into words with jieba: all characters of 蘋果 are masked together, and
    the model cannot fill 果 from 蘋 alone."""

    def __init__(self, tokenizer):
        from ...core.adapter import piece_convention
        from ...io.cjk import has_cjk

        convention = piece_convention(tokenizer)
        tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        special = set(tokenizer.all_special_ids)
        self.continuation = torch.tensor([
            t is not None and i not in special and (
                t.startswith("##") if convention == "continuation"
                else not t.startswith(("▁", "Ġ")) if convention == "word-start" else False)
            for i, t in enumerate(tokens)], dtype=torch.bool)
        # one character per token id: the character of a single-CJK-character token, else a space (a
        # separator to jieba), so that a row's string lines up with its tokens one to one
        self.chars = [t if t is not None and len(t) == 1 and has_cjk(t) else " " for t in tokens]
        self.is_cjk = torch.tensor([c != " " for c in self.chars], dtype=torch.bool)
        self.jieba = require_jieba()

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """bool[batch, length]: True where a token starts a word."""
        start = ~self.continuation[ids]
        for b in torch.nonzero(self.is_cjk[ids].any(1)).flatten().tolist():
            text = "".join(self.chars[i] for i in ids[b].tolist())
            pos = 0
            for word in self.jieba.cut(text):       # yields every character of `text`, in order
                if len(word) > 1:
                    start[b, pos + 1:pos + len(word)] = False
                pos += len(word)
        return start


@dataclass
class Masker:
    """BERT's masking: `prob` of the non-special tokens are predicted; of those 80% become [MASK], 10% a
    random token, 10% stay (decided per token).

    whole_word: words (see WordBoundaries) are selected with probability `prob`, all their tokens together.
    span: SpanBERT's spans of consecutive words (tokens, without whole_word), lengths Geometric(0.2) clipped at
    10, started at a rate that masks about `prob` of the tokens."""
    mask_id: int
    vocab_size: int
    special_ids: tuple[int, ...]
    boundaries: WordBoundaries | None = None   # required by whole_word
    prob: float = 0.15
    whole_word: bool = False
    span: bool = False

    def __call__(self, ids: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        ids = ids.long()
        special = torch.isin(ids, torch.tensor(self.special_ids))
        r = torch.rand(ids.shape, generator=gen)
        action = torch.rand(ids.shape, generator=gen)
        random_tokens = torch.randint(len(SPECIAL_TOKENS), self.vocab_size, ids.shape, generator=gen)
        start = (self.boundaries(ids) | special) if self.whole_word else torch.ones_like(special)
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        if self.span:
            selected = self._spans(start, special, r, gen) & ~special
        else:
            # every token takes the draw of the word start at or before it
            owner = torch.cummax(torch.where(start, pos, torch.zeros_like(pos)), dim=1).values
            selected = (torch.gather(r, 1, owner) < self.prob) & ~special
        labels = torch.where(selected, ids, torch.full_like(ids, -100))
        inputs = torch.where(selected & (action < 0.8), torch.full_like(ids, self.mask_id), ids)
        inputs = torch.where(selected & (action >= 0.8) & (action < 0.9), random_tokens, inputs)
        return inputs, labels

    def _spans(self, start, special, r, gen) -> torch.Tensor:
        """Tokens covered by spans: a span starts at a word start with probability span_start_rate(prob) and
        covers its length in words; a token is covered when a span starting at or before its word reaches it."""
        u = torch.rand(start.shape, generator=gen)
        q = 1 - SPAN_P
        length = 1 + torch.floor(torch.log1p(-u * (1 - q ** SPAN_MAX)) / math.log(q)).long()
        word = torch.cumsum(start.long(), dim=1) - 1
        begins = start & ~special & (r < span_start_rate(self.prob))
        reach = torch.cummax(torch.where(begins, word + length.clamp(max=SPAN_MAX) - 1,
                                         torch.full_like(word, -1)), dim=1).values
        return reach >= word


def make_masker(tokenizer, prob: float = 0.15, whole_word: bool = False, span: bool = False) -> Masker:
    return Masker(tokenizer.mask_token_id, len(tokenizer), tuple(tokenizer.all_special_ids),
                  WordBoundaries(tokenizer) if whole_word else None, prob, whole_word, span)


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


