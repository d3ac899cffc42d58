"""The one validator for numbers a user gives (CLI flags, library arguments, serve's JSON fields).

Python's float() reads "inf", "nan" and 1e400 (= inf), and a range check such as `lr > 0` lets inf through
and nan past `not lr < 0`: each reached the work and came back as NaN weights, a "held-out loss nan" or an
HTTP 500. `check_number` refuses them first, with a `UserError` that names the field in backticks, so each
caller says it in its own terms (the CLI: --lr; serve: the input's name).
"""

from __future__ import annotations

import math
from typing import Any

from .errors import UserError


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 above: float | None = None, integer: bool = False, inf_ok: bool = False) -> float | int:
    """`value` as a finite number (an int when `integer`) with low <= value <= high and value > above;
    anything else raises UserError naming `name`. Bools are refused: JSON's true is no count. `inf_ok`: +inf
    is a meaningful value too (a margin that covers everything); NaN never is."""
    shown = str(value)[:20]
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or value is None:
        raise UserError(f"`{name}` must be {kind}, not {shown!r}", (name,))
    try:
        number = value if isinstance(value, int) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"`{name}` must be {kind}, not {shown!r}", (name,)) from None
    if isinstance(number, float) and not math.isfinite(number) and not (inf_ok and number == math.inf):
        raise UserError(f"`{name}` must be a finite number, not {shown}", (name,))
    if integer and not math.isinf(number):
        if number != int(number):
            raise UserError(f"`{name}` must be a whole number, not {shown}", (name,))
        number = int(number)
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"between {low:g} and {high:g}" if low is not None and high is not None else \
            f"at least {low:g}" if low is not None else f"at most {high:g}"
        raise UserError(f"`{name}` must be {bounds}, not {shown}", (name,))
    if above is not None and not number > above:
        raise UserError(f"`{name}` must be above {above:g}, not {shown}", (name,))
    return number


def check_text(name: str, text: str) -> str:
    """`text` as given, if it is valid Unicode text: a lone surrogate (JSON's "\\ud800", or invalid UTF-8 bytes on
    a command line, which Python decodes to surrogates) made the tokenizer fail with a TypeError traceback."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UserError(f"`{name}`: character {e.start + 1} is not valid text (a lone UTF-16 surrogate "
                        f"{text[e.start]!r}, or bytes that are not UTF-8)", (name,)) from None
    return text
