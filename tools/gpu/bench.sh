#!/usr/bin/env bash
# Runs ON the GPU machine after tools/gpu/run.sh built everything (build-gpu/), with the plans of
# tools/bench/models/make_plans.sh carried in .deps/plans/ (`carry: [".deps"]`):
#
#   tools/gpu/bench.sh [SECTION...]      default: all = ceilings decode prefill serve hf realshape
#
#   ceilings   build-gpu ds_gpu_ceilings: copy bandwidth, bf16 GEMM TFLOP/s (the % of ceiling)
#   decode     batch-1 decode, 7B and 32B: dsrt generate --load-format dummy, 32 prompt ids,
#              256 new tokens, --ignore-eos --json (timing fields of dsrt generate --json)
#   prefill    32B prefill of 4096 tokens: --max-new-tokens 1 --chunked-prefill-size 4096
#   serve      dsrt serve 32B --load-format dummy + dsbench 256 x (512 in / 128 out), all at once;
#              the startup breakdown is taken from the serve log; then 5 x 4096-token prompts one at
#              a time (1 output token): the median TTFT is a warm 32B prefill figure
#   hf         transformers baselines (tools/bench/hf/hf_baseline.py): 7B decode; 32B decode,
#              prefill and continuous batching — on the same card, in the same call
#   realshape  tools/gpu/check_real_shape.py: 1.5B-shape random model, dsrt vs transformers logits
#   tp         (not in all; 2-4 GPUs) tensor parallelism, tools/gpu/bench_tp.sh: 32B decode bs1 at
#              TP 1/2/4, NCCL all_reduce bus bandwidth, all_reduce share of eager decode steps
#              (DSRT_PROFILE=1), dsbench serving of 32B at TP 2
#
# One device call runs at most 10 minutes and starts with an empty $OUT, so run the sections in
# a few calls (e.g. `ceilings decode prefill realshape`, then `serve`, then `hf`) and merge them on
# the development machine: `mkdir -p m1 && tar -xzf CALL1/bench.tgz -C m1` (likewise m2, ...), then
# `python3 tools/gpu/bench_report.py --dir m1/bench --dir m2/bench ... --models tools/bench/models`.
#
# Every section writes JSON and logs under $OUT/bench/; at the end tools/gpu/bench_report.py prints
# a table (tok/s, GB/s or TFLOP/s, % of ceiling, x vs HF, goal), saved as $OUT/bench_report.txt,
# and writes $OUT/bench.json with card, date, commit and the commands; everything else is packed
# into $OUT/bench.tgz (few files come back from a device call). Environment: BUILD_DIR (build-gpu), OUT (gpu-out),
# PLANS (.deps/plans), PY (/opt/torch/.venv/bin/python), DECODE_MODELS ("7B 32B"), SERVE_MODEL (32B),
# PORT (30123), SERVE_ARGS / GEN_ARGS (extra dsrt flags), HF_MODELS ("7B 32B"), HF_7B_SECTIONS (decode),
# HF_32B_SECTIONS (decode,prefill,cb), HF_CB_ARGS (extra hf_baseline.py flags).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
OUT="${OUT:-$ROOT/gpu-out}"
PLANS="${PLANS:-$ROOT/.deps/plans}"
bash "$ROOT/tools/gpu/pack_plans.sh" --unpack  # plans travel packed (pack_plans.sh)
PY="${PY:-/opt/torch/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
DECODE_MODELS="${DECODE_MODELS:-7B 32B}"
SERVE_MODEL="${SERVE_MODEL:-32B}"
PORT="${PORT:-30123}"
SERVE_ARGS="${SERVE_ARGS:-}"
GEN_ARGS="${GEN_ARGS:-}"
HF_CB_ARGS="${HF_CB_ARGS:-}"
B="$OUT/bench"
mkdir -p "$B"
export PATH="/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH"

sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(all)
want() { local s; for s in "${sections[@]}"; do [ "$s" = all ] || [ "$s" = "$1" ] && return 0; done; return 1; }
for s in "${sections[@]}"; do
  case "$s" in all|ceilings|decode|prefill|serve|hf|realshape|tp) ;;
    *) echo "bench.sh: unknown section '$s' (all ceilings decode prefill serve hf realshape tp)" >&2; exit 2;; esac
done

