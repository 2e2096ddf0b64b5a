#!/usr/bin/env bash
# Nsight Compute over the tensor-core decode attention kernel of ds_attention_bench: per decode
# point its duration, DRAM throughput, occupancy, launch shape and warp stall reasons (where a CTA
# waits within its tile chain). On the GPU machine after tools/gpu/run.sh built build-gpu/; ncu
# needs the hardware counters (/work/.library/device/KINDS.md). Clocks are left alone
# (--clock-control none); ncu flushes the caches before each profiled kernel (its default).
#   tools/bench/gpu/profile_attention.sh [POINTS]
#     POINTS: space list of SHAPE:BATCH:KV_LEN (default "7B:256:512 7B:32:512 7B:1:8192 32B:256:512")
# Extra environment (e.g. DSRT_ATTN_CLUSTER_MERGE=0) reaches the bench. The first 2 decode launches
# of each point are profiled; the full report goes to /tmp/profile_attention_ncu.txt.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
POINTS="${1:-7B:256:512 7B:32:512 7B:1:8192 32B:256:512}"
export PATH="/usr/local/cuda/bin:$PATH"
NCU="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n1)"
[ -n "$NCU" ] || { echo "profile_attention: no ncu found" >&2; exit 1; }
rc=0
for pt in $POINTS; do
  echo "=== $pt"
  timeout 120 "$NCU" --clock-control none \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
      --section LaunchStats --section WarpStateStats --section SchedulerStats \
      -k "regex:decode_mma" -c 2 \
      "$BUILD/bin/ds_attention_bench" --reps 3 --decode "$pt" > /tmp/profile_attention_ncu.txt 2>&1 || rc=$?
  grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Memory Throughput|L2 Hit|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Size|Grid Size|Waves Per SM|Stall|Issued Warp|No Eligible|Active Warps|Eligible Warps|One or More" \
      /tmp/profile_attention_ncu.txt | cut -c1-150 | head -40
done
exit $rc
