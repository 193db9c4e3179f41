#!/usr/bin/env bash
# Greedy generation on SmolLM2-135M-Instruct (GGUF): tell beside HF transformers' generate (and
# llama.cpp, when PyPI's llama-cpp-python is installed), same prompts, same machine, same run, same
# threads.
# Usage: scripts/bench-generate.sh [new=32] [threads=2] [rounds=1]
# With several rounds the sides alternate round by round (so that a change in machine load hits
# them alike) and the table keeps each side's best round; every round's numbers are in the .jsonl.
# Each side waits for a load average under 0.5 and records it (scripts/lib/calm.sh); the table
# says when a side started above it.
set -euo pipefail
cd "$(dirname "$0")/.."
new=${1:-32}; threads=${2:-2}; rounds=${3:-1}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tell-target}"
gguf=checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$gguf" ] || { echo "run scripts/fetch-assets.sh first" >&2; exit 1; }
mkdir -p bench-out
prompts=bench-out/generate-prompts.jsonl
python3 scripts/bench_generate.py prompts "$prompts" 2>/dev/null
cargo build --release -q -p tell-llama --example generate_bench
bin="$CARGO_TARGET_DIR/release/examples/generate_bench"
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
llamacpp=$(python3 -c "import llama_cpp" 2>/dev/null && echo yes || echo no)
[ "$llamacpp" = yes ] || echo "llama-cpp-python not installed: no llama.cpp column (pip install llama-cpp-python)"
out=bench-out/generate-$(date +%Y%m%dT%H%M%S).jsonl
. scripts/lib/calm.sh
for round in $(seq "$rounds"); do
  for batch in 1 8; do
    with_load "$bin" "$gguf" "$prompts" "$batch" "$new" | tee -a "$out"
    with_load python3 scripts/bench_generate.py hf "$prompts" --batch "$batch" --new "$new" \
      --threads "$threads" 2>/dev/null | tee -a "$out"
    if [ "$llamacpp" = yes ]; then
      with_load python3 scripts/bench_generate.py llamacpp "$prompts" --batch "$batch" --new "$new" \
        --threads "$threads" 2>/dev/null | tee -a "$out"
    fi
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open(out)]
best = lambda side, b: max(r["new_tokens_per_s"] for r in rows if r["side"] == side and r["batch"] == b)
cpp = any(r["side"] == "llama.cpp" for r in rows)
calm = all(r.get("comparable", False) for r in rows)
loads = [r.get("load_before") for r in rows]
head = f"| greedy, 8 prompts ({out}, best of {rounds}) | tell new tok/s | transformers new tok/s | ratio |"
print("\n" + head + (" llama.cpp new tok/s | tell / llama.cpp |" if cpp else ""))
print("|---|---|---|---|" + ("---|---|" if cpp else ""))
for b in (1, 8):
    t, h = best("tell", b), best("transformers", b)
    line = f"| batch {b}, {rows[0]['new']} new tokens each | {t:.1f} | {h:.1f} | {t / h:.2f} |"
    if cpp:
        c = best("llama.cpp", b)
        line += f" {c:.1f} | {t / c:.2f} |"
    print(line)
print(f"\nload averages before each side: {loads}" + ("" if calm else " (not comparable: some side started at 0.5 or above)"))
PY
