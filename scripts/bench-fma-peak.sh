#!/usr/bin/env bash
# The CPU's AVX-512 FMA peak in GFLOP/s, on 1 and 2 threads (scripts/fma/fma-peak.c, gcc -O3),
# with the load average before it: the ceiling any prefill kernel (tell's or torch's) works under.
# With `all`, also the bf16 (vdpbf16ps) and int8 (vpdpbusd) dot-product peaks where the CPU has them:
# what cheaper arithmetic than f32 would buy.
# Usage: scripts/bench-fma-peak.sh [all]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-out
gcc -O3 -pthread scripts/fma/fma-peak.c -o bench-out/fma-peak
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
bench-out/fma-peak "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
