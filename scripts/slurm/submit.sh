#!/usr/bin/env bash
# Submits a split capture or run as a SLURM array job (one shard per task) and the merge that
# waits for it. Prints the two job ids.
#
#   scripts/slurm/submit.sh capture N TELL MODEL PROMPTS OUT [tell capture options...]
#   scripts/slurm/submit.sh run     N TELL SUITE MODEL OUT [tell run options...]
#
# With `--device cuda` among the options each task asks for one GPU (--gres=gpu:1). Extra sbatch
# options (partition, time, account) go in SBATCH_ARGS, e.g. SBATCH_ARGS="-p gpu -t 2:00:00".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kind=${1:?usage: submit.sh capture|run N ...}; n=${2:?}; shift 2
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
if [ "$kind" = capture ]; then
  tell=$(abs "$1"); model=$(abs "$2"); prompts=$(abs "$3"); out=$(abs "$4"); shift 4
  export TELL="$tell" MODEL="$model" PROMPTS="$prompts" OUT="$out" CAPTURE_ARGS="$*"
  script="$here/capture.sbatch"
elif [ "$kind" = run ]; then
  tell=$(abs "$1"); suite=$(abs "$2"); model=$(abs "$3"); out=$(abs "$4"); shift 4
  export TELL="$tell" SUITE="$suite" MODEL="$model" OUT="$out" RUN_ARGS="$*"
  script="$here/run.sbatch"
else
  echo "submit.sh: the first argument is capture or run, not $kind" >&2; exit 2
fi
mkdir -p "$OUT"
gres=()
case " $* " in *" --device cuda"*) gres=(--gres=gpu:1) ;; esac
# shellcheck disable=SC2086 # SBATCH_ARGS is a list of options
array=$(sbatch --parsable --chdir="$OUT" --array="0-$((n - 1))" ${SBATCH_ARGS:-} \
  ${gres[@]+"${gres[@]}"} --export=ALL "$script")
# shellcheck disable=SC2086
merge=$(sbatch --parsable --chdir="$OUT" --dependency="afterok:$array" ${SBATCH_ARGS:-} \
  --export=ALL "$here/merge.sbatch")
echo "$array $merge"
