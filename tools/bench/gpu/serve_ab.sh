#!/usr/bin/env bash
# Serving A/B on the GPU machine (after tools/gpu/run.sh build): for each model and setting,
# `dsrt serve PLAN --load-format dummy` and one dsbench run of NUM random requests (INPUT_LEN prompt
# tokens, OUTPUT_LEN new tokens, all sent at once), one line per run: model, setting, total and output
# tok/s, median TPOT and TTFT.
#   tools/bench/gpu/serve_ab.sh [MODELS (default "7B")] [SETTINGS (default "overlap nooverlap")]
# Settings: "overlap" (the defaults), "nooverlap" (--disable-overlap-schedule), "nograph"
# (--disable-cuda-graph), "nosplitsampling" (DSRT_SAMPLING_SPLIT=0: every sampled row on one CTA), "profile"
# (DSRT_PROFILE=1: the executor's step profile, printed to the server log when it stops), "profile-eager"
# (the same with --disable-cuda-graph: per-instruction times); any other word is passed to dsrt serve with
# '+' read as a space (e.g. --max-running-requests+128); a word of VAR=VALUE ('+' between several) sets
# those environment variables for dsrt (e.g. DSRT_ATTN_CTAS_PER_SM=4).
# "tppipe": tensor-parallel ranks pipeline device sampling (DSRT_TP_PIPELINED_SAMPLING=1). A model written
# SIZE@tpN (e.g. 32B@tp2) serves that size's tpN plan with --tp N (N GPUs).
# SERVE_LOG_DIR: keep each run's server log there as MODEL_SETTING.log (the profile settings print the
# profile's lines from it).
# NUM (256), INPUT_LEN (512), OUTPUT_LEN (128), PORT (30125) (not IN / OUT: the device runner sets OUT);
# BODY: a JSON object merged into every request (dsbench --extra-request-body; dsbench sends
# temperature 0 by default), e.g. BODY='{"temperature": 0.6, "top_p": 0.95}'.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
PLANS="${PLANS:-$ROOT/.deps/plans}"
bash "$ROOT/tools/gpu/pack_plans.sh" --unpack >/dev/null 2>&1 || true
MODELS="${1:-7B}"
SETTINGS="${2:-overlap nooverlap}"
NUM="${NUM:-256}" INPUT_LEN="${INPUT_LEN:-512}" OUTPUT_LEN="${OUTPUT_LEN:-128}" PORT="${PORT:-30125}"
WORK="$(mktemp -d)"
for m in $MODELS; do
  size="${m%@tp*}" tp_args="" suffix=""
  if [ "$size" != "$m" ]; then tp_args="--tp ${m#*@tp}"; suffix=".tp${m#*@tp}"; fi
  plan="$PLANS/DeepSeek-R1-Distill-Qwen-$size.sm_90a$suffix.dsplan"
  [ -f "$plan" ] || { echo "$m: no plan $plan"; continue; }
  for s in $SETTINGS; do
    envs=""
    case "$s" in overlap) args="" ;; nooverlap) args="--disable-overlap-schedule" ;; nograph) args="--disable-cuda-graph" ;;
      nosplitsampling) args="" envs="DSRT_SAMPLING_SPLIT=0" ;;
      tppipe) args="" envs="DSRT_TP_PIPELINED_SAMPLING=1" ;;
      profile) args="" envs="DSRT_PROFILE=1" ;; profile-eager) args="--disable-cuda-graph" envs="DSRT_PROFILE=1" ;;
      *=*) case "$s" in --*) args="${s//+/ }" ;; *) args="" envs="${s//+/ }" ;; esac ;;
      *) args="${s//+/ }" ;; esac
    # shellcheck disable=SC2086
    env $envs "$BUILD/bin/dsrt" serve "$plan" $tp_args --load-format dummy --host 127.0.0.1 --port "$PORT" $args > "$WORK/serve.log" 2>&1 &
    pid=$!
    ok=0
    for _ in $(seq 600); do
      kill -0 "$pid" 2>/dev/null || break
      curl -sf "http://127.0.0.1:$PORT/health" > /dev/null 2>&1 && { ok=1; break; }
      sleep 0.5
    done
    if [ "$ok" = 1 ]; then
      timeout 600 "$BUILD/bin/dsbench" --base-url "http://127.0.0.1:$PORT" --plan "$plan" --dataset random \
          --num-prompts "$NUM" --random-input-len "$INPUT_LEN" --random-output-len "$OUTPUT_LEN" --max-concurrency "$NUM" \
          --warmup 2 --progress-interval 0 --output-file "$WORK/r.json" ${BODY:+--extra-request-body "$BODY"} \
          > "$WORK/bench.log" 2>&1
      python3 - "$WORK/r.json" "$m" "$s" <<'PY'
import json, sys
try:
    m = json.load(open(sys.argv[1]))
    m = m.get("metrics", m)
    print("%-6s %-28s total %9.1f tok/s  out %8.1f tok/s  TPOT p50 %7.2f ms  TTFT p50 %8.1f ms  ok %d" % (
        sys.argv[2], sys.argv[3], m["total_throughput"], m["output_throughput"], m["tpot_ms"]["median"],
        m["ttft_ms"]["median"], m["completed"]))
except Exception as e:
    print("%-6s %-28s error: %s" % (sys.argv[2], sys.argv[3], e))
    sys.exit(1)
PY
      [ $? = 0 ] || { tail -n 6 "$WORK/bench.log"; tail -n 4 "$WORK/serve.log"; }
    else
      echo "$m $s: the server did not become healthy"; tail -n 5 "$WORK/serve.log"
    fi
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    case "$s" in profile*) sed -n '/dsrt profile/,$p' "$WORK/serve.log" | head -n 40 ;; esac
    if [ -n "${SERVE_LOG_DIR:-}" ]; then
      mkdir -p "$SERVE_LOG_DIR" && cp "$WORK/serve.log" "$SERVE_LOG_DIR/${m}_$(echo "$s" | tr -c 'A-Za-z0-9.=_-' '_').log"
    fi
  done
done
rm -rf "$WORK"
