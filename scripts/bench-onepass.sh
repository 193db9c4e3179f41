#!/usr/bin/env bash
# `tell run` in one pass against the former two passes (generation, then a capture that loads the
# model again and prefills every prompt again), on SmolLM2-135M-Instruct (GGUF) and the
# alignment-faking suite, same prompts, same machine, same run. The former run is reproduced with
# the commands it chained: `tell generate` and `tell capture` on the run's own prompts.jsonl, with
# the suite's generation and capture settings.
# Usage: scripts/bench-onepass.sh [limit=1] [max_new_tokens=64] [rounds=1]
# With several rounds the sides alternate round by round and the table keeps each side's best;
# every round is in the .jsonl, with the load average before and after each side. The bench waits
# (up to 5 minutes) for the 1-minute load average to fall under 0.5 before it starts and marks the
# table not comparable when it did not; the later sides' loads include the bench's own previous
# side (tell uses both cores), which both sides see alike.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-1}; new=${2:-64}; rounds=${3:-1}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tell-target}"
gguf=checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
suite=probes/alignment-faking/suite.toml
[ -f "$gguf" ] || { echo "run scripts/fetch-assets.sh first" >&2; exit 1; }
cargo build --release -q
tell="$CARGO_TARGET_DIR/release/tell"
work=bench-out/onepass; mkdir -p "$work"
out=bench-out/onepass-$(date +%Y%m%dT%H%M%S).jsonl
load() { cut -d' ' -f1 /proc/loadavg; }
side() { # name, command...
  local name=$1; shift
  local l0; l0=$(load); local t0; t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/$name.log"
  local t1; t1=$(date +%s.%N)
  python3 -c "import json,sys; print(json.dumps({'side': sys.argv[1], 'seconds': float(sys.argv[3]) - float(sys.argv[2]), 'load_before': float(sys.argv[4]), 'load_after': float(sys.argv[5]), 'limit': int(sys.argv[6]), 'max_new_tokens': int(sys.argv[7])}))" \
    "$name" "$t0" "$t1" "$l0" "$(load)" "$limit" "$new" | tee -a "$out"
}
for _ in $(seq 60); do
  awk '{exit !($1 < 0.5)}' /proc/loadavg && break
  sleep 5
done
start_load=$(load)
echo "{\"start_load\": $start_load}" | tee -a "$out"
for round in $(seq "$rounds"); do
  side one-pass "$tell" run "$suite" --model "$gguf" --out "$work/run" --limit "$limit" \
    --max-new-tokens "$new" --force
  two_pass() {
    "$tell" generate "$gguf" --prompts "$work/run/prompts.jsonl" --out "$work/responses.jsonl" \
      --max-new-tokens "$new" --temperature 0 --seed 0 &&
    "$tell" capture "$gguf" --prompts "$work/run/prompts.jsonl" --out "$work/acts" \
      --sites resid_post --layers all --positions last --force
  }
  side two-pass two_pass
done
python3 - "$out" "$work" <<'PY'
import json, sys
import numpy as np
from safetensors.numpy import load_file
import glob, os
out, work = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(out)]
start_load = rows.pop(0)["start_load"]
# Same outputs: every response's tokens, and every stored value.
def tokens(path):
    return [json.loads(l)["response_tokens"] for l in open(path)]
same = tokens(f"{work}/run/responses.jsonl") == tokens(f"{work}/responses.jsonl")
def store(d):
    out = {}
    for f in sorted(glob.glob(f"{d}/shard-*.safetensors")):
        for k, v in load_file(f).items():
            out.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items() if not k.endswith("offsets")}
a, b = store(f"{work}/run/acts"), store(f"{work}/acts")
assert a.keys() == b.keys(), (a.keys(), b.keys())
err = max(float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in a)
best = lambda s: min(r["seconds"] for r in rows if r["side"] == s)
calm = start_load < 0.5
o, t = best("one-pass"), best("two-pass")
print(f"\n| tell run, SmolLM2 Q4_1, --limit {rows[0]['limit']}, max_new_tokens {rows[0]['max_new_tokens']} ({out}) | seconds | ratio to two passes |")
print("|---|---|---|")
print(f"| one pass (tell run) | {o:.1f} | {o / t:.2f} |")
print(f"| two passes (tell generate + tell capture) | {t:.1f} | 1.00 |")
print(f"\nsame responses: {same}; stores: worst relative difference {err:.1e}; "
      f"load average {start_load} at the start"
      + ("" if calm else " (above 0.5: not comparable)")
      + f", {[r['load_before'] for r in rows]} before each side")
PY
