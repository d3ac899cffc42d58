"""Record a finished full-scale `bertology crossdomain` run for the report, which shows it beside its own quick
run (report/sections/crossdomain.py, RECORDED). Only the summary travels, with the command that produced it.

    python scripts/record_crossdomain.py runs/splice/results.json --minutes 52 \
        --command "bertology crossdomain --task splice --precision bf16 --seeds 3 --out runs/splice" \
        --machine "2-core AMD EPYC CPU, bf16, 2 threads"
"""
from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "src" / "bertology" / "report" / "recorded" / "crossdomain-splice.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--command", required=True)
    ap.add_argument("--minutes", type=float, required=True, help="wall time of the whole experiment")
    ap.add_argument("--machine", required=True)
    ap.add_argument("--out", default=str(TARGET))
    args = ap.parse_args()
    doc = json.loads(Path(args.results).read_text(encoding="utf-8"))
    record = {"model": doc["model"], "task": doc["task"], "command": args.command, "machine": args.machine,
              "date": datetime.date.today().isoformat(), "wall_minutes": args.minutes,
              "split_sizes": doc["split_sizes"], "majority_accuracy": doc["majority_accuracy"],
              "settings": doc["settings"], "summary": doc["summary"],
              # what the verdict's paired tests need: each run's test predictions, and the truth they score against
              "split_report": doc.get("split_report", {}), "lr_search": doc.get("lr_search", {}),
              "test_labels": doc["test_labels"],
              "runs": [{k: r.get(k) for k in ("condition", "seed", "lr", "test_accuracy", "dev_accuracy", "best_epoch",
                                              "test_predictions")} for r in doc["runs"]]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
