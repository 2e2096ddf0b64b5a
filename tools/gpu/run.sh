#!/usr/bin/env bash
# Runs ON the GPU machine (through the device tool, with `carry: [".deps"]`):
# builds the MLIR-free targets with all cores, runs the GPU-capable tests, prints a table.
#   tools/gpu/run.sh [build|test|gpu|all|tp]   (default all; gpu: skip the full ctest, run only the
#   GPU test binaries and the e2e goldens; tp: only the tensor-parallel section, see below)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
OUT="${OUT:-$ROOT/gpu-out}"
mkdir -p "$OUT"
export PATH="/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH"
what="${1:-all}"

declare -a rows
row() { rows+=("$(printf '%-34s %-6s %s' "$1" "$2" "$3")"); }

bash "$ROOT/tools/gpu/pack_plans.sh" --unpack  # plans travel packed (pack_plans.sh)
t0=$(date +%s)
cmake -G Ninja -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDS_ENABLE_MLIR=OFF \
      -DDS_DEPS_DIR="$ROOT/.deps" -DDS_CUDA_ARCH=90a > "$OUT/configure.log" 2>&1
rc=$?; row "configure (no MLIR)" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$OUT/configure.log"
if [ $rc = 0 ]; then
  cmake --build "$BUILD" -j "$(nproc)" -- -k 0 > "$OUT/build.log" 2>&1
  rc=$?; row "build -j$(nproc)" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$(( $(date +%s) - t0 )) s"
  [ $rc = 0 ] || tail -n 40 "$OUT/build.log"
fi
if [ $rc = 0 ] && [ "$what" != build ] && [ "$what" != gpu ] && [ "$what" != tp ]; then
  # The npm oracles (tests/oracles/node_modules) do not travel to the GPU machine:
  # oracle-backed tests run in CI and on the development machine instead.
  (cd "$BUILD" && ctest --output-on-failure -j 8 -E "[Oo]racle" > "$OUT/ctest.log" 2>&1)
  rc=$?; row "ctest" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1)"
  [ $rc = 0 ] || grep -E "Failed|\*\*\*" "$OUT/ctest.log" | head -40
fi
if [ "$what" != build ] && [ "$what" != tp ] && [ -d "$BUILD" ]; then
  # Per-part logs of the GPU test binaries (full gtest output, passes included: they print
  # error figures and timings), packed into one file for the trip back.
  mkdir -p "$OUT/parts"
  for exe in $(find "$BUILD" -name 'ds_cuda_*tests' -type f -executable | sort); do
    name=$(basename "$exe")
    timeout "${GPU_TEST_TIMEOUT:-120}" "$exe" --gtest_color=no > "$OUT/parts/$name.log" 2>&1
    prc=$?
    row "$name" "$([ $prc = 0 ] && echo ok || echo FAIL)" "$(grep -E '^\[  (PASSED|FAILED) ' "$OUT/parts/$name.log" | tr '\n' ' ' | cut -c1-80)"
  done
  # The global-memory merge of split decode attention (DSRT_ATTN_CLUSTER_MERGE=0; the default merges
  # <= 8 splits in a thread-block cluster), on the same grid.
  exe="$(find "$BUILD" -name ds_cuda_attention_tests -type f -executable | head -n1)"
  if [ -n "$exe" ]; then
    DSRT_ATTN_CLUSTER_MERGE=0 timeout "${GPU_TEST_TIMEOUT:-120}" "$exe" --gtest_color=no --gtest_filter='*Decode*:*Mixed*' \
        > "$OUT/parts/ds_cuda_attention_tests_global_merge.log" 2>&1
    prc=$?
    row "attention tests, global merge" "$([ $prc = 0 ] && echo ok || echo FAIL)" \
        "$(grep -E '^\[  (PASSED|FAILED) ' "$OUT/parts/ds_cuda_attention_tests_global_merge.log" | tr '\n' ' ' | cut -c1-80)"
  fi
fi
if [ "$what" != build ] && [ "$what" != tp ] && [ -x "$BUILD/bin/dsrt" ]; then
  # bf16 e2e goldens: dsrt runs the fixtures' sm_90a plans (tools/gpu/make_plans.sh) with the
  # CUDA executor; check_goldens.py --bf16 reports max abs/rel logit errors. Logs: $OUT/e2e/.
  mkdir -p "$OUT/e2e"
  for m in qwen2-tiny-tied qwen2-tiny-r1 qwen2-tiny-yarn; do
    plan="$ROOT/.deps/plans/$m.sm_90a.dsplan"
    if [ ! -f "$plan" ]; then row "e2e bf16 $m" "SKIP" "no $plan (make_plans.sh)"; continue; fi
    timeout 300 python3 "$ROOT/tests/e2e/check_goldens.py" --bf16 --plan "$plan" --dsrt "$BUILD/bin/dsrt" \
        --fixture "$ROOT/tests/fixtures/$m" --workdir "$OUT/e2e/$m" \
        --extra-dsrt-args "--model-path $ROOT/tests/fixtures/$m" > "$OUT/e2e/$m.log" 2>&1
    erc=$?
    row "e2e bf16 $m" "$([ $erc = 0 ] && echo ok || echo FAIL)" "$(grep -E ' cases, ' "$OUT/e2e/$m.log" | cut -c1-110)"
    [ $erc = 0 ] || tail -n 12 "$OUT/e2e/$m.log"
  done
fi
if [ "$what" = tp ] && [ $rc = 0 ]; then
  source "$ROOT/tools/gpu/run_tp.sh"
fi
# Only 8 files come back from $OUT: pack the per-binary and e2e logs into one.
if [ -d "$OUT/parts" ] || [ -d "$OUT/e2e" ]; then
  (cd "$OUT" && tar -czf logs.tgz $(ls -d parts e2e 2>/dev/null) && rm -rf parts e2e)
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
printf '%s\n' "${rows[@]}"
exit $rc
