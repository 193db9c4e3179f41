#!/usr/bin/env bash
# Prefill with all residual captures: tell (ndarray and flex backends) beside HF transformers,
# same machine, same run, same threads. Usage: scripts/bench-prefill.sh [batch] [seq] [threads]
# Writes the SmolLM2-135M-shaped random checkpoint to bench-out/ on first use (about 540 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${1:-8}; seq=${2:-128}; threads=${3:-2}; rounds=${ROUNDS:-3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tell-target}"
dir=bench-out/smollm2-random
mkdir -p bench-out
python3 scripts/bench_prefill.py make "$dir"
cargo build --release -q -p tell-llama --example prefill_bench
bin="$CARGO_TARGET_DIR/release/examples/prefill_bench"
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
out=bench-out/prefill-$(date +%Y%m%dT%H%M%S).jsonl
# Sides alternate round by round so that a change in machine load hits them alike.
for round in $(seq "$rounds"); do
  for logits in none logits; do
    "$bin" "$dir" ndarray "$batch" "$seq" 2 "$logits" | tee -a "$out"
    "$bin" "$dir" flex "$batch" "$seq" 2 "$logits" | tee -a "$out"
    flag=""; [ "$logits" = logits ] && flag=--logits
    python3 scripts/bench_prefill.py hf "$dir" --batch "$batch" --seq "$seq" --threads "$threads" --reps 2 $flag 2>/dev/null | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
best = collections.defaultdict(float)
for r in rows:
    key = (r["side"], r["logits"])
    best[key] = max(best[key], r["tokens_per_s"])
print(f"\n| work ({sys.argv[1]}) | tell (flex) tok/s | tell-ndarray tok/s | transformers tok/s | ratio tell/HF |")
print("|---|---|---|---|---|")
for logits in (False, True):
    n, f, h = best[("tell-ndarray", logits)], best[("tell-flex", logits)], best[("transformers", logits)]
    what = "all residuals + logits" if logits else "all residuals, no LM head"
    print(f"| {what} | {f:.0f} | {n:.0f} | {h:.0f} | {f / h:.2f} |")
PY
