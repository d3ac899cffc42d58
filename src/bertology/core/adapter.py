"""What every command needs to know about a BERT-family model and its tokenizer, asked of transformers' own
interfaces instead of assumed from BERT's weight names and WordPiece's `##`.

- the mask token: `[MASK]` in a user's text means the model's own mask token (`<mask>` for RoBERTa, XLM-R, MPNet);
- the usable length: the tokenizer's `model_max_length` when it is a real limit, and never more than the
  position embeddings allow; RoBERTa-style models number positions from pad_token_id + 1, so 514 embeddings
  hold 512 tokens;
- the tokenizer's kind and how it marks words: WordPiece marks continuations (`##al`), byte-level BPE (`Ġcat`)
  and SentencePiece / Unigram (`▁cat`) mark word starts; a SentencePiece tokenizer may put a lone `▁` before a
  Chinese character, a piece of whitespace that belongs to no word;
- how to print a token: its text (a byte-level token decoded from bytes, `Ġwrong` -> `wrong`), never the raw
  byte-level symbols;
- which piece of a sentence carries a word: found by character offsets in the whole sentence, so it works for all
  three kinds (a word tokenised alone gets a `▁` / `Ġ` it does not have in context);
- where hidden state i is produced, to shift it: found by running the model once with `output_hidden_states`
  and matching tensors, so it holds for ELECTRA's projection after the embeddings, ALBERT's shared layers and
  DistilBERT's `transformer.layer`.
"""

from __future__ import annotations

import weakref
from typing import Callable, Sequence

import torch

from ..errors import UserError
from ..io.cjk import is_cjk

MASK = "[MASK]"
BLANK = "␣"          # how a whitespace-only piece (a lone `▁` or `Ġ`) is printed
WORDPIECE, BYTE_LEVEL, SENTENCEPIECE, OTHER = "wordpiece", "byte-level", "sentencepiece", "other"

# Model types whose position ids start at pad_token_id + 1 (transformers' create_position_ids_from_input_ids).
POSITION_FROM_PADDING = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm", "mpnet",
                         "longformer", "data2vec-text", "luke", "ibert", "xmod"}
SANE_MAX_LENGTH = 10**6   # tokenizers saved without a limit report 1e30


# --------------------------------------------------------------------------------------------- mask and length
def mask_text(text: str, tokenizer) -> str:
    """`[MASK]` written by the user, as the model's own mask token."""
    mask = tokenizer.mask_token
    return text.replace(MASK, mask) if mask and mask != MASK else text


def count_masks(text: str, tokenizer) -> int:
    return mask_text(text, tokenizer).count(tokenizer.mask_token) if tokenizer.mask_token else 0


def position_offset(config) -> int:
    if getattr(config, "model_type", None) in POSITION_FROM_PADDING:
        return int(getattr(config, "pad_token_id", None) or 0) + 1
    return 0


def usable_length(tokenizer, config, cap: int | None = None) -> int:
    """The longest input (special tokens included) the model can take."""
    limits = [cap] if cap else []
    max_pos = getattr(config, "max_position_embeddings", None)
    if max_pos:
        limits.append(int(max_pos) - position_offset(config))
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < SANE_MAX_LENGTH:
        limits.append(int(tok_limit))
    return min(limits) if limits else 512


# --------------------------------------------------------------------------------------------- tokenizer kind
_KINDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def tokenizer_kind(tokenizer) -> str:
    """wordpiece (`##` continuations), byte-level (`Ġ` word starts), sentencepiece (`▁` word starts) or other,
    read off the fast tokenizer's model and decoder."""
    try:
        return _KINDS[tokenizer]
    except (KeyError, TypeError):
        pass
    backend = getattr(tokenizer, "backend_tokenizer", None)
    described = f"{getattr(backend, 'model', '')!s:.40} {getattr(backend, 'decoder', '')!s:.200} " \
                f"{getattr(backend, 'pre_tokenizer', '')!s:.300}"
    kind = (WORDPIECE if described.startswith("WordPiece") else BYTE_LEVEL if "ByteLevel" in described
            else SENTENCEPIECE if "Metaspace" in described else OTHER)
    try:
        _KINDS[tokenizer] = kind
    except TypeError:
        pass
    return kind


