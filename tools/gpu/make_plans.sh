#!/usr/bin/env bash
# Runs on the DEVELOPMENT machine (which has dscc/MLIR): compiles the test
# fixtures to sm_90a plans under .deps/plans/, which travel to the GPU machine
# with `carry: [".deps"]` and feed tests/cuda (ds_cuda_tests PlanKernelsLoad,
# ds_cuda_executor_tests) and the bf16 e2e goldens (tools/gpu/run.sh).
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
# For each fixture: the sm_90a plan (bf16, GPU tests and e2e goldens) and the f32
# cpu plan (the CudaExecutor-vs-CpuExecutor test in tests/cuda/executor).
for model in qwen2-tiny-tied qwen2-tiny-r1 qwen2-tiny-yarn; do
  for target in sm_90a cpu; do
    out="$ROOT/.deps/plans/$model.$target.dsplan"
    "$DSCC" compile "$ROOT/tests/fixtures/$model" -o "$out" --target "$target"
    echo "wrote $out ($(stat -c %s "$out") bytes)"
  done
  # Tensor parallelism on GPUs (tests/cuda/executor tp_executor_test, run.sh `tp`): the
  # fixtures have 4 query heads and 1-2 KV heads, so TP 4 shares KV heads between ranks.
  # --proj-out-dtype f32: o_proj/down_proj partial sums stay float32 through the all-reduce
  # (bf16 partials lose a rounding per rank and NCCL's ring rounds at every hop).
  for tp in 2 4; do
    out="$ROOT/.deps/plans/$model.sm_90a.tp$tp.dsplan"
    "$DSCC" compile "$ROOT/tests/fixtures/$model" -o "$out" --target sm_90a --tp "$tp" --proj-out-dtype f32
    echo "wrote $out ($(stat -c %s "$out") bytes)"
  done
done
