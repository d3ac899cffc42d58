"""Masked-LM pretraining from scratch: the run that ties the package together, the model built for it, and
its exports (OUT/tokenizer, OUT/model, results.json).

The pipeline, top to bottom (tokenizer.py, data.py, objective.py, then `pretrain` here):
    corpora LANG=FILE  --train_tokenizer-->  WordPiece vocabulary (every CJK character its own token)
    lines --tokenize--> one token stream per language --pack--> fixed-length sequences [CLS] s1 [SEP] s2 [SEP] ...
    each epoch: languages mixed with exponentially smoothed sampling (mBERT: p_l ∝ share_l^0.7), shuffled,
    cut into batches, masked deterministically from (seed, epoch, batch)  --engine.train-->  BERT + MLM head
    every `eval_every` steps: held-out loss / masked-token accuracy per language, hooks (e.g. alignment MRR),
    a Hugging Face model directory exported to OUT/model, and a resumable checkpoint.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from ...core.models import fresh_model
from ...errors import UserError
from ...io.rundir import check_resume, save_pretrained_atomically
from ...io.storage import truncate_jsonl
from .data import PackedData, PackedMLMBatches, prepare_data, unigram_baseline
from .objective import SPAN_MAX, SPAN_MEAN, SPAN_P, MaskedLMObjective, evaluate_mlm, make_masker, mlm_loss, require_jieba
from ..configs import PretrainConfig
from .tokenizer import SPECIAL_TOKENS, TokenizerResult, learn_tokenizer

SCHEMA = "bertology.pretrain/2"     # 2: config.seq_len is config.max_length (issue 24)


# Google's BERT miniatures (Turc et al. 2019): layers x hidden; heads = hidden / 64, FFN = 4 x hidden.
PRESETS: dict[str, tuple[int, int]] = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512),
                                       "medium": (8, 512), "base": (12, 768)}
# Architectures trained from scratch, by Hugging Face model_type (as run_mlm.py's --model_type): both load with
# AutoModelForMaskedLM. "bert" is post-LN (LayerNorm after each residual add, as in BERT); "roberta-prelayernorm"
# (Xiong et al. 2020's pre-LN: LayerNorm inside each residual branch, one more at the top) is the only pre-LN
# encoder with an MLM head that transformers ships.
MODEL_TYPES = ("bert", "roberta-prelayernorm")
EVAL_MASK_RATE = 0.15    # the held-out evaluation's masking, the same for every recipe (BERT's rate, token pieces)


def model_config(preset: str | None, config_file: str | None, vocab_size: int, seq_len: int, dropout: float,
                 model_type: str = "bert", pad_token_id: int = 0):
    """The config of a model trained from scratch: a `--size` preset (or a config.json) of `model_type`.

    RoBERTa-style models number positions from pad_token_id + 1 (transformers' create_position_ids_from_input_ids),
    so they get pad_token_id + 1 more position embeddings than BERT for the same sequence length."""
    from transformers import AutoConfig

    check_model_type(model_type)
    if config_file:
        try:
            values = json.loads(Path(config_file).read_text(encoding="utf-8"))
            cfg = AutoConfig.for_model(values.pop("model_type", "bert"), **values)
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{config_file}: not a readable model config.json ({e})") from None
        if cfg.model_type not in MODEL_TYPES:
            raise UserError(f"{config_file}: model_type {cfg.model_type!r} is not one of {', '.join(MODEL_TYPES)}")
        cfg.vocab_size = vocab_size
    else:
        if preset not in PRESETS:
            raise UserError(f"`size` {preset!r}: choose one of {', '.join(PRESETS)}", fields=('size',))
        layers, hidden = PRESETS[preset]
        cfg = AutoConfig.for_model(model_type, vocab_size=vocab_size, hidden_size=hidden,
                                   num_hidden_layers=layers, num_attention_heads=hidden // 64,
                                   intermediate_size=4 * hidden, type_vocab_size=2, pad_token_id=pad_token_id,
                                   max_position_embeddings=max(512, seq_len)
                                   + _position_offset(model_type, pad_token_id))
    position_offset = _position_offset(cfg.model_type, cfg.pad_token_id)
    if cfg.max_position_embeddings - position_offset < seq_len:
        raise UserError(f"`max_length` {seq_len} exceeds the config's max_position_embeddings "
                        f"({cfg.max_position_embeddings}{f' - {position_offset}' if position_offset else ''})",
                        fields=('max_length',))
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
    cfg.architectures = ["BertForMaskedLM" if cfg.model_type == "bert" else "RobertaPreLayerNormForMaskedLM"]
    return cfg


def _position_offset(model_type: str, pad_token_id: int) -> int:
    """Position ids start here: 0 for BERT, pad_token_id + 1 for the RoBERTa family."""
    return 0 if model_type == "bert" else pad_token_id + 1


def check_model_type(model_type: str) -> None:
    if model_type not in MODEL_TYPES:
        raise UserError(f"`model_type` {model_type!r}: choose one of {', '.join(MODEL_TYPES)}",
                        fields=('model_type',))


def make_mlm(config, device: torch.device | str = "cpu"):
    """The `*ForMaskedLM` of `config` (BERT or pre-LN) for training. On CPUs attention runs as plain matmul +
    softmax ("eager"): PyTorch's CPU flash-attention kernel has a slow backward for BERT's small heads (64 dims,
    128 tokens), and with torch.compile inductor fuses the softmax itself. GPUs keep SDPA. The choice is a
    runtime one, not written to config.json."""
    from transformers import AutoModelForMaskedLM

    if torch.device(device).type == "cpu":
        config._attn_implementation = "eager"
    # parameters are always fp32 (bf16 is autocast's job); a config carrying a storage dtype must not change that
    return fresh_model(AutoModelForMaskedLM, config)


# --------------------------------------------------------------------------------------------- atomic saves
def train_tokenizer(corpora: dict[str, list[str]], out_dir: str | Path, vocab_size: int = 16000,
                    lowercase: bool = True, strip_accents: bool | None = None, alpha: float = 0.7,
                    budget_tokens: int = 20_000_000, seed: int = 0, progress: bool = True,
                    alphabet_size: int | None = None) -> tuple[Any, TokenizerResult]:
    """`tokenizer.learn_tokenizer`, saved atomically to `out_dir` so that `AutoTokenizer.from_pretrained(out_dir)`
    loads it as a fast `BertTokenizer`."""
    t0 = time.perf_counter()
    tok, res = learn_tokenizer(corpora, vocab_size, lowercase, strip_accents, alpha, budget_tokens, seed,
                               progress, alphabet_size)
    out_dir = Path(out_dir)
    save_pretrained_atomically(out_dir, tok)
    return tok, dataclasses.replace(res, out_dir=str(out_dir), seconds=time.perf_counter() - t0)


def export_model(mlm, tokenizer, out_dir: Path) -> Path:
    """Write a Hugging Face model directory (config, model.safetensors, tokenizer) that
    `AutoModelForMaskedLM.from_pretrained` loads, each file replaced atomically (readers may load it while
    training goes on)."""
    return save_pretrained_atomically(out_dir, mlm, tokenizer)


# --------------------------------------------------------------------------------------------- pretrain()
@dataclass
class PretrainResult:
    config: dict
    model_dir: str
    parameters: int
    parameters_non_embedding: int
    languages: dict[str, dict]               # lines, tokens, train/heldout sequences, sampling share
    steps: int
    tokens_seen: int
    tokens_per_s: float
    wall_time: float
    final: dict[str, float]
    unigram_baseline: dict[str, float]        # context-free reference for the held-out loss / accuracy
    history: list[dict] = field(default_factory=list)
    train_log: list[dict] = field(default_factory=list)
    warm_start: dict | None = None            # with init_from: which weights came from where
    compiled: bool = False                    # the training step really ran compiled (False: eager)
    compile_error: str | None = None          # why --compile fell back to eager (also warned at the time)
    masking: dict = field(default_factory=dict)   # the masking recipe, in full (see masking_settings)


def load_corpora(cfg: PretrainConfig) -> dict[str, list[str]]:
    from ...io.corpora import read_corpora

    corpora = read_corpora(cfg.corpora, cfg.data_dir)
    if cfg.max_sentences_per_lang:
        # a seeded random subset (order kept), so the data-scale knob does not just take the first source
        rng = np.random.default_rng(cfg.seed)
        for lang, lines in corpora.items():
            if len(lines) > cfg.max_sentences_per_lang:
                keep = np.sort(rng.choice(len(lines), cfg.max_sentences_per_lang, replace=False))
                corpora[lang] = [lines[i] for i in keep]
    return corpora


def _check_config(cfg: PretrainConfig):
    """Fail on bad options before minutes of reading and tokenising. Returns the --init-from source
    (config, tokenizer), validated with the rest, or None."""
    source = _warm_start_source(cfg)
    if source is None and cfg.config_file is None and cfg.size not in PRESETS:
        raise UserError(f"`size` {cfg.size!r}: choose one of {', '.join(PRESETS)}", fields=('size',))
    check_model_type(cfg.model_type)
    if cfg.model_type != "bert" and (source is not None or cfg.config_file):
        raise UserError(f"`model_type` {cfg.model_type!r} is for a model built from --size: --init-from and "
                        f"--config bring their own architecture", fields=('model_type',))
    if cfg.config_file:     # read now, not after minutes of tokenising (the vocabulary size is set later)
        model_config(None, cfg.config_file, len(SPECIAL_TOKENS), cfg.max_length, cfg.dropout)
    # The config checked every other bound as it was made; these two exclude an end, which a setting's bounds
    # cannot say (a mask rate of 1 leaves nothing to predict from, a dropout of 1 zeroes every activation).
    if not 0 < cfg.mask_rate < 1:
        raise UserError(f"`mask_rate` {cfg.mask_rate}: must be in (0, 1)", fields=('mask_rate',))
    if cfg.dropout >= 1:
        raise UserError(f"`dropout` {cfg.dropout}: must be below 1", fields=('dropout',))
    if cfg.whole_word:
        require_jieba()
    return source


def _run_tokenizer(cfg: PretrainConfig, corpora: dict[str, list[str]], out: Path, is_main: bool, world: int,
                   source=None):
    """The run's tokenizer: given, reused from an interrupted run, or trained now (rank 0 trains, the others
    wait); with a warm-start `source`, extended to the source's vocabulary."""
    from transformers import AutoTokenizer

    from ...core.models import load_tokenizer

    tok_dir = out / "tokenizer"
    if cfg.tokenizer:
        tokenizer = load_tokenizer(cfg.tokenizer)
    else:
        if is_main and not (tok_dir / "tokenizer_config.json").exists():
            train_tokenizer(corpora, tok_dir, cfg.vocab_size, cfg.lowercase, seed=cfg.seed, progress=cfg.progress)
        if world > 1:
            torch.distributed.barrier()
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    if source is not None:
        from ..warmstart import extend_vocabulary

        tokenizer, _ = extend_vocabulary(source[1], tokenizer)
    if tokenizer.mask_token_id is None or tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise UserError(f"tokenizer {cfg.tokenizer}: needs [CLS], [SEP] and [MASK] tokens")
    return tokenizer