def piece_convention(tokenizer) -> str:
    """"continuation" when pieces inside a word are marked (`##`), "word-start" when word starts are (`▁`, `Ġ`)."""
    kind = tokenizer_kind(tokenizer)
    return "continuation" if kind == WORDPIECE else "word-start" if kind in (BYTE_LEVEL, SENTENCEPIECE) else "none"


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable-character table, inverted (byte-level BPE writes each byte as one character)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTES = _byte_decoder()


def token_text(tokenizer, token: str) -> str:
    """A vocabulary piece as text, not yet stripped: `Ġwrong` -> " wrong", `▁cat` -> " cat", `##s` -> "##s" (kept:
    it says the piece continues a word). A byte-level piece that is not whole UTF-8 (part of a Chinese
    character) is written as its bytes, \\xe6\\x9e."""
    kind = tokenizer_kind(tokenizer)
    if kind == BYTE_LEVEL and all(c in _BYTES for c in token):
        # part of a character (a Chinese character is three bytes) shows as its bytes: \xe8\xba
        return bytes(_BYTES[c] for c in token).decode("utf-8", errors="backslashreplace")
    if kind == SENTENCEPIECE:
        return token.replace("▁", " ")
    return token


def display_token(tokenizer, token_id: int) -> str:
    """How bertology prints a token: its text, stripped; a whitespace-only piece as ␣; special tokens as they are."""
    token = tokenizer.convert_ids_to_tokens(int(token_id))
    if token is None:
        return f"<id {int(token_id)}>"
    if int(token_id) in set(tokenizer.all_special_ids):
        return token
    return token_text(tokenizer, token).strip() or BLANK


def display_tokens(tokenizer, ids: Sequence[int]) -> list[str]:
    return [display_token(tokenizer, i) for i in ids]


def is_blank_piece(tokenizer, token_id: int) -> bool:
    """A piece that is only whitespace (a lone `▁` or `Ġ`): part of no word, never pooled into a target."""
    if tokenizer_kind(tokenizer) == WORDPIECE:
        return False
    token = tokenizer.convert_ids_to_tokens(int(token_id))
    return token is not None and not token_text(tokenizer, token).strip()


# --------------------------------------------------------------------------------------------- words in context
def covering_pieces(tokenizer, ids: Sequence[int], offsets: Sequence[tuple[int, int]], start: int,
                    end: int) -> list[int]:
    """Positions of the pieces whose characters overlap [start, end), whitespace-only pieces left out."""
    return [t for t, (a, b) in enumerate(offsets)
            if a < end and b > start and b > a and not is_blank_piece(tokenizer, ids[t])]


def piece_in_context(tokenizer, sentence: str, start: int, end: int) -> int | None:
    """The id of the one piece that is exactly sentence[start:end] where it stands, or None when the word is split
    into several pieces, glued to its neighbours in one piece, or unknown. The whole sentence is tokenised: alone,
    `果` would be `▁ 果` for XLM-R and `paris` would lack the `Ġ` it has after a space for RoBERTa."""
    enc = tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    pos = covering_pieces(tokenizer, ids, offsets, start, end)
    if len(pos) != 1 or ids[pos[0]] == tokenizer.unk_token_id:
        return None
    a, b = offsets[pos[0]]
    text = sentence[a:b].strip()
    return ids[pos[0]] if (a >= start or not sentence[a:start].strip()) and b <= end and text else None


def _continues_word(sentence: str, a: int) -> bool:
    """Whether the character at `a` continues a word begun before it (Latin letters or digits on both sides;
    Chinese characters are words of their own, as BERT's tokenizer treats them)."""
    def wordy(ch: str) -> bool:
        return ch.isalnum() and not is_cjk(ch)
    return 0 < a < len(sentence) and wordy(sentence[a - 1]) and wordy(sentence[a])


