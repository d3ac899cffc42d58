"""Peak memory of `bertology senses` against the number of sentences (issue 27.7).

2,000 sentences were killed at 23 GB: the heatmap grew 0.28 inch per occurrence and the n x n similarity matrix
went into results.json as JSON. Now the matrix is saved up to 500 occurrences and the heatmap draws at most 200
(experiments/senses.py MAX_SAVED_MATRIX, MAX_HEATMAP). This runs the command in a fresh process per size, as a
user runs it, on labelled sentences built from the built-in apple-en set (each sentence numbered, so every one
is distinct), and prints per size: peak RSS (the process's ru_maxrss), wall time, results.json and PNG size.

    python bench/senses_memory.py                       # 100, 1000 and 10000 sentences on minilm
    python bench/senses_memory.py --sizes 100,1000 --model minilm --threads 1

Not a comparison with a baseline, so bench/README.md's ABBA protocol does not apply; the machine's load is
printed before and after (a loaded machine changes the times, not the memory).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Runs the command in this child and prints its own peak RSS (ru_maxrss is KiB on Linux) as the last line.
CHILD = """
import json, resource, sys
from bertology.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_sentences(path: Path, n: int) -> None:
    """n labelled sentences: apple-en's, cycled, each with a number so that no two are the same."""
    from bertology.io.sentences import read_sentences

    sents, labels, _ = read_sentences("apple-en")
    rows = [f"{labels[i % len(sents)]}\t{sents[i % len(sents)]} ({i})" for i in range(n)]
    path.write_text("label\tsentence\n" + "\n".join(rows) + "\n", encoding="utf-8")


def run_size(n: int, model: str, threads: int, work: Path) -> dict:
    src = work / f"s{n}.tsv"
    write_sentences(src, n)
    out = work / f"out{n}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    args = ["senses", "-s", str(src), "-t", "apple", "-m", model, "-o", str(out), "--batch-size", "32"]
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    last = (run.stdout.strip().splitlines() or ["{}"])[-1]
    try:
        child = json.loads(last)
    except ValueError:
        child = {}
    if run.returncode != 0 or child.get("code") != 0:
        return {"sentences": n, "error": (run.stderr.strip().splitlines() or ["?"])[-1][:300]}
    from PIL import Image

    png = Image.open(out / "similarity.png").size
    return {"sentences": n, "peak_rss_mb": round(child["peak_rss_mb"]), "seconds": round(seconds, 1),
            "results_json_kb": round((out / "results.json").stat().st_size / 1024),
            "heatmap_px": f"{png[0]} x {png[1]}"}


def main() -> int:
    from common import machine_load

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000", help="Comma list of sentence counts.")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="Also write the rows as JSON here.")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)       # as the children run (OMP_NUM_THREADS), so the load line says it
    print(machine_load(), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(x) for x in args.sizes.split(",")]:
            row = run_size(n, args.model, args.threads, Path(tmp))
            rows.append(row)
            print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print(machine_load(), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "threads": args.threads, "rows": rows}, indent=2))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
