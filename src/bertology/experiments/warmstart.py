"""Warm start for masked-LM pretraining (`bertology pretrain --init-from MODEL`): begin from a pretrained
BERT's weights instead of a random initialisation.

What is copied and what is new:
    vocabulary   the source model's vocabulary, in its order (every old token keeps its id), followed by the
                 tokens of the run's own tokenizer that the source lacks (e.g. the CJK characters of a Chinese
                 corpus for an English model). The source's normalisation (lower-casing, accents) is kept.
    embeddings   word-embedding rows of old tokens copied unchanged; a new token's row is the mean of the
                 source rows of the pieces the *source* tokenizer splits it into (Fast Vocabulary Transfer,
                 Gee et al. 2022) when none of them is [UNK], else the mean of all source rows plus N(0, σ²)
                 noise with σ the config's initializer_range. Position, token-type and LayerNorm weights copied.
    encoder      every layer copied.
    MLM head     copied when the source has one (`cls.predictions.*`; bias rows of new tokens: the mean old
                 bias); otherwise new (BERT's initialisation), its decoder tied to the word embeddings.

The resulting `WarmStart` record names every parameter by origin; `bertology pretrain` stores it in
results.json so a model card can state which weights came from where.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import UserError


@dataclass
class WarmStart:
    source: str                      # what --init-from named
    source_path: str                 # where it was loaded from
    source_vocab_size: int
    added_tokens: int                # tokens of the run's tokenizer the source lacked
    tokens_from_pieces: int          # new rows initialised from the source's pieces of the token
    copied: list[str] = field(default_factory=list)   # parameter names copied from the source
    new: list[str] = field(default_factory=list)      # parameter names initialised fresh


def source_config(name: str, trust_remote_code: bool = False):
    """The source model's config; exit 2 unless it is a BERT (the architecture `make_mlm` builds)."""
    from ..core.models import load_config

    cfg = load_config(name, trust_remote_code)
    if getattr(cfg, "model_type", None) != "bert":
        raise UserError(f"`init_from` {name}: a BERT model is needed (model_type 'bert'), this one is "
                        f"{getattr(cfg, 'model_type', None)!r}", fields=('init_from',))
    return cfg


def extend_vocabulary(source_tok, corpus_tok):
    """A tokenizer with the source's vocabulary (same ids) followed by the corpus tokenizer's tokens that the
    source lacks, normalising text as the source does. Returns (tokenizer, number of added tokens); the source
    tokenizer itself when nothing is added."""
    from transformers import BertTokenizer

    old = source_tok.get_vocab()
    new_tokens = [t for t, _ in sorted(corpus_tok.get_vocab().items(), key=lambda kv: kv[1]) if t not in old]
    if not new_tokens:
        return source_tok, 0
    vocab = dict(old)
    for t in new_tokens:
        vocab[t] = len(vocab)
    lower = bool(getattr(source_tok, "do_lower_case", True))
    tok = BertTokenizer(vocab=vocab, do_lower_case=lower, strip_accents=source_tok.init_kwargs.get("strip_accents"),
                        tokenize_chinese_chars=True, unk_token=source_tok.unk_token, sep_token=source_tok.sep_token,
                        pad_token=source_tok.pad_token, cls_token=source_tok.cls_token,
                        mask_token=source_tok.mask_token)
    tok.model_max_length = source_tok.model_max_length
    return tok, len(new_tokens)


def target_config(src_cfg, vocab_size: int, seq_len: int, dropout: float):
    """The run's config: the source architecture with the run's vocabulary size and dropout."""
    from transformers import BertConfig

    # the source's storage dtype is not the run's: a model shipped in bf16 (zh-en-mini) would otherwise be
    # trained in pure bf16 (transformers builds from_config models in config.dtype), emulated and lossy here
    cfg = BertConfig(**{k: v for k, v in src_cfg.to_dict().items()
                        if k not in ("architectures", "vocab_size", "dtype", "torch_dtype")})
    if cfg.max_position_embeddings < seq_len:
        raise UserError(f"`max_length` {seq_len} exceeds the `init_from` model's {cfg.max_position_embeddings} "
                        f"positions", fields=('max_length', 'init_from'))
    cfg.vocab_size = vocab_size
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
    cfg.architectures = ["BertForMaskedLM"]
    return cfg