def word_marked_pieces(tokenizer, sentence: str, ids: Sequence[int], offsets: Sequence[tuple[int, int]]
                       ) -> list[tuple[int, str]]:
    """(position, piece) for the non-special, non-blank pieces of a sentence, each written in WordPiece's
    convention whatever the tokenizer's: a piece that continues a word begun by the previous one carries `##`,
    any other is bare. So `##`-based word logic (one piece = one whole word) holds for every family."""
    special = set(tokenizer.all_special_ids)
    out = []
    for p, (i, (a, b)) in enumerate(zip(ids, offsets)):
        if i in special or is_blank_piece(tokenizer, i):
            continue
        text = display_token(tokenizer, i)
        if tokenizer_kind(tokenizer) != WORDPIECE:
            a = a + len(sentence[a:b]) - len(sentence[a:b].lstrip())
            text = ("##" if _continues_word(sentence, a) else "") + text
        out.append((p, text))
    return out


# --------------------------------------------------------------------------------------------- hidden states
_PRODUCERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _first_tensor(out):
    if isinstance(out, (tuple, list)):
        out = out[0] if out else None
    elif hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    return out if torch.is_tensor(out) else None


def hidden_state_producers(model) -> list[tuple[torch.nn.Module, int]]:
    """For each hidden state i of `output_hidden_states` (0: the embedding output), the module and the call of it
    (ALBERT runs one shared layer L times) that first outputs it. Found by running the model once on a short
    input with every module hooked: the first output equal to hidden state i is where it is made."""
    if model in _PRODUCERS:
        return _PRODUCERS[model]
    base = model.base_model
    records: list[tuple[str, torch.nn.Module, int, torch.Tensor]] = []
    calls: dict[str, int] = {}

    def recorder(name):
        def hook(module, args, out):
            t = _first_tensor(out)
            if t is not None and t.dim() == 3:
                records.append((name, module, calls.get(name, 0), t.detach().clone()))
            calls[name] = calls.get(name, 0) + 1
        return hook

    handles = [m.register_forward_hook(recorder(n)) for n, m in base.named_modules() if m is not base]
    vocab = int(getattr(model.config, "vocab_size", 8) or 8)
    ids = (torch.arange(6)[None] + 5) % vocab
    try:
        with torch.inference_mode():
            states = base(input_ids=ids.to(base.device), attention_mask=torch.ones_like(ids).to(base.device),
                          output_hidden_states=True).hidden_states
    finally:
        for h in handles:
            h.remove()
    producers, after = [], -1
    for i, hs in enumerate(states):
        k = next((k for k in range(after + 1, len(records))
                  if records[k][3].shape == hs.shape and torch.equal(records[k][3], hs)), None)
        if k is None:
            raise UserError(f"{model.__class__.__name__}: cannot find the module that computes hidden state {i}, "
                            f"so its hidden states cannot be shifted")
        producers.append((records[k][1], records[k][2]))
        after = k
    _PRODUCERS[model] = producers
    return producers


class _Handle:
    def __init__(self, handles):
        self.handles = handles

    def remove(self):
        for h in self.handles:
            h.remove()


def hook_hidden_state(model, layer: int, fn: Callable) -> _Handle:
    """Register `fn(module, args, output) -> output` on the module call that produces hidden state `layer` (what
    `output_hidden_states[layer]` returns), so a change to it flows through the rest of the model."""
    producers = hidden_state_producers(model)
    if not 0 <= layer < len(producers):
        raise UserError(f"`layer` {layer} is out of range: the model has hidden states 0..{len(producers) - 1}",
                        fields=("layer",))
    module, call = producers[layer]
    count = {"n": 0}

    def reset(_module, _args):
        count["n"] = 0

    def hook(m, args, output):
        n = count["n"]
        count["n"] += 1
        return fn(m, args, output) if n == call else None
    return _Handle([model.register_forward_pre_hook(reset), module.register_forward_hook(hook)])
