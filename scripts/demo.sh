#!/usr/bin/env bash
# The whole loop on real data (extended issue by issue).
set -euo pipefail
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
