# Sourced by the bench scripts (issue 18's protocol): every timed side waits for a calm machine,
# records the 1-minute load average before and after it, and is marked not comparable when it
# started at or above CALM. Loads from other work hurt torch's threads more than tell's, so an
# unmarked ratio taken under load would flatter tell.
CALM=${CALM:-0.5}   # the load under which a side counts as taken on an idle machine
WAIT=${WAIT:-150}   # the longest wait for it, in seconds (a side runs anyway after it, marked)

# The 1-minute load average.
load() { cut -d' ' -f1 /proc/loadavg; }

# CPU time the hypervisor gave other guests (steal), in clock ticks since boot: on a shared host,
# contention the load average does not show.
steal() { awk '/^cpu /{print $9}' /proc/stat; }

# Waits up to WAIT seconds for the load to fall under CALM.
calm() {
  local _
  for _ in $(seq $((WAIT / 5))); do
    awk -v c="$CALM" '{exit !($1 < c)}' /proc/loadavg && return 0
    sleep 5
  done
}

# Runs "$@" after `calm`; each JSON object it prints on a line of its own gets load_before,
# load_after, steal_s (CPU seconds stolen by the hypervisor while it ran) and comparable
# (load_before < CALM) added. Other lines pass through.
with_load() {
  calm
  local before after lines s0 s1
  before=$(load); s0=$(steal)
  lines=$("$@")
  after=$(load); s1=$(steal)
  printf '%s\n' "$lines" | python3 -c '
import json, sys
before, after, calm = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
stolen = int(sys.argv[4]) / int(sys.argv[5])
for line in sys.stdin:
    line = line.rstrip("\n")
    try:
        row = json.loads(line)
    except ValueError:
        print(line)
        continue
    row.update(load_before=before, load_after=after, steal_s=stolen, comparable=before < calm)
    print(json.dumps(row))
' "$before" "$after" "$CALM" "$(( (s1 - s0) ))" "$(getconf CLK_TCK)"
}
