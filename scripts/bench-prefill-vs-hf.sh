#!/usr/bin/env bash
# Issue 18's protocol: `tell capture` as a whole process (model loading included) against
# transformers' forward alone (with every hidden state), 32 prompts of L tokens, every layer's
# last-token resid_post, batch 8, 2 threads on both sides, for SmolLM2's Q4_1 GGUF and the same
# model as f32 safetensors (scripts/bench_bf16.py), at L = 128 and 512. The sides alternate round
# by round; before each side the script waits (up to WAIT seconds, default 150) for the 1-minute
# load average to fall under 0.5, and records it before and after: a row whose sides did not all
# start under 0.5 is marked not comparable; each row also records the CPU seconds the hypervisor
# stole while the side ran (steal_s; clock ticks of 1/100 s). Best of ROUNDS per side.
# Usage: scripts/bench-prefill-vs-hf.sh [rounds=1]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tell-target}"
gguf=checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$gguf" ] || { echo "run scripts/fetch-assets.sh first" >&2; exit 1; }
cargo build --release -q -p tell
tell="$CARGO_TARGET_DIR/release/tell"
[ -f bench-out/bf16/f32/model.safetensors ] || python3 scripts/bench_bf16.py bench-out/bf16 >/dev/null 2>&1
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
out=bench-out/prefill-vs-hf-$(date +%Y%m%dT%H%M%S); mkdir -p "$out"
. scripts/lib/calm.sh
for len in 128 512; do
  python3 scripts/bench_capture.py prompts "$out/p$len.jsonl" 32 --min "$len" --max "$len"
done
for round in $(seq "$rounds"); do
  for model in gguf f32; do
    m=$gguf; [ "$model" = f32 ] && m=bench-out/bf16/f32
    for len in 128 512; do
      calm; l0=$(load); s0=$(steal); t0=$(date +%s.%N)
      "$tell" capture "$m" --prompts "$out/p$len.jsonl" --out "$out/acts" --layers all \
        --batch-size 8 --force 2>"$out/tell.log" >/dev/null
      t1=$(date +%s.%N)
      echo "{\"side\": \"tell\", \"model\": \"$model\", \"len\": $len, \"seconds\": $(echo "$t1 - $t0" | bc), \"load_before\": $l0, \"load_after\": $(load), \"steal_s\": $(( $(steal) - s0 ))e-2}" | tee -a "$out/rows.jsonl"
      calm; l0=$(load); s0=$(steal)
      hf=$(python3 scripts/bench_capture.py hf "$m" "$out/p$len.jsonl" --batch 8 --threads 2 2>/dev/null)
      secs=$(printf '%s' "$hf" | python3 -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
      echo "{\"side\": \"transformers\", \"model\": \"$model\", \"len\": $len, \"seconds\": $secs, \"load_before\": $l0, \"load_after\": $(load), \"steal_s\": $(( $(steal) - s0 ))e-2}" | tee -a "$out/rows.jsonl"
    done
  done
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/rows.jsonl")]
print(f"\n| 32 prompts x L tokens, batch 8, 2 threads ({out}) | tell capture, whole process, tok/s | transformers forward, tok/s | ratio | load before (tell / transformers) |")
print("|---|---|---|---|---|")
for model in ("gguf", "f32"):
    for n in (128, 512):
        sel = [r for r in rows if r["model"] == model and r["len"] == n]
        t = min((r for r in sel if r["side"] == "tell"), key=lambda r: r["seconds"])
        h = min((r for r in sel if r["side"] == "transformers"), key=lambda r: r["seconds"])
        tt, hh = 32 * n / t["seconds"], 32 * n / h["seconds"]
        calm = all(r["load_before"] < 0.5 for r in sel)
        name = "Q4_1 GGUF" if model == "gguf" else "f32 safetensors"
        print(f"| {name}, L = {n} | {tt:.0f} | {hh:.0f} | {tt / hh:.2f}{'' if calm else ' (not comparable: load)'} | {t['load_before']} / {h['load_before']} |")
PY
