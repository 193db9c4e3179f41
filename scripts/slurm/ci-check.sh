#!/usr/bin/env bash
# The SLURM check of CI: a one-node SLURM on this machine (local-cluster.sh), the array job of a
# 3-shard capture of organism prompts and its merge job (submit.sh), then the merged store against
# one process's capture of the same prompts (batch 1: every exported file byte for byte).
# If the daemons cannot start here, the same batch scripts run by hand with the array variables
# set, and the output says so (and why).
#
#   scripts/slurm/ci-check.sh TELL WORKDIR
set -euo pipefail
tell=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); work=${2:?usage: ci-check.sh TELL WORKDIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
rm -rf "$work"; mkdir -p "$work"; work=$(cd "$work" && pwd)
model="$repo/checkpoints/organism"
"$tell" suite render "$repo/probes/organism/suite.toml" --out "$work/all.jsonl" 2>/dev/null
awk 'NR % 35 == 1' "$work/all.jsonl" | head -24 > "$work/prompts.jsonl"
opts=(--batch-size 1 --positions mean --sites resid_post)
"$tell" capture "$model" --prompts "$work/prompts.jsonl" --out "$work/single" "${opts[@]}" 2>/dev/null
out="$work/slurm"
how=slurm
if env_line=$("$here/local-cluster.sh" start "$work/cluster" 2>"$work/cluster.err"); then
  eval "$env_line"
  trap '"$here/local-cluster.sh" stop "$work/cluster"' EXIT
  read -r array merge < <("$here/submit.sh" capture 3 "$tell" "$model" "$work/prompts.jsonl" "$out" "${opts[@]}")
  echo "submitted array job $array (3 tasks) and merge job $merge"
  for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$array,$merge" 2>/dev/null)" ] && break
    sleep 1
  done
  if [ -n "$(squeue -h -j "$array,$merge" 2>/dev/null)" ]; then
    echo "slurm-check: the jobs did not finish in 10 minutes" >&2; squeue >&2; exit 1
  fi
else
  how="by hand (the SLURM daemons could not start: $(tail -1 "$work/cluster.err"))"
  mkdir -p "$out"
  for i in 0 1 2; do
    (cd "$out" && SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=3 TELL="$tell" MODEL="$model" \
      PROMPTS="$work/prompts.jsonl" OUT="$out" CAPTURE_ARGS="${opts[*]}" bash "$here/capture.sbatch")
  done
  (cd "$out" && TELL="$tell" OUT="$out" bash "$here/merge.sbatch")
fi
[ -f "$out/merged/manifest.json" ] || {
  echo "slurm-check: no merged store; job output:" >&2; tail -n 20 "$out"/*.out >&2 || true; exit 1; }
"$tell" store export "$work/single" --out "$work/single-npy" >/dev/null 2>&1
"$tell" store export "$out/merged" --out "$work/merged-npy" >/dev/null 2>&1
if ! diff -r "$work/single-npy" "$work/merged-npy" >/dev/null; then
  echo "slurm-check: the merged store differs from the single capture" >&2
  diff -rq "$work/single-npy" "$work/merged-npy" >&2 || true
  exit 1
fi
echo "slurm-check ok ($how): 3 shards of $(wc -l < "$work/prompts.jsonl") prompts merged, equal byte for byte to one capture"
