#!/usr/bin/env bash
# Capture speed: `tell capture` (release) against HF transformers on the same prompts, same run,
# same threads. SmolLM2-135M GGUF, batch 8, every layer's resid_post at the last token.
# Usage: scripts/bench-capture.sh [prompts=256] [threads=2] [rounds=2]
# Needs checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-assets.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-256}; threads=${2:-2}; rounds=${3:-2}
gguf=checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tell-target}"
cargo build --release -q -p tell
bin="$CARGO_TARGET_DIR/release/tell"
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
out=bench-out/capture-$(date +%Y%m%dT%H%M%S)
mkdir -p "$out"
python3 scripts/bench_capture.py prompts "$out/prompts.jsonl" "$n" --min 16 --max 64
# Sides alternate round by round so that a change in machine load hits them alike.
for round in $(seq "$rounds"); do
  rm -rf "$out/acts"
  "$bin" capture "$gguf" --prompts "$out/prompts.jsonl" --out "$out/acts" --sites resid_post \
    --layers all --positions last --batch-size 8 2>&1 | tee "$out/tell-$round.log"
  python3 scripts/bench_capture.py hf "$gguf" "$out/prompts.jsonl" --batch 8 \
    --threads "$threads" 2>/dev/null | tee "$out/hf-$round.jsonl"
done
python3 - "$out" "$rounds" <<'PY'
import json, re, sys
out, rounds = sys.argv[1], int(sys.argv[2])
tell = max(float(re.search(r"([0-9.]+) tokens/s", open(f"{out}/tell-{r}.log").read()).group(1))
           for r in range(1, rounds + 1))
hf = max(json.loads(open(f"{out}/hf-{r}.jsonl").read())["tokens_per_s"] for r in range(1, rounds + 1))
print(f"\n| tell capture tok/s | transformers tok/s | ratio tell/HF |\n|---|---|---|\n"
      f"| {tell:.0f} | {hf:.0f} | {tell / hf:.2f} |  ({out}, best of {rounds})")
PY
