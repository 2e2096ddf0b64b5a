#!/usr/bin/env bash
# Nsight Compute over the decode-size linears of ds_decode_layer_bench: per kernel its duration,
# DRAM throughput, occupancy, launch shape and warp stall reasons, to see where the small
# projections (qkv, o) lose bandwidth against the copy ceiling. On the GPU machine after
# tools/gpu/run.sh built build-gpu/. ncu needs the hardware counters (the Firecracker machines;
# /work/.library/device/KINDS.md); clocks are left alone (--clock-control none) and caches are
# flushed before each profiled kernel (ncu's default), so durations are cold-L2 figures.
#   tools/bench/gpu/profile_gemv.sh [7B|32B] [COUNT]     (default 32B, 24 kernels)
# Prints ncu's report; the bench's own output goes to /tmp/profile_gemv_bench.txt.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
MODEL="${1:-32B}"
COUNT="${2:-24}"
export PATH="/usr/local/cuda/bin:$PATH"
NCU="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n1)"
[ -n "$NCU" ] || { echo "profile_gemv: no ncu found" >&2; exit 1; }
# The chain table launches every kernel variant per linear (qkv, o, gate_up, down) in turn; with
# 2 layers per graph and the eager warm-up first, the first launches are qkv's and o's variants.
timeout 300 "$NCU" --clock-control none \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
    --section LaunchStats --section WarpStateStats \
    -k "regex:gemv|nvjet|xmma|gemm" -c "$COUNT" \
    "$BUILD/bin/ds_decode_layer_bench" --model "$MODEL" --layers 2 --reps 5 \
    > /tmp/profile_gemv_ncu.txt 2> /tmp/profile_gemv_bench.txt
rc=$?
grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Size|Grid Size|Waves Per SM|Stall|One or More|No Eligible" \
    /tmp/profile_gemv_ncu.txt | cut -c1-150
exit $rc
