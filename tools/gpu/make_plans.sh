#!/usr/bin/env bash
# Runs on the DEVELOPMENT machine (which has dscc/MLIR): compiles the test
# fixtures to sm_90a plans under .deps/plans/, which travel to the GPU machine
# with `carry: [".deps"]` and feed tests/cuda (ds_cuda_tests PlanKernelsLoad).
#   tools/gpu/make_plans.sh [path/to/dscc]   (default: the newest build*/bin/dscc)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DSCC="${1:-}"
if [ -z "$DSCC" ]; then
  # The most recently built dscc (an older build dir may write an older plan format).
  DSCC="$(ls -t "$ROOT"/build*/bin/dscc 2>/dev/null | head -n1)"
fi
[ -n "$DSCC" ] && [ -x "$DSCC" ] || { echo "make_plans.sh: no dscc binary (build with -DDS_ENABLE_MLIR=ON)" >&2; exit 1; }
mkdir -p "$ROOT/.deps/plans"
for model in qwen2-tiny-tied; do
  out="$ROOT/.deps/plans/$model.sm_90a.dsplan"
  "$DSCC" compile "$ROOT/tests/fixtures/$model" -o "$out" --target sm_90a
  echo "wrote $out ($(stat -c %s "$out") bytes)"
done
