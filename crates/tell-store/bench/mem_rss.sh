#!/usr/bin/env bash
# Peak RSS of writing 200 vs 2000 records with the same settings (bounded-memory check).
# Usage: crates/tell-store/bench/mem_rss.sh [SHARD] [D] [LAYERS] [POSITIONS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -q -p tell-store --example mem_rss
bin="${CARGO_TARGET_DIR:-target}/release/examples/mem_rss"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
small=$("$bin" "$out/s" 200 "$@")
large=$("$bin" "$out/l" 2000 "$@")
echo "$small"
echo "$large"
python3 -c "
import json,sys
a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2])
r=b['vm_hwm_kib']/a['vm_hwm_kib']
print(f'peak RSS 200: {a[\"vm_hwm_kib\"]} KiB, 2000: {b[\"vm_hwm_kib\"]} KiB, ratio {r:.3f} (limit 1.2)')
sys.exit(0 if r<=1.2 else 1)" "$small" "$large"
