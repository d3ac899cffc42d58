"""The CLI's options, generated from config dataclasses (bertology.config), as HfArgumentParser does: each
field declared with `setting` becomes one typer option with its flag, help, default and bounds, so the CLI
repeats nothing the config says. `command(group, name, Config)` turns `present(cfg)` (run the experiment,
save, print) into a typer command whose options are Config's fields.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from .checks import check_number
from . import config
from .config import flag_of, is_setting
from .errors import UserError

# One spelling per meaning across commands (Hugging Face's scripts say max_seq_length / max_steps). The old
# spellings still work: they are rewritten before parsing, so they stay out of --help.
OLD_SPELLINGS = {"--max-len": "--max-length", "--seq-len": "--max-length", "--steps": "--max-steps",
                 "--whole-word-mask": "--whole-word"}


def new_spellings(argv: list[str]) -> list[str]:
    """Old flag spellings (`--seq-len 64`, `--steps=10`) in today's spelling."""
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        out.append(OLD_SPELLINGS.get(name, name) + eq + value if name in OLD_SPELLINGS else arg)
    return out


# --------------------------------------------------------------------------------------------- checks of paths
def check_out_dir(value: Optional[Path]) -> Optional[Path]:
    """--out must be (or become) a directory: refuse a file, or a path under a file, before any work starts
    (otherwise the mistake shows only when the results are written, after hours of training)."""
    if value is not None:
        for p in (Path(value), *Path(value).parents):
            if p.exists():
                if not p.is_dir():
                    raise typer.BadParameter(f"{p} is a file, not a directory")
                _check_writable(p)
                break
    return value


def _check_writable(folder: Path) -> None:
    """Write (and remove) a probe file where --out will be made: a read-only or full folder fails now, not
    when the results are written after the work (os.access trusts permission bits that root ignores and a
    read-only mount overrides)."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".bertology-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise typer.BadParameter(f"cannot write in {folder} ({e.strerror or e})") from None


def check_data_dir(value: Optional[str]) -> Optional[str]:
    """--data-dir must be a folder: a file was silently ignored (the data sets were looked up elsewhere)."""
    if value is not None and Path(value).exists() and not Path(value).is_dir():
        raise typer.BadParameter(f"{value} is a file, not a directory")
    return value


PATH_CHECKS = {"out_dir": check_out_dir, "data_dir": check_data_dir}


def _number_callback(meta: dict) -> Callable:
    """A float flag's check, before any work: click reads "inf", "nan" and 1e400 as floats and its min=/max=
    let inf and nan through (an infinite --lr trained to NaN)."""
    def callback(value):
        if value is not None:
            try:
                check_number("value", value, low=meta["low"], high=meta["high"], above=meta["above"],
                             inf_ok=meta["inf_ok"])
            except UserError as e:
                raise typer.BadParameter(str(e).replace("`value` ", "")) from None
        return value
    return callback


# --------------------------------------------------------------------------------------------- generation
def _cli_type(f: dataclasses.Field, hint: Any) -> Any:
    """The type typer parses: a separated tuple is one string; `X | None` is Optional[X]."""
    if f.metadata.get("sep"):
        return str
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint):
        return Optional[_cli_type(f, args[0])]
    if typing.get_origin(hint) in (list, tuple):
        return list[args[0]]
    return hint


def _cli_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return ...
    if f.metadata.get("sep") and default is not None:
        return f.metadata["sep"].join(str(v) for v in default)
    return list(default) if isinstance(default, tuple) else default


def option(f: dataclasses.Field, hint: Any) -> tuple[Any, Any]:
    """(type, typer.Option or typer.Argument) for one config field."""
    meta = f.metadata
    cli_type, default = _cli_type(f, hint), _cli_default(f)
    if meta.get("argument"):
        return cli_type, typer.Argument(default, help=meta["help"])
    decls = [meta.get("flag") or "--" + f.name.replace("_", "-")] + ([meta["short"]] if meta.get("short") else [])
    extra: dict[str, Any] = {k: meta[k] for k in ("metavar", "envvar") if meta.get(k)}
    base = typing.get_args(cli_type)[0] if typing.get_origin(cli_type) is typing.Union else cli_type
    if meta.get("kind"):
        extra["callback"] = PATH_CHECKS[meta["kind"]]
    elif base is int and (meta["low"] is not None or meta["high"] is not None):
        extra.update(min=meta["low"], max=meta["high"])      # click's own range message
    elif base is float and any(meta[b] not in (None, False) for b in ("low", "high", "above")):
        extra["callback"] = _number_callback(meta)
    return cli_type, typer.Option(default, *decls, help=meta["help"], **extra)


def cli_fields(cls: type, omit: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    """The config's settings in --help order: the experiment's own first (those of its settings classes too,
    e.g. SensesSettings under SensesConfig), then the shared ones from bertology.config (model, precision,
    seed, out...)."""
    own = [f for f in dataclasses.fields(cls) if is_setting(f) and f.name not in omit]
    shared = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base)
              and base.__module__ == config.__name__ for f in dataclasses.fields(base)}
    return [f for f in own if f.name not in shared] + [f for f in own if f.name in shared]


def config_from_cli(cls: type, values: dict[str, Any]) -> Any:
    """The config from parsed option values: separated strings split into tuples of the field's type."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        sep, value = f.metadata.get("sep"), values.get(f.name)
        if sep and isinstance(value, str):
            values[f.name] = _split(value, sep, typing.get_args(hints[f.name])[0], flag_of(cls, f.name))
        elif isinstance(value, list) and typing.get_origin(hints[f.name]) is tuple:
            values[f.name] = tuple(value)
    return cls(**values)