def _pretrain_result(cfg: PretrainConfig, out: Path, mlm, data: PackedData, shares: dict[str, float], result,
                     tokenizer, warm=None, objective=None) -> PretrainResult:
    n_params = sum(p.numel() for p in mlm.parameters())
    n_embed = sum(p.numel() for n, p in mlm.named_parameters() if "embeddings" in n)
    return PretrainResult(
        config=asdict(cfg), model_dir=str(out / "model"), parameters=n_params,
        parameters_non_embedding=n_params - n_embed,
        languages={l: {"lines": data.lines[l], "tokens": data.tokens[l], "train_sequences": len(data.train[l]),
                       "heldout_sequences": len(data.heldout[l]),
                       "heldout_lines_dropped_as_in_train": data.heldout_dropped.get(l, 0), "sampling_share": shares[l]} for l in data.train},
        steps=result.steps, tokens_seen=result.tokens, tokens_per_s=result.tokens / max(result.wall_time, 1e-9),
        wall_time=result.wall_time, final=result.history[-1] if result.history else {},
        unigram_baseline=unigram_baseline(data, tokenizer.all_special_ids),
        history=result.history, train_log=result.train_log, warm_start=asdict(warm) if warm else None,
        compiled=bool(objective is not None and objective.compiled),
        compile_error=objective.compile_error if objective is not None else None, masking=masking_settings(cfg))


