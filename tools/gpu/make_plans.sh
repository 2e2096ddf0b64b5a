#!/usr/bin/env bash
# Runs on the DEVELOPMENT machine (which has dscc/MLIR): compiles the test
# fixtures to sm_90a plans under .deps/plans/, which travel to the GPU machine
# with `carry: [".deps"]` and feed tests/cuda (ds_cuda_tests PlanKernelsLoad).
#   tools/gpu/make_plans.sh [path/to/dscc]   (default: first build*/bin/dscc found)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DSCC="${1:-}"
if [ -z "$DSCC" ]; then
  for c in "$ROOT"/build*/bin/dscc; do [ -x "$c" ] && DSCC="$c" && break; done
fi
[ -n "$DSCC" ] && [ -x "$DSCC" ] || { echo "make_plans.sh: no dscc binary (build with -DDS_ENABLE_MLIR=ON)" >&2; exit 1; }
mkdir -p "$ROOT/.deps/plans"
for model in qwen2-tiny-tied; do
  out="$ROOT/.deps/plans/$model.sm_90a.dsplan"
  "$DSCC" compile "$ROOT/tests/fixtures/$model" -o "$out" --target sm_90a
  echo "wrote $out ($(stat -c %s "$out") bytes)"
done
