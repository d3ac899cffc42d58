"""The `bertology` command: a thin layer that parses options, calls one experiment function, saves its
result (results.json + figures) and turns user mistakes (`UserError`) into exit code 2 with one line.

Each experiment module exposes a plain function returning a result object; nothing here computes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="See why BERT works: the experiments of 'Self-supervised learning: BERT explained' "
                       "(Hung-yi Lee, ML 2021) on any BERT-family model. Every command writes --out DIR/"
                       "results.json (versioned schema, see docs/results.md) and PNG figures.")

# Options shared by many commands ---------------------------------------------------------------------------
MODEL_HELP = "Hugging Face id, local model directory, or an alias (see `bertology models`)."
ModelOpt = typer.Option("minilm", "--model", "-m", help=MODEL_HELP)
OutOpt = typer.Option(..., "--out", "-o", help="Output directory (results.json, figures).")
PrecisionOpt = typer.Option("fp32", "--precision", help="fp32 or bf16 (bf16: ~2-4x faster on CPUs with AMX/AVX512-BF16).")
DataDirOpt = typer.Option(None, "--data-dir", envvar="BERTOLOGY_DATA",
                          help="Directory holding data sets by name (default: ./data, ../shared/data).")
TrustOpt = typer.Option(False, "--trust-remote-code", help="Allow model code from the hub to run (off by default).")
SeedOpt = typer.Option(0, "--seed", help="Random seed (runs with the same seed repeat exactly).")


@app.callback()
def _root():
    """See why BERT works (run `bertology COMMAND --help` for each experiment)."""


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@app.command("models")
def models_cmd():
    """List model aliases and whether each is available offline."""
    from rich.console import Console
    from rich.table import Table

    from .models import list_models

    table = Table("alias", "offline", "hub id", "description")
    for row in list_models():
        table.add_row(row["alias"], "yes" if row["offline"] else "no", row["hub_id"] or "", row["description"])
    Console().print(table)


# ==== word senses, CBOW, report (issue: core) ================================================================

# ==== pretraining, tokenizer, fill-mask =======================================================================

# ==== cross-disciplinary transfer =============================================================================

# ==== question answering ======================================================================================

# ==== cross-lingual alignment and language vectors ============================================================


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: exit 0 on success, 2 on a user mistake (one line on stderr), 1 on a bug (traceback).

    Usage errors (unknown option, bad value) are reported by click itself with exit code 2.
    """
    _quiet_libraries()
    try:
        app(args=argv, prog_name="bertology")
    except UserError as e:
        print(f"bertology: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bertology: interrupted (training resumes from its last checkpoint with --resume)", file=sys.stderr)
        return 130
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