def masking_settings(cfg: PretrainConfig) -> dict:
    """What was masked, for results.json: the rate, the unit (token, word, span) and how words were found."""
    segmenter = None
    if cfg.whole_word:
        jieba = require_jieba()
        segmenter = f"jieba {getattr(jieba, '__version__', '?')} (Chinese); the tokenizer's word pieces (other)"
    unit = {(False, False): "token", (True, False): "word", (False, True): "span of tokens",
            (True, True): "span of words"}[(cfg.whole_word, cfg.span)]
    return {"rate": cfg.mask_rate, "unit": unit, "whole_word": cfg.whole_word, "span": cfg.span,
            "word_segmenter": segmenter, "replace_mask_random_keep": [0.8, 0.1, 0.1],
            "span_lengths": {"geometric_p": SPAN_P, "max": SPAN_MAX, "mean": SPAN_MEAN} if cfg.span else None}


def pretrain(cfg: PretrainConfig, eval_hooks: Iterable[Callable[[Any, int, dict], dict | None]] = ()
             ) -> PretrainResult:
    """Pretrain a BERT with masked-LM from scratch; see the module docstring. Runs unchanged under torchrun.

    eval_hooks: called as hook(model, step, metrics) at each evaluation with the Hugging Face
    `*ForMaskedLM`; a returned dict is merged into the logged metrics (e.g. alignment MRR). A hook with a
    `prepare(tokenizer)` method is given the run's tokenizer before training (senses.SenseTracker).
    """
    from ...core import engine
    from ...core.models import pick_device

    source = _check_config(cfg)
    out = Path(cfg.out_dir)
    rank, world = engine.init_distributed(pick_device())
    is_main = rank == 0
    if is_main:
        _claim_out_dir(cfg, out)
    corpora = load_corpora(cfg)

    tokenizer = _run_tokenizer(cfg, corpora, out, is_main, world, source)
    eval_hooks = _prepared_hooks(eval_hooks, tokenizer)
    data = prepare_data(corpora, tokenizer, cfg.max_length, cfg.heldout_fraction, cfg.max_heldout,
                        cache_dir=out if is_main else None, progress=cfg.progress and is_main)
    del corpora
    engine.set_seed(cfg.seed)   # the same initial weights on every rank and on resume
    mlm, warm = _build_model(cfg, tokenizer, source)
    objective = MaskedLMObjective(mlm, compile=cfg.compile)
    batches, eval_masker = _maskers_and_batches(cfg, tokenizer, data, rank, world)
    hooks = [lambda m, s, met, h=h: h(mlm, s, met) for h in eval_hooks] + [_export_hook(mlm, tokenizer, out)]
    if cfg.resume and is_main and (ckpt := engine.find_checkpoint(out)):
        truncate_jsonl(out / "eval.jsonl", engine.read_checkpoint_state(ckpt)["step"])
    result = engine.train(objective, batches, _train_config(cfg, out),
                          evaluate=lambda m: evaluate_mlm(m, data.heldout, eval_masker, seed=cfg.seed),
                          on_evaluate=hooks, loss_fn=mlm_loss)

    res = _pretrain_result(cfg, out, mlm, data, batches.shares(), result, tokenizer, warm, objective)
    if is_main:
        from ...io.storage import save_results

        save_results(out, SCHEMA, asdict(res))
    # Clean multi-process shutdown: drop the model/optimizer references, then barrier + destroy.
    del objective, batches, result
    gc.collect()
    engine.shutdown_distributed()
    return res


