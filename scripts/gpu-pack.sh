#!/usr/bin/env bash
# Builds what the device check carries to a GPU machine (which has no Rust toolchain): the `tell`
# binary and the binary of the GPU tests (crates/tell-llama/tests/cuda.rs), both with
# `--features cuda`, stripped and gzipped into target/gpu/, with the LLaMA 3 tokenizer and the suite's
# datasets (about 36 MB; a carry holds 64 MiB).
#
#   scripts/gpu-pack.sh            # then, on the GPU machine, from the repository root:
#   gunzip -f target/gpu/*.gz && CUDA_TESTS=target/gpu/cuda-tests scripts/gpu-check.sh target/gpu/tell "$OUT/check"
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tell-target}"
cargo build --release --features cuda --bin tell
log=$(cargo test --release -p tell-llama --features cuda --test cuda --no-run 2>&1)
exe=$(printf '%s\n' "$log" | sed -n 's/.*Executable tests\/cuda.rs (\(.*\))$/\1/p' | tail -1)
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
  printf '%s\n' "$log" >&2
  echo "gpu-pack: the GPU tests' executable was not found in cargo's output" >&2
  exit 1
fi
mkdir -p target/gpu
rm -f target/gpu/tell target/gpu/cuda-tests target/gpu/*.gz
strip -o target/gpu/tell "$CARGO_TARGET_DIR/release/tell"
strip -o target/gpu/cuda-tests "$exe"
gzip -9 target/gpu/tell target/gpu/cuda-tests
# The generation and run steps need a tokenizer for the random-weight checkpoints and the suite's
# datasets (scripts/fetch-assets.sh fetches both; about 9 MB).
rm -rf target/gpu/llama3-tokenizer target/gpu/datasets
mkdir -p target/gpu/llama3-tokenizer target/gpu/datasets
cp checkpoints/fetched/llama3-tokenizer/tokenizer.json checkpoints/fetched/llama3-tokenizer/tokenizer_config.json \
  target/gpu/llama3-tokenizer/
cp checkpoints/fetched/datasets/* target/gpu/datasets/
ls -l target/gpu
echo "carry target/gpu; on the GPU machine, from the repository root:"
echo '  gunzip -f target/gpu/*.gz && CUDA_TESTS=target/gpu/cuda-tests scripts/gpu-check.sh target/gpu/tell "$OUT/check"'
