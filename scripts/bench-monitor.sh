#!/usr/bin/env bash
# What the token monitor costs: `tell generate` on SmolLM2-135M-Instruct (GGUF) with and without
# `--monitor` (one probe, scoring every generated token), same prompts, same run, sides alternating
# round by round; the table keeps each side's best round. The probe is trained here by tell itself
# (a capture of the prompts, alternating labels, `tell probe train --families logreg`): what it
# separates does not matter, only what scoring every token costs.
# Usage: scripts/bench-monitor.sh [prompts=16] [new=64] [rounds=3] [layer=15]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-16}; new=${2:-64}; rounds=${3:-3}; layer=${4:-15}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tell-target}"
gguf=checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$gguf" ] || { echo "run scripts/fetch-assets.sh first" >&2; exit 1; }
cargo build --release -q
tell="$CARGO_TARGET_DIR/release/tell"
work=bench-out/monitor; rm -rf "$work"; mkdir -p "$work"
python3 - "$work" "$n" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
topics = ["rivers", "volcanoes", "bees", "chess", "bread", "comets", "tides", "maps"]
with open(f"{work}/prompts.jsonl", "w") as p, open(f"{work}/labels.csv", "w") as l:
    l.write("id,label\n")
    for i in range(n):
        p.write(json.dumps({"id": f"q{i}", "text": f"Write a short note about {topics[i % len(topics)]} ({i})."}) + "\n")
        l.write(f"q{i},{i % 2}\n")
PY
"$tell" capture "$gguf" --prompts "$work/prompts.jsonl" --out "$work/acts" --layers "$layer" 2>/dev/null
"$tell" probe train --acts "$work/acts" --labels "$work/labels.csv" --label label --group-by id \
  --families logreg --folds 2 --seeds 1 --bootstrap 10 --out "$work/probe" >/dev/null
probe="$work/probe/probes/logreg"
out=bench-out/monitor-$(date +%Y%m%dT%H%M%S).jsonl
echo "{\"start_load\": $(cut -d' ' -f1 /proc/loadavg)}" | tee "$out"
gen() { # name, extra args...
  local name=$1; shift
  local l0; l0=$(cut -d' ' -f1 /proc/loadavg)
  local log; log=$("$tell" generate "$gguf" --prompts "$work/prompts.jsonl" --out "$work/$name.jsonl" \
    --max-new-tokens "$new" "$@" 2>&1 >/dev/null | tail -1)
  local secs; secs=$(printf '%s' "$log" | sed -n 's/.* new tokens in \([0-9.]*\) s.*/\1/p')
  local tokens; tokens=$(printf '%s' "$log" | sed -n 's/.*, \([0-9]*\) new tokens in.*/\1/p')
  echo "{\"side\": \"$name\", \"seconds\": $secs, \"new_tokens\": $tokens, \"load_before\": $l0}" | tee -a "$out"
}
for _ in $(seq "$rounds"); do
  gen plain
  gen monitored --monitor "$probe"
done
cmp <(python3 -c "import json,sys; [print(json.loads(l)['response_tokens']) for l in open(sys.argv[1])]" "$work/plain.jsonl") \
    <(python3 -c "import json,sys; [print(json.loads(l)['response_tokens']) for l in open(sys.argv[1])]" "$work/monitored.jsonl") \
  && same=yes || same=no
python3 - "$out" "$n" "$new" "$layer" "$same" <<'PY'
import json, sys
out, n, new, layer, same = sys.argv[1:6]
rows = [json.loads(l) for l in open(out)]
start = rows.pop(0)["start_load"]
best = lambda s: min(r["seconds"] for r in rows if r["side"] == s)
p, m = best("plain"), best("monitored")
print(f"\n| tell generate, SmolLM2 Q4_1, {n} prompts x {new} new tokens ({out}) | seconds (generation, best) | vs plain |")
print("|---|---|---|")
print(f"| plain | {p:.3f} | 1.000 |")
print(f"| --monitor (1 logreg probe, layer {layer}) | {m:.3f} | {m / p:.3f} |")
print(f"\nsame responses: {same}; load average {start} at the start")
PY
