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
. scripts/lib/calm.sh
# One tell capture as a JSON line (its capture loop's tokens/s, as transformers' side reports).
tell_side() {
  rm -rf "$out/acts"
  "$bin" capture "$gguf" --prompts "$out/prompts.jsonl" --out "$out/acts" --sites resid_post \
    --layers all --positions last --batch-size 8 >/dev/null 2>"$out/tell.log"
  python3 -c 'import json, re, sys; print(json.dumps({"side": "tell", "tokens_per_s": float(re.search(r"([0-9.]+) tokens/s", open(sys.argv[1]).read()).group(1))}))' "$out/tell.log"
}
# Sides alternate round by round so that a change in machine load hits them alike; each waits for
# a load average under 0.5 and records it (scripts/lib/calm.sh).
for round in $(seq "$rounds"); do
  with_load tell_side | tee -a "$out/rows.jsonl"
  with_load python3 scripts/bench_capture.py hf "$gguf" "$out/prompts.jsonl" --batch 8 \
    --threads "$threads" 2>/dev/null | tee -a "$out/rows.jsonl"
done
python3 - "$out" "$rounds" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open(f"{out}/rows.jsonl")]
tell = max((r for r in rows if r["side"] == "tell"), key=lambda r: r["tokens_per_s"])
hf = max((r for r in rows if r["side"] != "tell"), key=lambda r: r["tokens_per_s"])
mark = "" if all(r["comparable"] for r in rows) else " (not comparable: load)"
print(f"\n| tell capture tok/s | transformers tok/s | ratio tell/HF | load before (tell / transformers) |\n|---|---|---|---|\n"
      f"| {tell['tokens_per_s']:.0f} | {hf['tokens_per_s']:.0f} | {tell['tokens_per_s'] / hf['tokens_per_s']:.2f}{mark} | "
      f"{tell['load_before']} / {hf['load_before']} |  ({out}, best of {rounds})")
PY
