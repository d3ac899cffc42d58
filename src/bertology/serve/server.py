"""Starting the explorer: which models the picker offers, the host check, uvicorn."""

from __future__ import annotations

import socket
import sys
import threading
from dataclasses import dataclass

from ..config import DataDir, Model, Precision, Threads, setting
from ..errors import UserError
from .app import create_app, host_warning
from .explorer import Explorer, ServeConfig


# The explorer opens on the shipped bilingual model: it has an MLM head and reads Chinese, so every view runs on
# it (minilm, the CLI's default, has no MLM head and reads few Chinese characters: half the views failed on it).
SERVE_DEFAULT = "zh-en-mini"


def picker_models(requested: list[str] | None) -> tuple[list[str], list[str]]:
    """(must-load, optional): the models named with --model (default: zh-en-mini when installed, else the CLI's
    default alias) come first and must load; then every alias `bertology models` lists as installed, offered
    when it loads."""
    from ..core.models import DEFAULT_MODEL, list_models

    installed = [row["alias"] for row in list_models() if row["offline"]]
    default = SERVE_DEFAULT if SERVE_DEFAULT in installed else DEFAULT_MODEL
    required = list(dict.fromkeys(requested or [default]))
    optional = [alias for alias in installed if alias not in required]
    return required, optional


def check_port(host: str, port: int) -> None:
    """Fail with one line (exit 2) when the address cannot be bound, before any model is loaded."""
    if not 1 <= port <= 65535:
        raise UserError(f"`port` must be between 1 and 65535, not {port}", fields=("port",))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"`host` {host!r}: {e.strerror}", fields=("host",)) from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def build_explorer(models: list[str] | None, data_dir: str | None = None, precision: str = "fp32",
                   trust_remote_code: bool = False) -> Explorer:
    from ..core.precision import check_precision

    check_precision(precision)
    required, optional = picker_models(models)
    explorer = Explorer(ServeConfig(models=required, data_dir=data_dir, precision=precision,
                                    trust_remote_code=trust_remote_code))
    for name in optional:        # an installed alias that does not load is left out of the picker, not fatal
        try:
            explorer.add_models([name])
        except UserError as e:
            print(f"bertology serve: {name} left out of the model picker: {e}", file=sys.stderr)
    return explorer


@dataclass(kw_only=True)
class ServeCommand(Model, Precision, Threads, DataDir):
    """`bertology serve`."""

    model: list[str] | None = setting(None, "Model the page opens with (repeat to offer several); installed "
                                            "aliases from `bertology models` are offered too. Default: zh-en-mini.",
                                      short="-m")
    host: str = setting("127.0.0.1", "Address to listen on; anything but loopback prints a warning (there is no "
                                     "authentication).")
    port: int = setting(8000, "Port to listen on.")
    data_dir: str | None = setting(None, "Where Tatoeba and MUSE are found (the neighbours and language-vector "
                                         "views); default: see README, Data.", kind="data_dir")


def run_server(models: list[str] | None, host: str = "127.0.0.1", port: int = 8000, data_dir: str | None = None,
               precision: str = "fp32", trust_remote_code: bool = False) -> None:
    import uvicorn

    check_port(host, port)
    warning = host_warning(host)
    if warning:
        print(f"bertology serve: {warning}", file=sys.stderr)
    explorer = build_explorer(models, data_dir, precision, trust_remote_code)
    shown = f"[{host}]" if ":" in host else host
    print(f"bertology explorer on http://{shown}:{port}/ (models: {', '.join(explorer.choices)}); Ctrl-C stops it",
          flush=True)
    # the models (and the default model's slow first neighbours and language-vector steps) load in the
    # background while the page opens; every step yields to the reader's requests
    threading.Thread(target=explorer.preload, name="preload", daemon=True).start()
    uvicorn.run(create_app(explorer, host), host=host, port=port, log_level="warning")
