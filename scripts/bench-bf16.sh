#!/usr/bin/env bash
# bf16 weights held as bf16 on the CPU: `tell capture` (whole process) on SmolLM2-135M-Instruct
# written as bf16 safetensors and as the same values widened to f32 (scripts/bench_bf16.py, from
# the fetched GGUF), 32 prompts x 128 tokens, every layer's last-token resid_post, batch 8, 2
# threads; sides alternating round by round, best of ROUNDS. Reports peak RSS (GNU time), tokens/s
# of the capture loop, the load average, and the largest difference between the two stores.
# Usage: scripts/bench-bf16.sh [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tell-target}"
[ -f checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ] || { echo "run scripts/fetch-assets.sh first" >&2; exit 1; }
cargo build --release -q
tell="$CARGO_TARGET_DIR/release/tell"
work=bench-out/bf16
[ -f "$work/bf16/model.safetensors" ] || python3 scripts/bench_bf16.py "$work" >/dev/null 2>&1
export RAYON_NUM_THREADS=2
. scripts/lib/calm.sh
out=bench-out/bf16-$(date +%Y%m%dT%H%M%S).jsonl
for _ in $(seq "$rounds"); do
  for side in f32 bf16; do
    calm; l0=$(load)
    /usr/bin/time -v "$tell" capture "$work/$side" --prompts "$work/prompts.jsonl" --out "$work/acts-$side" \
      --layers all --batch-size 8 --force 2>"$work/$side.log" >/dev/null
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/$side.log")
    rate=$(sed -n 's/.* s: \([0-9.]*\) tokens\/s.*/\1/p' "$work/$side.log")
    echo "{\"side\": \"$side\", \"peak_rss_kb\": $rss, \"tokens_per_s\": $rate, \"load_before\": $l0, \"load_after\": $(load)}" | tee -a "$out"
  done
done
python3 - "$out" "$work" <<'PY'
import glob, json, sys
import numpy as np
from safetensors.numpy import load_file
out, work = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(out)]
def store(d):
    t = {}
    for f in sorted(glob.glob(f"{d}/shard-*.safetensors")):
        for k, v in load_file(f).items():
            t.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in t.items()}
a, b = store(f"{work}/acts-bf16"), store(f"{work}/acts-f32")
err = max(float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in a if k != "offsets")
best = lambda s, key, f: f(r[key] for r in rows if r["side"] == s)
print(f"\n| tell capture, SmolLM2 as safetensors, 32 x 128 tokens, batch 8 ({out}) | peak RSS | tokens/s (best) |")
print("|---|---|---|")
for s in ("f32", "bf16"):
    print(f"| {s} weights | {best(s, 'peak_rss_kb', min) / 1024:.0f} MiB | {best(s, 'tokens_per_s', max):.0f} |")
print(f"\nstores: largest difference relative to the largest value {err:.1e}; load averages "
      f"{[r['load_before'] for r in rows]} before each side"
      + ("" if all(r["load_before"] < 0.5 for r in rows) else " (not comparable: some side started at 0.5 or above)"))
PY