model_name() { echo "DeepSeek-R1-Distill-Qwen-$1"; }
plan_of() { echo "$PLANS/$(model_name "$1").sm_90a.dsplan"; }
config_of() { echo "$ROOT/tools/bench/models/$(model_name "$1")/config.json"; }
# N deterministic token ids (comma separated) below the vocabulary of every benchmark model.
ids() { "$PY" -c "import random; r = random.Random($2); print(','.join(str(r.randrange(1000, 150000)) for _ in range($1)))"; }
note() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }
# Records the exact command of a section for docs/PERF.md.
cmdlog() { printf '%s\t%s\n' "$1" "$2" >> "$B/commands.tsv"; }
# Server helpers (serve here, tp serve in bench_tp.sh): wait_healthy PID PORT TRIES polls /health every
# 0.5 s while PID lives (status 0 once healthy); stop_server PID ends it (TERM, then KILL after 20 s).
wait_healthy() {
  local _
  for _ in $(seq 1 "$3"); do
    kill -0 "$1" 2>/dev/null || return 1
    "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$2/health', timeout=2)" 2>/dev/null && return 0
    sleep 0.5
  done
  return 1
}
stop_server() {
  local _
  kill "$1" 2>/dev/null
  for _ in $(seq 1 40); do kill -0 "$1" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

DSRT="$BUILD/bin/dsrt"
DSBENCH="$BUILD/bin/dsbench"
if [ ! -x "$DSRT" ] && { want decode || want prefill || want serve || want realshape || want tp; }; then
  echo "bench.sh: no $DSRT (run tools/gpu/run.sh build first, or set BUILD_DIR)" >&2
  exit 1
fi
: > "$B/commands.tsv"
{
  echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  # The device tool copies the working tree; its .git may lag behind: COMMIT (set by the caller) wins.
  echo "commit ${COMMIT:-$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)}"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null | sed 's/^/gpu /'
} > "$B/env.txt"

if want ceilings; then
  exe="$(find "$BUILD" -name ds_gpu_ceilings -type f -executable 2>/dev/null | head -n1)"
  if [ -z "$exe" ]; then
    note "ceilings: no ds_gpu_ceilings under $BUILD (skipped)"
  else
    note "ceilings: $exe"
    cmdlog ceilings "$exe --json ceilings.json"
    timeout 300 "$exe" --json "$B/ceilings.json" > "$B/ceilings.log" 2>&1 || note "ceilings: exit $? (see ceilings.log)"
  fi
fi

if want decode; then
  prompt="$(ids 32 1)"
  for m in $DECODE_MODELS; do
    plan="$(plan_of "$m")"
    [ -f "$plan" ] || { note "decode $m: no plan $plan (run tools/bench/models/make_plans.sh)"; continue; }
    note "decode $m"
    cmd="$DSRT generate $plan --load-format dummy --prompt-ids <32 ids> --max-new-tokens 256 --ignore-eos --json $GEN_ARGS"
    cmdlog "decode_$m" "$cmd"
    # shellcheck disable=SC2086
    timeout 600 "$DSRT" generate "$plan" --load-format dummy --prompt-ids "$prompt" --max-new-tokens 256 \
        --ignore-eos --json $GEN_ARGS > "$B/decode_$m.json" 2> "$B/decode_$m.log" \
      || note "decode $m: exit $? (see decode_$m.log)"
  done
fi

if want prefill; then
  m=32B
  plan="$(plan_of $m)"
  if [ -f "$plan" ]; then
    note "prefill $m 4096"
    cmd="$DSRT generate $plan --load-format dummy --prompt-ids <4096 ids> --max-new-tokens 1 --chunked-prefill-size 4096 --ignore-eos --json $GEN_ARGS"
    cmdlog "prefill_$m" "$cmd"
    # shellcheck disable=SC2086
    timeout 600 "$DSRT" generate "$plan" --load-format dummy --prompt-ids "$(ids 4096 2)" --max-new-tokens 1 \
        --chunked-prefill-size 4096 --ignore-eos --json $GEN_ARGS > "$B/prefill_$m.json" 2> "$B/prefill_$m.log" \
      || note "prefill $m: exit $? (see prefill_$m.log)"
  else
    note "prefill: no plan $plan"
  fi
fi

if want serve; then
  m="$SERVE_MODEL"
  plan="$(plan_of "$m")"
  if [ ! -f "$plan" ]; then
    note "serve: no plan $plan"
  elif [ ! -x "$DSBENCH" ]; then
    note "serve: no $DSBENCH"
  else
    note "serve $m on port $PORT"
    cmdlog "serve_$m" "$DSRT serve $plan --load-format dummy --port $PORT $SERVE_ARGS"
    t_start=$(date +%s%N)
    # shellcheck disable=SC2086
    "$DSRT" serve "$plan" --load-format dummy --host 127.0.0.1 --port "$PORT" $SERVE_ARGS > "$B/serve_$m.log" 2>&1 &
    server=$!
    ready=0
    wait_healthy "$server" "$PORT" 600 && ready=1
    t_ready=$(date +%s%N)
    echo "{\"ms_to_health\": $(( (t_ready - t_start) / 1000000 )), \"ready\": $ready}" > "$B/serve_${m}_startup.json"
    if [ "$ready" = 1 ]; then
      cmd="$DSBENCH --base-url http://127.0.0.1:$PORT --plan $plan --dataset random --num-prompts 256 --random-input-len 512 --random-output-len 128 --max-concurrency 256 --warmup 2 --output-file serve_$m.json"
      cmdlog "dsbench_$m" "$cmd"
      timeout 900 "$DSBENCH" --base-url "http://127.0.0.1:$PORT" --plan "$plan" --dataset random --num-prompts 256 \
          --random-input-len 512 --random-output-len 128 --max-concurrency 256 --warmup 2 --progress-interval 30 \
          --output-file "$B/serve_$m.json" > "$B/dsbench_$m.log" 2>&1 || note "dsbench: exit $? (see dsbench_$m.log)"
      # Warm prefill: 4096-token prompts one at a time on the running server; median TTFT ~ prefill time
      # (dsrt generate's prefill_ms above is a cold, single run).
      cmd="$DSBENCH --base-url http://127.0.0.1:$PORT --plan $plan --dataset random --num-prompts 5 --random-input-len 4096 --random-output-len 1 --max-concurrency 1 --warmup 1 --output-file serve_prefill_$m.json"
      cmdlog "serve_prefill_$m" "$cmd"
      timeout 300 "$DSBENCH" --base-url "http://127.0.0.1:$PORT" --plan "$plan" --dataset random --num-prompts 5 \
          --random-input-len 4096 --random-output-len 1 --max-concurrency 1 --warmup 1 --progress-interval 0 \
          --output-file "$B/serve_prefill_$m.json" > "$B/dsbench_prefill_$m.log" 2>&1 \
        || note "dsbench prefill: exit $? (see dsbench_prefill_$m.log)"
    else
      note "serve: the server did not become healthy (see serve_$m.log)"
      tail -n 20 "$B/serve_$m.log" >&2
    fi
    stop_server "$server"
  fi
fi

if want hf; then
  hf="$ROOT/tools/bench/hf/hf_baseline.py"
  for m in ${HF_MODELS:-7B 32B}; do
    if [ "$m" = 7B ]; then secs="${HF_7B_SECTIONS:-decode}"; else secs="${HF_32B_SECTIONS:-decode,prefill,cb}"; fi
    note "hf $m $secs"
    cmdlog "hf_$m" "$PY tools/bench/hf/hf_baseline.py --config $(config_of "$m") --sections $secs $HF_CB_ARGS"
    # shellcheck disable=SC2086
    timeout 1800 "$PY" "$hf" --config "$(config_of "$m")" --sections "$secs" --out "$B/hf_$m.json" $HF_CB_ARGS \
        > /dev/null 2> "$B/hf_$m.log" || note "hf $m: exit $? (see hf_$m.log)"
  done
fi

if want realshape; then
  note "realshape 1.5B"
  cmdlog realshape "$PY tools/gpu/check_real_shape.py --dsrt $DSRT --plan $(plan_of 1.5B)"
  timeout 900 "$PY" "$ROOT/tools/gpu/check_real_shape.py" --dsrt "$DSRT" --plan "$(plan_of 1.5B)" \
      --out "$B/realshape.json" > /dev/null 2> "$B/realshape.log" || note "realshape: exit $? (see realshape.log)"
fi

# tp (only when named: it needs 2-4 GPUs): tools/gpu/bench_tp.sh
if printf '%s\n' "${sections[@]}" | grep -qx tp; then
  source "$ROOT/tools/gpu/bench_tp.sh"
fi

"$PY" "$ROOT/tools/gpu/bench_report.py" --dir "$B" --models "$ROOT/tools/bench/models" | tee "$OUT/bench_report.txt"
# Only a few files come back from a device call: the report, bench.json and one tarball of the rest.
cp "$B/bench.json" "$OUT/bench.json"
tar -czf "$OUT/bench.tgz" -C "$OUT" bench && rm -rf "$B"
