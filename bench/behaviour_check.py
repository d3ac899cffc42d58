"""No-behaviour-change check for restructurings (issue 13): run a fixed set of CLI commands on tiny random
models and small real data, then compare two such runs byte for byte apart from timing fields.

    python bench/behaviour_check.py record DIR [NAME...]   # run every command (or those named) into DIR/<name>/
    python bench/behaviour_check.py compare A B     # exit 1 and list the differences, if any

Not part of the test suite: it takes a few minutes on two busy cores. Run `record` on the old code and on the
new one (same machine, same thread count), then `compare`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()

# Keys whose values are measurements of time or speed, not results: ignored by `compare`.
TIMING_KEYS = re.compile(r"(seconds|wall_time|time_s|elapsed|per_s|tokens_per_s|duration|_time$|^time$|created|"
                         r"started|finished|date)", re.I)
COMPARED_FILES = ("results.json", "predictions.json", "nbest.json", "eval.jsonl")
# Outputs that differ between two runs of the same code: the WordPiece trainer (tokenizers) does not give the
# same vocabulary twice (e.g. 486 vs 484 tokens), and align-scale trains one. For these only the structure
# (the keys, recursively) is compared.
NONDETERMINISTIC = ("tokenizer/", "align-scale/")


def commands(out: Path, tiny: Path, tiny_enc: Path, qa_model: Path) -> list[tuple[str, list[str]]]:
    d = ["--data-dir", str(DATA)]
    corp = ["--corpus", "en=tatoeba-cmn-eng#0@400", "--corpus", "zh=tatoeba-cmn-eng#1@400"]
    return [
        ("senses-en", ["senses", "--model", str(tiny), "--sentences", "apple-en", "--out", str(out / "senses-en")]),
        ("senses-zh", ["senses", "--model", str(tiny), "--sentences", "apple-zh", "--layer", "1", "--pool", "first",
                       "--out", str(out / "senses-zh")]),
        ("senses-bf16", ["senses", "--model", str(tiny), "--sentences", "apple-en", "--precision", "bf16",
                         "--out", str(out / "senses-bf16")]),
        ("cbow", ["cbow", "--corpus", str(DATA / "corpora/zh/msra_ner_text.txt.gz"), "--max-lines", "3000",
                  "--target", "果", "--epochs", "2", "--out", str(out / "cbow")]),
        ("senses-static", ["senses", "--static", str(out / "cbow"), "--sentences", "apple-zh",
                           "--out", str(out / "senses-static")]),
        ("fill-mask", ["fill-mask", "--model", str(tiny), "今天買了蘋[MASK]來吃", "[MASK] ate an apple",
                       "--out", str(out / "fill-mask")]),
        ("tokenizer", ["tokenizer", "train", *corp, "--vocab-size", "600", "--budget-tokens", "50000", *d,
                       "--out", str(out / "tokenizer")]),
        ("pretrain", ["pretrain", *corp, "--tokenizer", str(tiny), "--size", "tiny", "--max-length", "32",
                      "--batch-size", "8", "--max-steps", "6", "--eval-every", "3", "--track-alignment",
                      str(DATA / "muse/en-zh.txt"), "--no-progress", *d, "--out", str(out / "pretrain")]),
        ("crossdomain", ["crossdomain", "--task", "splice", "--model", str(tiny), "--limit", "60", "--seeds", "1",
                         "--epochs", "1", "--max-length", "64", "--batch-size", "16",
                         "--conditions", "pretrained,scratch,rand-embed,shuffled,frozen", *d,
                         "--out", str(out / "crossdomain")]),
        ("align", ["align", "--model", str(tiny), *corp, "--dict", "muse-en-zh", "--k", "2", "--max-lines", "400",
                   "--max-words", "50", *d, "--out", str(out / "align")]),
        ("langvec", ["langvec", "--model", str(tiny), *corp, "--dict", "muse-en-zh", "--sentences",
                     "en=tatoeba-cmn-eng#0@20", "--alphas", "0,1", "--mean-sentences", "50", "--max-lines", "400",
                     *d, "--out", str(out / "langvec")]),
        ("qa-train", ["qa", "train", "--model", str(tiny_enc), "--train", "squad-dev", "--max-train", "24",
                      "--dev", "xquad-en", "--max-dev", "8", "--max-steps", "3", "--batch-size", "4",
                      "--max-length", "64", "--doc-stride", "16", "--checkpoint-every", "2", *d,
                      "--out", str(out / "qa-train")]),
        ("qa-eval", ["qa", "eval", "--model", str(qa_model), "--data", "xquad-zh", "--limit", "10",
                     "--max-length", "64", "--doc-stride", "16", *d, "--out", str(out / "qa-eval")]),
        ("qa-predict-wp", ["qa", "predict", "--model", str(qa_model), "--data", "xquad-en", "--limit", "10",
                           "--max-length", "64", "--doc-stride", "16", "--span-score", "window-prob",
                           "--precision", "bf16-verified", *d, "--out", str(out / "qa-predict-wp")]),
        ("qa-crosslingual", ["qa", "crosslingual", "--model", str(tiny_enc), "--train", "en=squad-dev",
                             "--max-train", "16", "--eval", "xquad-zh=xquad-zh", "--eval", "drcd=drcd-dev",
                             "--limit", "6", "--max-steps", "2", "--batch-size", "4", "--max-length", "64",
                             "--doc-stride", "16", "--convert", "t2s", *d, "--out", str(out / "qa-crosslingual")]),
        ("align-scale", ["align-scale", *corp, "--dict", "muse-en-zh", "--sentences", "40,120", "--max-steps", "4",
                         "--eval-every", "2", "--batch-size", "2", "--max-length", "16", "--vocab-size", "300", *d,
                         "--out", str(out / "align-scale")]),
        ("report", ["report", "--model", str(tiny), "--only", "senses", "--only", "cbow", "--only", "pretrain",
                    "--only", "align", *d, "--out", str(out / "report")]),
        ("err-precision", ["senses", "--model", str(tiny), "--sentences", "apple-en", "--precision", "fp8",
                           "--out", str(out / "err")]),
        ("err-size", ["pretrain", *corp, "--size", "huge", *d, "--out", str(out / "err2")]),
    ]


def record(out: Path, only: list[str] | None = None) -> None:
    import contextlib
    import io

    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_tiny_bert  # noqa: E402  (the tests' own tiny models)

    from bertology.cli import main
    try:
        from bertology.core.models import load_model, load_tokenizer
    except ImportError:   # the layout before issue 13, for recording the baseline
        from bertology.models import load_model, load_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    tiny = make_tiny_bert(out / "_models/tiny-mlm")
    tiny_enc = make_tiny_bert(out / "_models/tiny-enc", mlm=False)
    qa_model = out / "_models/tiny-qa"
    torch.manual_seed(0)
    load_model(str(tiny_enc), head="qa").save_pretrained(qa_model)
    load_tokenizer(str(tiny_enc)).save_pretrained(qa_model)
    codes_file = out / "exit_codes.json"
    codes = json.loads(codes_file.read_text(encoding="utf-8")) if only and codes_file.exists() else {}
    for name, argv in commands(out, tiny, tiny_enc, qa_model):
        if only and name not in only:
            continue
        torch.manual_seed(0)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = main(argv)
        codes[name] = {"rc": rc, "stderr_last": (err.getvalue().strip().splitlines() or [""])[-1] if rc else ""}
        print(f"{name}: rc {rc}", flush=True)
    codes_file.write_text(json.dumps(codes, indent=1, ensure_ascii=False), encoding="utf-8")


def _strip(obj):
    """The object with timing values replaced and machine-specific paths made relative."""
    if isinstance(obj, dict):
        return {k: ("<timing>" if TIMING_KEYS.search(k) else _strip(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _load(path: Path, root: Path):
    text = path.read_text(encoding="utf-8").replace(str(root), "<ROOT>")
    if path.suffix == ".jsonl":
        return [_strip(json.loads(line)) for line in text.splitlines()]
    return _strip(json.loads(text))


def _shape(obj):
    """The keys of an object, recursively (values dropped)."""
    if isinstance(obj, dict):
        return {k: _shape(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_shape(v) for v in obj[:1]]
    return type(obj).__name__


def _report_sections(page: Path) -> list[str]:
    """What the report renders, minus the embedded images and timings: titles, texts, tables."""
    html = page.read_text(encoding="utf-8")
    html = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,<png>", html)
    html = re.sub(r"<p class='time'>[^<]*</p>", "", html)
    html = re.sub(r"\b\d+(\.\d+)? s\b", "<n> s", html)      # "(… tokens, 8 s)" in a section's text
    return re.findall(r"<section>.*?</section>", html, flags=re.S)


def compare(a: Path, b: Path) -> int:
    diffs, same = [], 0
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.name in COMPARED_FILES and "_models" not in p.parts}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.name in COMPARED_FILES and "_models" not in p.parts}
    for rel in sorted(files_a ^ files_b):
        diffs.append(f"only in one run: {rel}")
    shaped = 0
    for rel in sorted(files_a & files_b):
        doc_a, doc_b = _load(a / rel, a), _load(b / rel, b)
        if str(rel).startswith(NONDETERMINISTIC):
            doc_a, doc_b = _shape(doc_a), _shape(doc_b)
            shaped += 1
        if doc_a == doc_b:
            same += 1
        else:
            diffs.append(f"differs: {rel}")
    codes_a, codes_b = (json.loads((x / "exit_codes.json").read_text()) for x in (a, b))
    if codes_a != codes_b:
        diffs.append(f"exit codes / messages differ: {codes_a} vs {codes_b}")
    pa, pb = a / "report/index.html", b / "report/index.html"
    if pa.exists() and pb.exists():
        sa, sb = _report_sections(pa), _report_sections(pb)
        if sa != sb:
            diffs.append(f"report sections differ ({len(sa)} vs {len(sb)} sections)")
        else:
            same += 1
    print(f"{same} files the same ({shaped} of them by structure only: {', '.join(NONDETERMINISTIC)}); "
          f"{len(diffs)} differences")
    for d in diffs:
        print("  " + d)
    return 1 if diffs else 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "record":
        record(Path(sys.argv[2]).resolve(), sys.argv[3:] or None)
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]).resolve(), Path(sys.argv[3]).resolve()))
    else:
        sys.exit(__doc__)
