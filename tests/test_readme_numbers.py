"""Every figure in the README comes from a recorded results file, and this test keeps them equal, so none goes
stale. A figure is marked in the README's source by an HTML comment right after it (invisible when rendered):

    **22.6**<!-- from docs/recorded/report-quick.json sum:/sections/*/seconds /60 -->
    `Chinese F1 9.0 on 150 questions`<!-- from docs/recorded/report-quick.json /claims/9/this_run -->

The value is the bold text, code span or number just before the comment; FILE is relative to the repository;
the path is a JSON pointer (segments percent-encoded: %20 for a space; `*` takes every element, `sum:` adds
them); an optional `/N` or `*N` rescales (seconds /60 = minutes). A number is compared at the decimals it shows.
An unmarked measured-looking number (a decimal, a percentage, a time or a ratio) outside code fails the test:
such a figure belongs in docs/ beside the command that measured it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(r"(?P<value>\*\*[^*\n]+\*\*|`[^`\n]+`|[-+−]?\d[\d,]*(?:\.\d+)?)"
                  r"<!-- from (?P<file>\S+) (?P<sum>sum:)?(?P<path>/\S*)(?: (?P<scale>[/*]\d+(?:\.\d+)?))? -->")
NUMBER = re.compile(r"^[-+−]?\d[\d,]*(?:\.\d+)?$")
# what looks measured: a decimal, a percentage, a time, a ratio (1.8×)
MEASURED = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s?%|\s?(?:s|min|h|ms)\b|×)|(?<![\w.])\d+\.\d+")


def resolve(doc, path: str) -> list:
    """The values a JSON pointer names (`*` matches every element of a list or object)."""
    found = [doc]
    for part in [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []:
        nxt = []
        for node in found:
            if part == "*":
                nxt += list(node.values()) if isinstance(node, dict) else list(node)
            elif isinstance(node, list):
                nxt.append(node[int(part)])
            else:
                nxt.append(node[part])
        found = nxt
    return found


def recorded_value(root: Path, file: str, path: str, total: bool, scale: str | None):
    values = resolve(json.loads((root / file).read_text(encoding="utf-8")), path)
    value = sum(values) if total else values[0]
    if scale:
        value = value / float(scale[1:]) if scale[0] == "/" else value * float(scale[1:])
    return value


def mismatches(text: str, root: Path = ROOT) -> list[str]:
    """Each marked figure of `text` that differs from its recorded value, as 'shown != recorded (file path)'."""
    bad = []
    for m in MARK.finditer(text):
        shown = m["value"].strip("*`")
        where = f"({m['file']} {m['sum'] or ''}{m['path']})"
        try:
            recorded = recorded_value(root, m["file"], m["path"], bool(m["sum"]), m["scale"])
        except (OSError, KeyError, IndexError, ValueError, TypeError) as e:
            bad.append(f"{shown}: cannot read {where}: {type(e).__name__}: {e}")
            continue
        if NUMBER.match(shown) and isinstance(recorded, (int, float)):
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            expected = f"{recorded:.{decimals}f}"
            if float(shown.replace("−", "-").replace(",", "")) != float(expected):
                bad.append(f"{shown} != {expected} {where}")
        elif shown != str(recorded):
            bad.append(f"{shown!r} != {str(recorded)!r} {where}")
    return bad


def unmarked(text: str) -> list[str]:
    """Measured-looking numbers outside code and links that carry no mark."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)             # code blocks: commands, not figures
    text = MARK.sub("", text)                                     # marked figures are checked above
    text = re.sub(r"<!--.*?-->|`[^`\n]*`|https?://\S+|\]\([^)]*\)|Python \d+\.\d+|95% (?:confidence|CI)", "", text)
    return [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in MEASURED.finditer(text)]


def test_every_readme_figure_equals_its_recorded_value():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    marks = list(MARK.finditer(text))
    assert len(marks) >= 20, f"only {len(marks)} marked figures: the marks are not being found"
    assert mismatches(text) == []


def test_readme_has_no_unmarked_measured_figure():
    assert unmarked((ROOT / "README.md").read_text(encoding="utf-8")) == []


def test_a_stale_or_unsourced_figure_is_caught(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"runs": [{"seconds": 534.41}, {"seconds": 462.08}],
                                                 "claims": [{"verdict": "shown", "base line": {"x y": 0.25}}]}))
    ok = ("**8.9**<!-- from r.json /runs/0/seconds /60 --> min, **16.6**<!-- from r.json sum:/runs/*/seconds /60 --> "
          "min, **shown**<!-- from r.json /claims/0/verdict -->, 0.25<!-- from r.json /claims/0/base%20line/x%20y -->")
    assert mismatches(ok, tmp_path) == []
    stale = "**9.1**<!-- from r.json /runs/0/seconds /60 --> and **not shown**<!-- from r.json /claims/0/verdict -->"
    assert len(mismatches(stale, tmp_path)) == 2
    assert "cannot read" in mismatches("**1.0**<!-- from r.json /runs/5/seconds -->", tmp_path)[0]
    assert "cannot read" in mismatches("**1.0**<!-- from missing.json /x -->", tmp_path)[0]
    # a figure without a mark, outside code, fails; in a command or a link it is not a figure
    assert unmarked("took 22.6 min, 987 s, 8.5× random, 58% [UNK]") != []
    assert len(unmarked("took 22.6 min, 987 s, 8.5× random, 58% [UNK]")) == 4
    assert unmarked("`--lr 2e-4 --max 0.5` and [x](docs/a.1.md) on http://127.0.0.1:8000/ with Python 3.11, a 95% confidence interval") == []
