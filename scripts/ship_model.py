"""Copy a model exported by `bertology pretrain` into the package as a shipped alias (bf16 safetensors).

    python scripts/ship_model.py RUN/model src/bertology/weights/zh-en-mini --max-length 128

- weights cast to bf16 (half the size; `bertology.core.models.load_model` loads them back as fp32 parameters);
- the tokenizer's model_max_length set to the longest sequence the model was trained on, so that longer inputs
  are truncated instead of reaching position embeddings that training never updated;
- the model card (README.md in the destination) is written by hand and kept: this script never touches it.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("dest")
    ap.add_argument("--max-length", type=int, required=True, help="longest sequence length used in training")
    args = ap.parse_args()
    dest = Path(args.dest)
    with tempfile.TemporaryDirectory(dir=dest.parent if dest.parent.exists() else None) as tmp:
        model = AutoModelForMaskedLM.from_pretrained(args.source, dtype=torch.float32)
        model.to(torch.bfloat16).save_pretrained(tmp)
        tok = AutoTokenizer.from_pretrained(args.source)
        tok.model_max_length = args.max_length
        tok.save_pretrained(tmp)
        dest.mkdir(parents=True, exist_ok=True)
        for f in Path(tmp).iterdir():
            shutil.copy2(f, dest / f.name)
    size = sum(f.stat().st_size for f in dest.iterdir()) / 1e6
    print(f"{dest}: {size:.1f} MB")


if __name__ == "__main__":
    main()
