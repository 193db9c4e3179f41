#!/usr/bin/env bash
# Prefill with all residual captures: tell (ndarray and flex backends) beside HF transformers,
# same machine, same run, same threads. Usage: scripts/bench-prefill.sh [batch] [seq] [threads]
# Writes the SmolLM2-135M-shaped random checkpoint to bench-out/ on first use (about 540 MB).
# Each side waits for a load average under 0.5 and records it (scripts/lib/calm.sh); the table
# says which rows had a side start above it.
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
. scripts/lib/calm.sh
out=bench-out/prefill-$(date +%Y%m%dT%H%M%S).jsonl
# Sides alternate round by round so that a change in machine load hits them alike.
for round in $(seq "$rounds"); do
  for logits in none logits; do
    with_load "$bin" "$dir" ndarray "$batch" "$seq" 2 "$logits" | tee -a "$out"
    with_load "$bin" "$dir" flex "$batch" "$seq" 2 "$logits" | tee -a "$out"
    flag=""; [ "$logits" = logits ] && flag=--logits
    with_load python3 scripts/bench_prefill.py hf "$dir" --batch "$batch" --seq "$seq" --threads "$threads" --reps 2 $flag 2>/dev/null | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
best = {}
calm = collections.defaultdict(lambda: True)
for r in rows:
    key = (r["side"], r["logits"])
    if key not in best or r["tokens_per_s"] > best[key]["tokens_per_s"]:
        best[key] = r
    calm[r["logits"]] &= r.get("comparable", False)
print(f"\n| work ({sys.argv[1]}) | tell (flex) tok/s | tell-ndarray tok/s | transformers tok/s | ratio tell/HF | load before (flex / transformers) |")
print("|---|---|---|---|---|---|")
for logits in (False, True):
    n, f, h = (best[(side, logits)] for side in ("tell-ndarray", "tell-flex", "transformers"))
    what = "all residuals + logits" if logits else "all residuals, no LM head"
    mark = "" if calm[logits] else " (not comparable: load)"
    print(f"| {what} | {f['tokens_per_s']:.0f} | {n['tokens_per_s']:.0f} | {h['tokens_per_s']:.0f} | "
          f"{f['tokens_per_s'] / h['tokens_per_s']:.2f}{mark} | {f.get('load_before')} / {h.get('load_before')} |")
PY
