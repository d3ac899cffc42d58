"""Which fine-tuning recipe converges on a cross-domain task? Runs `bertology crossdomain` (the library call) once
per recipe and prints each run's dev curve, test accuracy and wall time, so recipes are compared on quality reached
per CPU-minute.

    python bench/crossdomain_recipe.py --out /tmp/cd-recipe --conditions pretrained,scratch \
        --recipe lr=5e-5,warmup=0.1,epochs=5 --recipe lr=1e-4,warmup=0,epochs=5

Each --recipe is a comma list of CrossDomainConfig fields (lr, warmup, epochs, patience, batch_size, max_length),
plus `mapping=kaolee`: Kao & Lee's symbol mapping, each symbol to a token drawn at random from the vocabulary ids
>= 1000 (any token: `##` pieces and single characters included), instead of bertology's whole-word tokens.
It is written to OUT/mapping-kaolee.json (seeded by --seed 0 as the default mapping) and passed as `--mapping`.

    python bench/crossdomain_recipe.py --out /tmp/cd-map --conditions pretrained --run-seed 0 \
        --recipe lr=2e-4,warmup=0.06,epochs=5,mapping=kaolee
Finished recipes are read back from their results.json, so an interrupted study resumes.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

FIELDS = {"lr": float, "warmup": float, "epochs": int, "patience": int, "batch_size": int, "max_length": int,
          "seeds": int, "mapping": str}
KAOLEE_FIRST_ID = 1000      # Kao & Lee remap symbols to random vocabulary ids >= 1000


def parse_recipe(text: str) -> dict:
    out = {}
    for part in text.split(","):
        key, value = part.split("=")
        out[key] = FIELDS[key](value)
    return out


def kaolee_mapping(task: str, model: str, out: Path, seed: int = 0) -> str:
    """Write Kao & Lee's mapping for `task` (every symbol -> a random token with id >= 1000) and return its path."""
    import numpy as np

    from bertology.core.models import load_tokenizer
    from bertology.experiments.crossdomain import load_task

    data = load_task(task)
    symbols = sorted({s for seq in data.sequences for s in seq})
    tokenizer = load_tokenizer(model)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    special = set(tokenizer.all_special_tokens)
    pool = [t for t, i in vocab if i >= KAOLEE_FIRST_ID and t not in special]
    pick = np.random.default_rng(seed).choice(len(pool), size=len(symbols), replace=False)
    path = out / "mapping-kaolee.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({s: pool[j] for s, j in zip(symbols, pick)}, ensure_ascii=False, indent=1))
    return str(path)


def resolve_recipe(recipe: dict, args) -> dict:
    if recipe.get("mapping") == "kaolee":
        recipe["mapping"] = kaolee_mapping(args.task, args.model, Path(args.out))
    return recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--task", default="splice")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--conditions", default="pretrained,scratch")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--recipe", action="append", required=True)
    ap.add_argument("--run-seed", type=int, default=None,
                    help="run only this seed (of the first condition), with the split and mapping of seed 0, "
                         "as the K-th run of a `--seeds` experiment would")
    args = ap.parse_args()

    from bertology.experiments.crossdomain import CrossDomainConfig, result_from_json, run_crossdomain, save

    torch.set_num_threads(args.threads)
    if args.run_seed is not None:
        return one_run(args)
    print(f"load {os.getloadavg()[0]:.2f}  threads {args.threads}  task {args.task}  model {args.model}")
    for text in args.recipe:
        recipe = resolve_recipe(parse_recipe(text), args)
        out = Path(args.out) / text.replace(",", "_").replace("=", "")
        done = out / "results.json"
        t0 = time.perf_counter()
        if done.exists():
            result = result_from_json(json.loads(done.read_text()))
        else:
            cfg = CrossDomainConfig(model=args.model, task=args.task, precision=args.precision, limit=args.limit,
                                    conditions=tuple(args.conditions.split(",")), progress=False, resume=True,
                                    **{"seeds": 1, **recipe})
            result = save(run_crossdomain(cfg, out), out)
        for run in result.runs:
            print_run(text, run, run.wall_time)
        print(f"{text}: {time.perf_counter() - t0:.0f} s (load {os.getloadavg()[0]:.2f})", flush=True)


def print_run(recipe_text: str, run, seconds: float) -> None:
    """One line per run: its recipe, test accuracy, best epoch, seconds and dev curve."""
    curve = " ".join(f"{h['accuracy']:.3f}" for h in run.dev_curve)
    print(f"{recipe_text:40s} {run.condition:10s} seed {run.seed}  test {run.test_accuracy:.3f}  "
          f"best epoch {run.best_epoch}  {seconds:6.0f} s  dev [{curve}]", flush=True)


def one_run(args) -> None:
    from bertology.experiments.crossdomain import CrossDomainConfig, _finetune, _prepare

    for text in args.recipe:
        cfg = CrossDomainConfig(model=args.model, task=args.task, precision=args.precision, limit=args.limit,
                                progress=False, **resolve_recipe(parse_recipe(text), args))
        prep = _prepare(cfg)
        t0 = time.perf_counter()
        run = _finetune(args.conditions.split(",")[0], args.run_seed, cfg, prep.enc, len(prep.label_names),
                        prep.pad_id, None)
        print_run(text, run, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