@torch.no_grad()
def warm_start(mlm, name: str, source_tok, tokenizer, trust_remote_code: bool = False, seed: int = 0) -> WarmStart:
    """Copy the weights of model `name` into `mlm` (a fresh `BertForMaskedLM` whose vocabulary is `tokenizer`'s,
    an extension of `source_tok`'s): see the module docstring."""
    from ..core.models import has_mlm_head, load_model, resolve_model

    with_head = has_mlm_head(name)
    src = load_model(name, head="mlm" if with_head else "base", trust_remote_code=trust_remote_code)
    src_body = src.base_model.state_dict()
    n_old = len(source_tok)
    record = WarmStart(source=str(name), source_path=resolve_model(name), source_vocab_size=n_old,
                       added_tokens=len(tokenizer) - n_old, tokens_from_pieces=0)
    body = mlm.bert.state_dict()
    for key, value in body.items():
        if key == "embeddings.word_embeddings.weight":
            continue
        if key not in src_body:
            record.new.append(f"bert.{key}")
            continue
        if src_body[key].shape != value.shape:
            raise UserError(f"`init_from` {name}: weight {key} has shape {tuple(src_body[key].shape)}, the run "
                            f"expects {tuple(value.shape)}", fields=('init_from',))
        value.copy_(src_body[key])
        record.copied.append(f"bert.{key}")
    emb = mlm.bert.embeddings.word_embeddings.weight
    src_emb = src_body["embeddings.word_embeddings.weight"]
    if src_emb.shape[0] < n_old:
        raise UserError(f"`init_from` {name}: {src_emb.shape[0]} embedding rows for a {n_old}-token vocabulary", fields=('init_from',))
    emb[:n_old] = src_emb[:n_old]
    record.tokens_from_pieces = _init_new_rows(emb, src_emb[:n_old], source_tok, tokenizer, n_old,
                                               mlm.config.initializer_range, seed)
    record.copied.append("bert.embeddings.word_embeddings.weight[:source vocabulary]")
    if record.added_tokens:
        record.new.append("bert.embeddings.word_embeddings.weight[added tokens]")
    _copy_head(mlm, src if with_head else None, n_old, record)
    return record


def _init_new_rows(emb, src_emb, source_tok, tokenizer, n_old: int, std: float, seed: int) -> int:
    """Rows of the added tokens: mean of the source pieces' rows (FVT), else the mean row plus noise."""
    if len(tokenizer) == n_old:
        return 0
    gen = torch.Generator().manual_seed(seed)
    mean = src_emb.mean(0)
    unk = source_tok.unk_token_id
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}
    from_pieces = 0
    for i in range(n_old, len(tokenizer)):
        token = id_to_token[i]
        text = token[2:] if token.startswith("##") else token
        pieces = source_tok(text, add_special_tokens=False)["input_ids"] if text else []
        if pieces and unk not in pieces:
            emb[i] = src_emb[pieces].mean(0)
            from_pieces += 1
        else:
            emb[i] = mean + torch.randn(mean.shape, generator=gen) * std
    return from_pieces


def _copy_head(mlm, src, n_old: int, record: WarmStart) -> None:
    head = mlm.cls.predictions
    if src is None:
        record.new += [f"cls.predictions.{k}" for k in ("transform.dense.weight", "transform.dense.bias",
                                                         "transform.LayerNorm.weight", "transform.LayerNorm.bias",
                                                         "bias")]
        return
    src_head = src.cls.predictions
    head.transform.load_state_dict(src_head.transform.state_dict())
    head.bias[:n_old] = src_head.bias[:n_old]
    head.bias[n_old:] = src_head.bias[:n_old].mean()
    record.copied += ["cls.predictions.transform.*", "cls.predictions.bias[:source vocabulary]"]
    if len(head.bias) > n_old:
        record.new.append("cls.predictions.bias[added tokens] (mean of the source bias)")


def check_size(name: str, src_cfg, size: str | None, presets: dict[str, tuple[int, int]]) -> None:
    """An explicit size preset must describe the --init-from model's architecture."""
    if size is None:
        return
    want = presets.get(size)
    have = (src_cfg.num_hidden_layers, src_cfg.hidden_size)
    if want != have:
        raise UserError(f"`init_from` {name} has {have[0]} layers x hidden {have[1]}, but `size` {size} is "
                        f"{want[0]}x{want[1]}" if want else f"`size` {size!r}: unknown preset", fields=('init_from', 'size'))


def source_tokenizer(name: str, trust_remote_code: bool = False):
    """The source model's tokenizer; exit 2 when it has none (the vocabulary extension needs it)."""
    from ..core.models import TOKENIZER_FILES, load_tokenizer, resolve_model

    resolved = resolve_model(name)
    if Path(resolved).is_dir() and not any((Path(resolved) / f).exists() for f in TOKENIZER_FILES):
        raise UserError(f"`init_from` {name}: {resolved} holds no tokenizer (vocab.txt or tokenizer.json), "
                        f"which the vocabulary extension needs", fields=('init_from',))
    return load_tokenizer(name, trust_remote_code)