def _claim_out_dir(cfg: PretrainConfig, out: Path) -> None:
    """Create OUT, refusing a checkpoint there from other settings (or any checkpoint without --resume)."""
    out.mkdir(parents=True, exist_ok=True)
    # max_steps and eval_every may change on resume (train longer); nothing that shapes the model may
    check_resume(out, {k: v for k, v in asdict(cfg).items()
                       if k not in ("max_steps", "eval_every", "resume", "progress",
                                    "out_dir", "data_dir", "compile")}, cfg.resume)


def _prepared_hooks(eval_hooks: Iterable, tokenizer) -> list:
    """The hooks as a list, each that needs the tokenizer given it now: it checks it before minutes of packing."""
    eval_hooks = list(eval_hooks)
    for hook in eval_hooks:
        if hasattr(hook, "prepare"):
            hook.prepare(tokenizer)
    return eval_hooks


def _build_model(cfg: PretrainConfig, tokenizer, source):
    """(the masked-LM to train, the warm-start report or None): built from --size / --config, or from the
    --init-from `source` with its weights copied in."""
    from ...core.models import pick_device

    if source is None:
        mlm = make_mlm(model_config(cfg.size, cfg.config_file, len(tokenizer), cfg.max_length, cfg.dropout,
                                    cfg.model_type, tokenizer.pad_token_id), pick_device())
        return mlm, None
    from ..warmstart import target_config, warm_start

    mlm = make_mlm(target_config(source[0], len(tokenizer), cfg.max_length, cfg.dropout), pick_device())
    return mlm, warm_start(mlm, cfg.init_from, source[1], tokenizer, seed=cfg.seed)


