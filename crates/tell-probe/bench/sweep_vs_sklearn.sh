#!/usr/bin/env bash
# Layer-sweep benchmark: tell-probe vs scikit-learn, same synthetic data, same grouped folds,
# same objective (L2 logistic, lambda = 1/(C n_train)), same tolerance, same machine, same run.
#
# Usage: crates/tell-probe/bench/sweep_vs_sklearn.sh [LAYERS=33] [ROWS=2000] [FEATURES=4096]
#        [L2=1e-2] [TOL=1e-4] [SKLEARN_LAYERS=LAYERS]
# Writes OUT (default /tmp/tell-probe-bench) {x.f32,labels.u8,folds.u8,rust.json,sklearn.json}
# and prints a markdown line with the ratio.
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAYERS=${1:-33}; ROWS=${2:-2000}; FEATURES=${3:-4096}; L2=${4:-1e-2}; TOL=${5:-1e-4}
SK_LAYERS=${6:-$LAYERS}
OUT=${OUT:-/tmp/tell-probe-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tell-target-probe}
cargo build --release -q -p tell-probe --example bench_sweep
"$CARGO_TARGET_DIR/release/examples/bench_sweep" "$OUT" "$LAYERS" "$ROWS" "$FEATURES" "$L2" "$TOL"
python3 crates/tell-probe/bench/sweep_sklearn.py "$OUT" "$LAYERS" "$ROWS" "$FEATURES" "$L2" "$TOL" "$SK_LAYERS"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
r, s = json.load(open(f"{out}/rust.json")), json.load(open(f"{out}/sklearn.json"))
n = s["layers"]
# Per-layer time of tell over the layers sklearn measured (tell ran all of them).
rust_secs = r["seconds"] * n / r["layers"]
diff = max(abs(a - b) for a, b in zip(r["auroc"][:n], s["auroc"]))
print(f"| {r['layers']} layers x {r['rows']} x {r['features']}, 5-fold grouped CV, logreg L2={r['l2']} tol={r['tol']} "
      f"| tell {r['seconds']:.1f}s ({r['layers']} layers) | {s['tool']} {s['seconds']:.1f}s ({n} layers) "
      f"| {s['seconds'] / rust_secs:.1f}x | max |dAUROC| {diff:.5f} | best layer {r['best_layer']} |")
PY
