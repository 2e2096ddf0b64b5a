#!/usr/bin/env bash
# Nsight Compute over the decode-size linears of ds_decode_layer_bench: per kernel its duration,
# DRAM throughput, occupancy, launch shape and warp stall reasons, to see where the projections
# lose bandwidth against the copy ceiling. On the GPU machine after tools/gpu/run.sh built
# build-gpu/. ncu needs the hardware counters (the Firecracker machines;
# /work/.library/device/KINDS.md); clocks are left alone (--clock-control none) and caches are
# flushed before each profiled kernel (ncu's default), so durations are cold-L2 figures.
#   tools/bench/gpu/profile_gemv.sh [7B|32B] [LINEARS] [KERNELS]
#     LINEARS: comma list of qkv,o,gate_up,down (default qkv,o,down)
#     KERNELS: space list of the bench's chain kernels (default "cublaslt warp warp-s1 warp-s2 warp-s4 mma")
# One bench run per (linear, kernel), chain table only, the first 2 launches profiled. Prints a
# compact block per kernel; the bench's own output goes to /tmp/profile_gemv_bench.txt.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
MODEL="${1:-32B}"
LINEARS="${2:-qkv,o,down}"
KERNELS="${3:-cublaslt warp warp-s1 warp-s2 warp-s4 mma}"
export PATH="/usr/local/cuda/bin:$PATH"
NCU="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n1)"
[ -n "$NCU" ] || { echo "profile_gemv: no ncu found" >&2; exit 1; }
rc=0
for lin in ${LINEARS//,/ }; do
  for k in $KERNELS; do
    echo "=== $MODEL $lin $k"
    timeout 120 "$NCU" --clock-control none \
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
        --section LaunchStats --section WarpStateStats \
        --metrics sm__ctas_launched.min,sm__ctas_launched.max,sm__cycles_active.min,sm__cycles_active.max,sm__cycles_active.avg \
        -k "regex:gemv|nvjet|xmma|gemm|sm90" -c 2 \
        "$BUILD/bin/ds_decode_layer_bench" --model "$MODEL" --layers 2 --reps 5 --chain-only \
        --linears "$lin" --kernels "$k" > /tmp/profile_gemv_ncu.txt 2>> /tmp/profile_gemv_bench.txt || rc=$?
    grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Memory Throughput|L1/TEX Hit|L2 Hit|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Size|Grid Size|Waves Per SM|sm__|Stall|One or More|No Eligible" \
        /tmp/profile_gemv_ncu.txt | cut -c1-150 | head -40
  done
done
exit $rc
