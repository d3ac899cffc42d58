"""What a full-scale cross-domain experiment costs, before running it: tokens per epoch of each task, counted by
the experiment's own encoding (split, mapping, windows), and the wall time that implies at a measured rate.

    python bench/crossdomain_tokens.py --seconds-per-splice-run 490

--seconds-per-splice-run: the measured wall time of one fine-tuning run on splice at the same epochs (8-epoch
default: ~490 s on the 2-core development CPU in bf16, docs/crossdomain.md). Runs on other tasks are scaled by
training tokens alone, which understates the attention cost of longer windows: the estimate is a lower bound.
"""
from __future__ import annotations

import argparse

SETTINGS = (("splice", 512, 4), ("composer", 128, 1), ("composer", 512, 4), ("multiloc", 128, 1),
            ("multiloc", 512, 4))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds-per-splice-run", type=float, default=490.0)
    ap.add_argument("--runs", type=int, default=12, help="fine-tuning runs of a full experiment (4 conditions x 3 seeds)")
    args = ap.parse_args()

    from bertology.experiments.crossdomain import CrossDomainConfig, _prepare

    splice_tokens = None
    print("| task | max_length | max_windows | train windows | train tokens/epoch | dev+test tokens | x splice | "
          "one run (est.) | full experiment (est.) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task, max_length, max_windows in SETTINGS:
        prep = _prepare(CrossDomainConfig(task=task, max_length=max_length, max_windows=max_windows,
                                          conditions=("pretrained",), progress=False))
        train = prep.enc["train"].examples
        evaluated = prep.enc["dev"].examples + prep.enc["test"].examples
        tokens = sum(len(e["input_ids"]) for e in train)
        splice_tokens = splice_tokens or tokens
        ratio = tokens / splice_tokens
        run_s = ratio * args.seconds_per_splice_run
        print(f"| {task} | {max_length} | {max_windows} | {len(train):,} | {tokens:,} | "
              f"{sum(len(e['input_ids']) for e in evaluated):,} | {ratio:.1f} | {run_s / 60:.0f} min | "
              f"{args.runs * run_s / 3600:.1f} h |", flush=True)


if __name__ == "__main__":
    main()
