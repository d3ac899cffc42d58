"""Why bf16-verified QA prediction stops short of 3x the pipeline with identical answers (docs/qa.md): two
measurements behind that conclusion, each reproducible.

    .venv/bin/python bench/qa_precision_probe.py --model runs/qa/minilm-squad5k/model --threads 1

1. Near-fp32 accuracy from bf16 hardware. The fp32 re-runs of near-tie questions cost as much as the bf16 pass
   of all 500 questions; emulating fp32 with bf16 matmuls (x = xh + xl, w = wh + wl, 3 products) would make
   them cheaper, but PyTorch has no CPU bf16 matmul with an fp32 output (aten::mm.dtype has no CPU kernel), so
   every product is rounded to bf16 on the way out. The emulation here recovers that rounding with a second
   pass (oneDNN's fused add computes [xh xl xh].[wh wh wl] - y1 in the fp32 accumulator) and is timed against
   plain fp32 and bf16 linears at minilm's shapes (16 windows x 200 tokens). Also int8 (torch._int_mm, exact
   int32 sums: the Ozaki splitting), one slice product against one bf16 product.
2. Could the margin be smaller for the pairs that matter? bf16's error on the best-vs-other score difference,
   binned by the bf16 lead, on --questions SQuAD dev questions outside the benchmark's sample: if the error
   shrank for near-ties, fewer questions would need an fp32 re-run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def per_call_ms(f, reps: int = 10) -> float:
    f()
    f()
    t = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t) / reps * 1000


def emulation(rows: int = 3200) -> None:
    lin = torch.ops.mkldnn._linear_pointwise
    print(f"1. linears at minilm's shapes, {rows} rows: ms per call (max error relative to the largest output)")
    for k, n in [(384, 1152), (384, 1536), (1536, 384)]:
        x, w, b = torch.randn(rows, k), torch.randn(n, k) * 0.05, torch.randn(n) * 0.1
        wh = w.bfloat16()
        wl = (w - wh.float()).bfloat16()
        w1 = torch.ops.mkldnn._reorder_linear_weight(wh, rows)
        w3 = torch.ops.mkldnn._reorder_linear_weight(torch.cat([wh, wh, wl], 1).contiguous(), rows)

        def emulated():
            xh = x.bfloat16()
            xl = (x - xh.float()).bfloat16()
            y1 = lin(xh, w1, None, "none", [], "none")
            r = lin.binary(torch.cat([xh, xl, xh], 1), -y1, w3, None, "add")   # fp32 accumulator - y1, then rounded
            return y1.float().add_(r.float()).add_(b)

        with torch.inference_mode():
            ref = x.double() @ w.double().T + b.double()
            err = lambda y: ((y.double() - ref).abs().max() / ref.abs().max()).item()   # noqa: E731
            xb = x.bfloat16()
            print(f"   {k:4d} -> {n:4d}: fp32 {per_call_ms(lambda: F.linear(x, w, b)):6.2f} ms ({err(F.linear(x, w, b)):.1e})"
                  f" | emulated fp32 {per_call_ms(emulated):6.2f} ms ({err(emulated()):.1e})"
                  f" | bf16 {per_call_ms(lambda: lin(xb, w1, None, 'none', [], 'none')):6.2f} ms "
                  f"({err(lin(xb, w1, None, 'none', [], 'none').float() + b):.1e})")
    a = torch.randint(-127, 127, (rows, 384), dtype=torch.int8)
    bt = torch.randint(-127, 127, (1536, 384), dtype=torch.int8).T
    xb, wb = torch.randn(rows, 384).bfloat16(), torch.randn(1536, 384).bfloat16()
    print(f"   int8 x int8 -> int32 (torch._int_mm) 384 -> 1536: {per_call_ms(lambda: torch._int_mm(a, bt)):.2f} ms, "
          f"bf16 {per_call_ms(lambda: F.linear(xb, wb)):.2f} ms")


def error_by_lead(model_dir: str, n: int, seed: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from qa_predict import bf16_and_fp32, load_questions   # this directory's QA benchmark

    from bertology.experiments import qa
    from bertology.core.models import load_model, load_tokenizer

    bench = {e.id for e in load_questions(500, 0).examples}   # bench/qa_predict.py's default sample
    pool = [e for e in qa.load_data("squad-dev").examples if e.id not in bench]
    exs = random.Random(seed).sample(pool, n)
    tok, model = load_tokenizer(model_dir), load_model(model_dir, head="qa").eval()
    _, _, cands = bf16_and_fp32(qa, model, tok, exs)
    rows = []
    for e, c16, c32 in zip(exs, cands["bf16"], cands["fp32"]):
        (a, b), top = max(c16.items(), key=lambda kv: kv[1])
        for (i, j), v in c16.items():
            if e.context[i:j] != e.context[a:b] and (i, j) in c32 and (a, b) in c32:
                rows.append((top - v, abs((top - v) - (c32[(a, b)] - c32[(i, j)])), i < b and a < j))
    r = np.array(rows)
    print(f"2. |error| bf16 adds to best-vs-other score differences, by bf16 lead ({n} questions, seed {seed})")
    for lo, hi in [(0, .05), (.05, .1), (.1, .2), (.2, .3), (.3, .6), (.6, 1.5), (1.5, np.inf)]:
        for overlapping in (True, False):
            m = (r[:, 0] >= lo) & (r[:, 0] < hi) & (r[:, 2] == overlapping)
            if m.any():
                print(f"   lead [{lo}, {hi}) {'overlapping' if overlapping else 'disjoint   '} pairs {m.sum():5d}: "
                      f"p99 {np.percentile(r[m, 1], 99):.4f} max {r[m, 1].max():.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "runs/qa/minilm-squad5k/model"), help="a QA model directory")
    ap.add_argument("--questions", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    emulation()
    error_by_lead(args.model, args.questions, args.seed)


if __name__ == "__main__":
    main()
