#!/usr/bin/env bash
# The device check of `tell` on a GPU (issue 15): parity with transformers (bf16 and f32, a tiny
# checkpoint and a random-weight LLaMA-3-8B-shaped one), prefill and capture speed side by side,
# persisted tuning, peak device memory and host RSS. Prints JSON lines and one table; exits
# non-zero when parity fails (1) or a step cannot run (2). Details: scripts/gpu_check.py.
#
#   scripts/gpu-check.sh PATH/TO/tell [OUT]      # OUT defaults to $OUT, else ./gpu-check-out
#   DEVICE=cpu SMALL=1 scripts/gpu-check.sh target/release/tell /tmp/check   # CPU plumbing run
#
# Needs python3 with torch, transformers, safetensors and numpy; for the GPU, a tell built with
# `cargo build --release --features cuda`, the NVIDIA driver, NVRTC and cuBLAS (CUDA 13).
# Scratch files (a 16 GB checkpoint, stores) go to $WORK (default /tmp/tell-gpu-check).
set -euo pipefail
tell=${1:?usage: scripts/gpu-check.sh PATH/TO/tell [OUT]}
out=${2:-${OUT:-gpu-check-out}}
here=$(cd "$(dirname "$0")" && pwd)
small=()
if [ "${SMALL:-0}" = 1 ]; then small=(--small); fi
exec python3 "$here/gpu_check.py" --tell "$tell" --out "$out" --device "${DEVICE:-cuda}" ${small[@]+"${small[@]}"}
