"""Settings, declared once: every setting of an experiment is a field of its config dataclass, and the field
carries everything said about it (help, bounds, choices, flag) in its metadata, as scikit-learn declares
`_parameter_constraints` beside the parameters and Hugging Face's `HfArgumentParser` makes dataclasses a CLI.

- `setting(default, help, ...)` declares a field; the CLI's options are generated from these fields
  (bertology.cli_options), so no default, bound or choice is written a second time.
- `Validated.__post_init__` checks every field once, at construction, with `checks.check_number` and the
  choices: a bad value is a `UserError` naming the field in backticks (the CLI says it as the field's flag).
- The settings many commands share (model, precision, threads, seed, data_dir, out, resume,
  trust_remote_code) are declared here once, each in a small base a config inherits where it applies.

A field's name is its flag's name (`max_length` is --max-length); `flag=` is only for the few flags whose
spelling predates this rule (`corpora` is --corpus).
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .checks import check_number
from .errors import UserError

# The numeric precisions (core.precision runs them; declared here, without torch, so configs can name them).
PRECISIONS = ("fp32", "bf16")                           # training and every inference
PREDICT_PRECISIONS = (*PRECISIONS, "bf16-verified")     # QA prediction

_BOUNDS = ("low", "high", "above", "inf_ok")
# a field declared so holds a count: 2.5 is refused (the configs' modules postpone annotations, so they are strings)
_WHOLE_NUMBER_TYPES = (int, "int", "int | None")


# What a setting may say about itself, and what it says when it does not.
SETTING_KEYS = {
    "flag": None,       # the option's spelling when it is not the field's name ("--lowercase/--cased": a bool pair)
    "short": None,      # a one-letter alias ("-m")
    "low": None, "high": None, "above": None, "inf_ok": False,   # numeric bounds (checks.check_number)
    "choices": None,    # the allowed values
    "aliases": (),      # names the library uses for this setting in its errors (align's `layer` is --layers)
    "sep": None,        # a tuple given on the command line as one separated string ("a,b,c")
    "kind": None,       # a path checked before any work: "out_dir" or "data_dir" (bertology.cli_options)
    "metavar": None, "envvar": None,
    "argument": False,  # a positional argument rather than an option
    "shown_as": None,   # how errors name a positional argument ("the text")
}


def setting(default: Any = MISSING, help: str = "", *, factory: Any = MISSING, **about: Any) -> Any:
    """A config field with what the CLI and the validation need to know about it (the keys of SETTING_KEYS)."""
    unknown = set(about) - set(SETTING_KEYS)
    if unknown:
        raise TypeError(f"setting() does not know {sorted(unknown)}")
    return field(default=default, default_factory=factory, metadata={**SETTING_KEYS, "help": help, **about})


def is_setting(f: dataclasses.Field) -> bool:
    """Whether the field is a user-facing setting (declared with `setting`), not an internal knob."""
    return "help" in f.metadata


def flag_of(cls: type, name: str) -> str:
    """How the user spells field `name` of config `cls`: its flag (`max_length` -> --max-length), a positional
    argument's description, or the flag of the field that lists `name` among its aliases."""
    by_name = {f.name: f for f in fields(cls)}
    f = by_name.get(name) or next((f for f in by_name.values() if name in f.metadata.get("aliases", ())), None)
    if f is None:
        return "--" + name.replace("_", "-")
    if f.metadata.get("shown_as"):
        return f.metadata["shown_as"]
    return (f.metadata.get("flag") or "--" + f.name.replace("_", "-")).split("/")[0]


def check_settings(cfg: Any) -> None:
    """Every field of `cfg` against its bounds and choices: a UserError naming the first that fails."""
    for f in fields(cfg):
        meta, value = f.metadata, getattr(cfg, f.name)
        if value is None or not is_setting(f):
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        # every number within its bounds, a count whole, and no float setting NaN or infinite unless it says so
        if any(meta.get(b) not in (None, False) for b in _BOUNDS) or any(isinstance(v, float) for v in values):
            for v in values:
                check_number(f.name, v, low=meta["low"], high=meta["high"], above=meta["above"],
                             integer=f.type in _WHOLE_NUMBER_TYPES, inf_ok=meta["inf_ok"])
        if meta.get("choices"):
            for v in values:
                if v not in meta["choices"]:
                    raise UserError(f"`{f.name}` must be one of {', '.join(meta['choices'])}, not {v!r}", (f.name,))


class Validated:
    """Checks its fields at construction; a subclass with its own __post_init__ calls super().__post_init__()."""

    def __post_init__(self) -> None:
        check_settings(self)


def narrowed(cfg: Any, cls: type) -> Any:
    """The `cls` part of a config that extends it (a command's config -> the library's config it adds to)."""
    return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls) if f.init})


# --------------------------------------------------------------------------------------------- shared settings
MODEL_HELP = "Hugging Face id, local model directory, or an alias (see `bertology models`)."


@dataclass(kw_only=True)
class Model(Validated):
    model: str = setting("minilm", MODEL_HELP, short="-m")
    trust_remote_code: bool = setting(False, "Allow model code from the hub to run (off by default).")


@dataclass(kw_only=True)
class Precision(Validated):
    precision: str = setting("fp32", "fp32 or bf16 (bf16: ~2-4x faster on CPUs with AMX/AVX512-BF16).",
                             choices=PRECISIONS)


@dataclass(kw_only=True)
class Threads(Validated):
    threads: int | None = setting(None, "CPU threads for torch (default: all cores).", low=1)


@dataclass(kw_only=True)
class Seed(Validated):
    seed: int = setting(0, "Random seed (runs with the same seed repeat exactly).", low=0)


@dataclass(kw_only=True)
class DataDir(Validated):
    data_dir: str | None = setting(None, "Directory holding data sets by name (default: ./data, ../shared/data).",
                                   envvar="BERTOLOGY_DATA", kind="data_dir")


@dataclass(kw_only=True)
class Out(Validated):
    out: Path = setting(help="Output directory (results.json, figures).", short="-o", kind="out_dir")


@dataclass(kw_only=True)
class OptionalOut(Validated):
    out: Path | None = setting(None, "Also write results.json (and figures) here.", short="-o", kind="out_dir")


@dataclass(kw_only=True)
class Resume(Validated):
    resume: bool = setting(False, "Continue the interrupted run in OUT from its last checkpoint (the same "
                                  "settings only; without it, a checkpoint in OUT is refused).")


@dataclass(kw_only=True)
class ModelRun(Model, Precision, Threads, Seed):
    """What every command that runs a model shares."""
