#!/usr/bin/env bash
# `make bench`: every benchmark against its peer, side by side in one run, each printing a table with the
# ratio and writing its figures to bench-out/NAME.json. Ratios, not times: this machine is shared and noisy.
# Run one alone: python benchmarks/bench_NAME.py --help
set -euo pipefail
OUT=${BENCH_OUT:-bench-out}
mkdir -p "$OUT"
run() {
  local name=$1; shift
  printf '\n\033[1;36m==> bench_%s\033[0m\n' "$name"
  python "benchmarks/bench_$name.py" "$@" --out "$OUT/$name.json"
}
run ingest      # oid convert vs json + pandas: records/s and peak RSS on the real ShareGPT file
run curate      # local engine vs Ray with 2 workers on the real ShareGPT shards: same results, wall time
run dedup       # our MinHash LSH vs datasketch: records/s, agreement, 2 workers
run novelty     # Self-Instruct novelty filter vs rouge-score pairwise: identical decisions, speed-up
run pii         # PII redaction: recall and precision per type and language on a planted set, real counts
run report      # the whole report on the real data against its 60 s budget
run review      # review app latency over loopback against its 300 ms budget
run model       # our readable Llama vs transformers: forward and KV-cache decode tokens/s, share of the memory bound; int8
run choice      # CMMLU multiple choice 5-shot: one pass + shared-prefix cache vs scoring each option
run serve       # our server vs transformers generate: time to first token, decode tokens/s, 1 and 4 clients
# our trainer vs TRL SFTTrainer padded, packed (bfd) and padding-free on SmolLM2-135M (full, fp32, seq 512, batch 4):
# trained tokens/s, loss of the last steps, peak RSS, FLOP/s against the matmul peak measured in the same run
run train --model smollm2-135m-instruct --steps 6 --threads 2
printf '\nfigures in %s/\n' "$OUT"
