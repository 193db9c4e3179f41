#!/usr/bin/env bash
# Capture memory: peak RSS of `tell capture` (release) on 200 and on 2,000 prompts, same settings
# (SmolLM2-135M GGUF, short prompts, batch 8, every layer's resid_post; positions as given).
# Usage: scripts/bench-capture-memory.sh [positions=last] [small=200] [large=2000]
set -euo pipefail
cd "$(dirname "$0")/.."
positions=${1:-last}; small=${2:-200}; large=${3:-2000}
gguf=checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tell-target}"
cargo build --release -q -p tell
bin="$CARGO_TARGET_DIR/release/tell"
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
out=bench-out/capture-mem-$(date +%Y%m%dT%H%M%S)
mkdir -p "$out"
python3 scripts/bench_capture.py prompts "$out/all.jsonl" "$large" --min 8 --max 24
head -n "$small" "$out/all.jsonl" > "$out/small.jsonl"
rss() { # prompts-file -> peak RSS in KiB
  /usr/bin/time -v "$bin" capture "$gguf" --prompts "$1" --out "$out/acts-$2" --sites resid_post \
    --layers all --positions "$positions" --batch-size 8 2> "$out/time-$2.log" >/dev/null
  grep "Maximum resident set size" "$out/time-$2.log" | awk '{print $NF}'
}
a=$(rss "$out/small.jsonl" "$small"); b=$(rss "$out/all.jsonl" "$large")
grep -h "tokens/s" "$out"/time-*.log
python3 -c "a,b=$a,$b; print(f'| {\"$positions\"} | {a/1024:.1f} MiB ({$small}) | {b/1024:.1f} MiB ({$large}) | {b/a:.3f} |')"
