"""Write the English and Chinese pretraining corpora of the shipped `zh-en-mini` model (docs/pretrain.md).

Why a mix and not `corpus-zh@N`: the corpus directory is read in file-name order, so a line cap keeps mostly the
CCTV news transcripts (one formal genre). Here every Chinese source is kept whole except CCTV, which is capped;
English takes a seeded sample of the IMDB reviews plus all of Reuters and BBC. A seeded share of the Chinese lines
is converted to Traditional characters (OpenCC s2tw), so that the vocabulary and the model serve both scripts
(the lecture writes 蘋果, most of our corpora are Simplified).

    python scripts/prepare_bilingual_corpus.py --data-dir ../shared/data --out DIR
writes DIR/en.txt.gz and DIR/zh.txt.gz (one line each, deterministic for a given --seed).
"""
from __future__ import annotations

import argparse
import gzip
import random
from pathlib import Path


def read(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip()]


def read_language(folder: Path, capped: str, cap: int, rng: random.Random) -> list[str]:
    """Every file's lines in name order; the file whose name starts with `capped` is sampled down to `cap`."""
    out: list[str] = []
    for f in sorted(folder.glob("*.txt.gz")):
        lines = read(f)
        if f.name.startswith(capped) and len(lines) > cap:
            lines = rng.sample(lines, cap)
        out += lines
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cctv-lines", type=int, default=50_000)
    ap.add_argument("--imdb-lines", type=int, default=200_000)
    ap.add_argument("--traditional-share", type=float, default=1 / 3)
    args = ap.parse_args()
    import opencc

    rng = random.Random(args.seed)
    corpora = Path(args.data_dir) / "corpora"
    # the order of the draws from `rng` (zh sample, conversion, en sample, shuffles) fixes the corpus for a seed
    zh = read_language(corpora / "zh", "cctv", args.cctv_lines, rng)
    cc = opencc.OpenCC("s2tw")
    zh = [cc.convert(l) if rng.random() < args.traditional_share else l for l in zh]
    en = read_language(corpora / "en", "imdb", args.imdb_lines, rng)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for lang, lines in (("en", en), ("zh", zh)):
        rng.shuffle(lines)   # the held-out slice is the tail: make it a sample of every source
        with gzip.open(out / f"{lang}.txt.gz", "wt", encoding="utf-8") as f:
            f.writelines(l + "\n" for l in lines)
        print(f"{lang}: {len(lines):,} lines, {sum(map(len, lines)):,} characters -> {out / (lang + '.txt.gz')}")


if __name__ == "__main__":
    main()