def _maskers_and_batches(cfg: PretrainConfig, tokenizer, data: PackedData, rank: int, world: int):
    """(the training batches, masked as the recipe says; the held-out evaluation's masker), refusing a batch
    larger than this process's share of the training sequences."""
    masker = make_masker(tokenizer, cfg.mask_rate, cfg.whole_word, cfg.span)
    # The held-out loss is always measured under 15% token masking, whatever the run trains with: a loss at 40%
    # whole-word masking is a different (harder) task, and recipes are compared by this one number.
    eval_masker = make_masker(tokenizer, EVAL_MASK_RATE, False, False)
    batches = PackedMLMBatches(data.train, cfg.batch_size, masker, cfg.alpha, cfg.seed)
    if len(batches(0, rank, world)) == 0:
        raise UserError(f"`batch_size` {cfg.batch_size} x {world} process(es) exceeds the "
                        f"{sum(len(s) for s in data.train.values())} training sequences", fields=('batch_size',))
    return batches, eval_masker


def _export_hook(mlm, tokenizer, out: Path):
    """The last hook of each evaluation: OUT/model exported and the metrics appended to OUT/eval.jsonl."""
    def export_hook(model, step, metrics):
        export_model(mlm, tokenizer, out / "model")
        with open(out / "eval.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")

    return export_hook


def _train_config(cfg: PretrainConfig, out: Path):
    """The engine's settings for this run: a resumable checkpoint at each evaluation, the last weights kept."""
    from ...core import engine

    return engine.TrainConfig(out_dir=out, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup=cfg.warmup,
                              max_steps=cfg.max_steps, grad_accum=cfg.grad_accum, clip=cfg.clip,
                              precision=cfg.precision, seed=cfg.seed, eval_every=cfg.eval_every,
                              checkpoint_every=None, metric="eval_loss", restore_best=False, resume=cfg.resume,
                              progress=cfg.progress, log_every=10, fused_optimizer=True)


def _warm_start_source(cfg: PretrainConfig):
    """(config, tokenizer) of the `init_from` model, validated before any data is read; None without it."""
    if not cfg.init_from:
        return None
    from ..warmstart import check_size, source_config, source_tokenizer

    if cfg.config_file:
        raise UserError("`init_from` and `config` both set the architecture: give one",
                        fields=("init_from", "config"))
    src_cfg = source_config(cfg.init_from)
    check_size(cfg.init_from, src_cfg, cfg.size, PRESETS)
    return src_cfg, source_tokenizer(cfg.init_from)


