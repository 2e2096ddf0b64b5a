#!/usr/bin/env bash
# Batch-1 decode A/B on the GPU machine (after tools/gpu/run.sh build): dsrt generate, 32 prompt
# ids, 256 new tokens, dummy weights, CUDA graphs, once per setting of the GEMV kernel choice
# (DSRT_GEMM_KERNEL, "auto" = kAuto's timed choice), with PDL off (DSRT_PDL=0) and with the
# RMSNorm GEMV prologue on ("prologue": DSRT_GEMV_PROLOGUE=1, the norm groups are skipped at
# batch 1-2; "prologue-verbose" prints kAuto's choices; "prologue-swiglu": only gate_up's, with its
# SwiGLU epilogue, at batch 1: DSRT_GEMV_PROLOGUE=swiglu, the default; "noprologue": neither,
# DSRT_GEMV_PROLOGUE=0), with the SwiGLU epilogue off ("noswiglu": DSRT_GEMV_SWIGLU=0), with short KV
# bounds unsplit ("noshortsplit": DSRT_ATTN_SHORT_SPLITS=0; "nocluster": the splits merged through global
# memory instead of a thread-block cluster, DSRT_ATTN_CLUSTER_MERGE=0; "verbose": auto, printing
# kAuto's timed GEMM choices, DSRT_GEMM_VERBOSE=1; "norope": the rope + KV-write group launched
# instead of done inside decode attention, DSRT_ATTN_ROPE=0; "noearly": decode attention's first
# K/V loads after its PDL wait, DSRT_ATTN_EARLY_LOADS=0; "deferred": the RMSNorm groups deferred
# into the GEMVs around them instead of launched, DSRT_GEMV_DEFERRED_NORM=1; "warp", "warp-noshortsplit": the
# same with every GEMV on the warp kernel, free of kAuto's timed choice; "latetail": the GEMV
# epilogues read the residual / bias at the end, DSRT_GEMV_EARLY_TAIL=0; "nopipe": each decode step waits
# for its sampled token on the host before the next is queued, DSRT_PIPELINED_SAMPLING=0; "tppipe": tensor-
# parallel ranks pipeline it too, every rank sampling (DSRT_TP_PIPELINED_SAMPLING=1; SIZE@tpN models); "nozerocopy": the
# step upload and the sampler's parameters / results as cudaMemcpyAsyncs, DSRT_ZERO_COPY=0); "graphprofile" prints the
# decode graphs' GPU time per step against the launch-to-launch period (DSRT_PROFILE=1, graphs on,
# 256 tokens: what a step costs outside its graph); "profile" is
# an eager run (no graphs, 32 tokens) with DSRT_PROFILE=1 that prints the per-instruction table.
# Any other setting is passed as DSRT_GEMM_KERNEL: a kernel name, or NxK=<kernel> entries that force
# one weight shape only (e.g. 3584x3584=gemv-async: the 7B o_proj on the cp.async GEMV).
# "nobulk": kAuto without the bulk-streaming GEMV candidates (DSRT_GEMV_BULK=0; "nobulk-verbose" prints
# the choices). "nodecoys": kAuto times weights that fit in L2 on themselves instead of rotating over
# decoy copies (DSRT_GEMM_TIMING_DECOYS=0; "nodecoys-verbose" prints the choices). "noalign": the bulk
# GEMV cuts long rows into equal segments instead of whole 128-byte lines (DSRT_GEMV_BULK_ALIGN=0).
# A model written SIZE@tpN (e.g. 32B@tp2) runs that size's tpN plan with --tp N (N GPUs).
#   tools/bench/gpu/decode_ab.sh [MODELS (default "7B 32B")] [KERNELS (default: see below)]
# Prints one line per run: model, setting, decode tok/s.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
PLANS="${PLANS:-$ROOT/.deps/plans}"
bash "$ROOT/tools/gpu/pack_plans.sh" --unpack >/dev/null 2>&1 || true
MODELS="${1:-7B 32B}"
KERNELS="${2:-auto nopdl gemv-warp-l2 gemv-warp-deep-l2 gemv-warp gemv-async profile}"
PROMPT="$(python3 -c "import random; r = random.Random(1); print(','.join(str(r.randrange(1000, 150000)) for _ in range(32)))")"
for m in $MODELS; do
  size="${m%@tp*}" tp_args=() suffix=""
  if [ "$size" != "$m" ]; then tp_args=(--tp "${m#*@tp}"); suffix=".tp${m#*@tp}"; fi
  plan="$PLANS/DeepSeek-R1-Distill-Qwen-$size.sm_90a$suffix.dsplan"
  [ -f "$plan" ] || { echo "$m: no plan $plan"; continue; }
  for k in $KERNELS; do
    if [ "$k" = profile ]; then
      echo "== $m eager profile (DSRT_PROFILE=1, --disable-cuda-graph, 32 tokens)"
      DSRT_PROFILE=1 timeout 300 "$BUILD/bin/dsrt" generate "$plan" "${tp_args[@]}" --load-format dummy --prompt-ids "$PROMPT" \
          --max-new-tokens 32 --ignore-eos --disable-cuda-graph 2>&1 >/dev/null | grep -A40 "dsrt profile"
      continue
    fi
    if [ "$k" = graphprofile ]; then
      echo "== $m graph profile (DSRT_PROFILE=1, graphs, 256 tokens)"
      DSRT_PROFILE=1 timeout 300 "$BUILD/bin/dsrt" generate "$plan" "${tp_args[@]}" --load-format dummy --prompt-ids "$PROMPT" \
          --max-new-tokens 256 --ignore-eos --json 2>&1 >/dev/null | grep "graph steps"
      continue
    fi
    envs=()
    case "$k" in auto) ;; latetail) envs=(DSRT_GEMV_EARLY_TAIL=0) ;; nopipe) envs=(DSRT_PIPELINED_SAMPLING=0) ;; tppipe) envs=(DSRT_TP_PIPELINED_SAMPLING=1) ;; nozerocopy) envs=(DSRT_ZERO_COPY=0) ;; nopdl) envs=(DSRT_PDL=0) ;; prologue) envs=(DSRT_GEMV_PROLOGUE=1) ;; noswiglu) envs=(DSRT_GEMV_SWIGLU=0) ;; noshortsplit) envs=(DSRT_ATTN_SHORT_SPLITS=0) ;; nocluster) envs=(DSRT_ATTN_CLUSTER_MERGE=0) ;; norope) envs=(DSRT_ATTN_ROPE=0) ;; noearly) envs=(DSRT_ATTN_EARLY_LOADS=0) ;; deferred) envs=(DSRT_GEMV_DEFERRED_NORM=1) ;; nobulk) envs=(DSRT_GEMV_BULK=0) ;; nobulk-verbose) envs=(DSRT_GEMV_BULK=0 DSRT_GEMM_VERBOSE=1) ;; nodecoys) envs=(DSRT_GEMM_TIMING_DECOYS=0) ;; nodecoys-verbose) envs=(DSRT_GEMM_TIMING_DECOYS=0 DSRT_GEMM_VERBOSE=1) ;; prologue-verbose) envs=(DSRT_GEMV_PROLOGUE=1 DSRT_GEMM_VERBOSE=1) ;; prologue-swiglu) envs=(DSRT_GEMV_PROLOGUE=swiglu) ;; noprologue) envs=(DSRT_GEMV_PROLOGUE=0) ;; noalign) envs=(DSRT_GEMV_BULK_ALIGN=0) ;; prologue-swiglu-verbose) envs=(DSRT_GEMV_PROLOGUE=swiglu DSRT_GEMM_VERBOSE=1) ;; verbose) envs=(DSRT_GEMM_VERBOSE=1) ;; warp) envs=(DSRT_GEMM_KERNEL=gemv-warp) ;; warp-noshortsplit) envs=(DSRT_GEMM_KERNEL=gemv-warp DSRT_ATTN_SHORT_SPLITS=0) ;; *) envs=(DSRT_GEMM_KERNEL="$k") ;; esac
    out="$(env "${envs[@]}" timeout 300 "$BUILD/bin/dsrt" generate "$plan" "${tp_args[@]}" --load-format dummy --prompt-ids "$PROMPT" \
             --max-new-tokens 256 --ignore-eos --json 2>/tmp/decode_ab.err)"
    tps="$(printf '%s' "$out" | python3 -c "import json, sys; print('%.1f' % json.load(sys.stdin)['timings']['decode_tokens_per_s'])" 2>/dev/null)"
    printf '%-8s %-20s %s\n' "$m" "$k" "${tps:-error: $(tail -n 2 /tmp/decode_ab.err | tr '\n' ' ')}"
    case "$k" in *verbose) grep "dsrt gemm:" /tmp/decode_ab.err | sort | uniq -c | head -n 24 ;; esac
  done
done