def _split(text: str, sep: str, kind: type, flag: str) -> tuple:
    """'a,b' -> ('a', 'b') of `kind`; a number that does not parse is named by its flag."""
    parts = [p.strip() for p in text.split(sep) if p.strip()]
    try:
        return tuple(kind(p) for p in parts)
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected {sep}-separated numbers such as 0{sep}1{sep}2") from None


@contextlib.contextmanager
def flags_of(cls: type):
    """Errors raised inside name this command's flags (from the config's metadata), not the library's fields."""
    try:
        yield
    except UserError as e:
        if not e.fields:
            raise
        raise UserError(e.describe(lambda name: flag_of(cls, name))) from None


def set_threads(threads: Optional[int]) -> None:
    """--threads N: cap torch's intra-op threads (pin jobs that share a machine); None keeps torch's default."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def command(group: typer.Typer, name: str, cls: type, omit: tuple[str, ...] = ()):
    """Decorator: `present(cfg)` becomes the typer command `name`, its options Config's settings (less `omit`).
    The config is built (and so validated) before present runs; --threads is applied first."""
    hints = typing.get_type_hints(cls)

    def decorate(present: Callable[[Any], Any]) -> Callable:
        params, annotations = [], {}
        for f in cli_fields(cls, omit):
            cli_type, default = option(f, hints[f.name])
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=cli_type))
            annotations[f.name] = cli_type

        def run(**values):
            with flags_of(cls):
                cfg = config_from_cli(cls, values)
                set_threads(getattr(cfg, "threads", None))
                return present(cfg)

        run.__name__, run.__doc__ = present.__name__, present.__doc__
        run.__signature__ = inspect.Signature(params)
        run.__annotations__ = annotations
        run.config = cls
        group.command(name)(run)
        return present
    return decorate


def flag_name(field: str) -> str:
    """The option that sets a library field no command config names: `lr` -> --lr."""
    return "--" + field.replace("_", "-")


def describe_error(error: UserError) -> str:
    """A library error in the CLI's terms: its fields as flag names."""
    return error.describe(flag_name)


def quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _one_line(message: str) -> str:
    """A message as one line: a script that reads stderr (and a user scanning it) gets one line per error."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def run_app(app: typer.Typer, argv: list[str], describe: Callable[[UserError], str]) -> int:
    """Run the CLI: exit 0 on success, 2 on a user mistake (one line on stderr), 1 on a bug (traceback).

    Usage errors (unknown option, a value out of range) come from click, caught here (standalone_mode=False)
    so that they read as one line like every other user error, not click's boxed multi-line usage text.
    """
    import sys

    try:
        code = app(args=new_spellings(argv), prog_name="bertology", standalone_mode=False)
    except UserError as e:
        print(f"bertology: error: {_one_line(describe(e))}", file=sys.stderr)
        return 2
    except typer.TyperException as e:
        if type(e).__name__ == "NoArgsIsHelpError":    # `bertology qa`: the help is the answer, not an error
            print(e.format_message())
            return 2
        command_path = getattr(getattr(e, "ctx", None), "command_path", "bertology")
        print(f"bertology: error: {_one_line(e.format_message())} (see {command_path} --help)", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except typer.Abort:
        print("bertology: aborted", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bertology: interrupted (training resumes from its last checkpoint with --resume)", file=sys.stderr)
        return 130
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code if isinstance(code, int) else 0
