# Tensor parallelism on GPUs: the `tp` section of tools/gpu/run.sh (sourced by it after the
# build; uses its ROOT, BUILD, OUT and row()). Rows, each skipped when fewer GPUs are visible:
#   ds_cuda_executor_tp_tests   TP 2/4 vs TP 1 and CPU on the fixtures, graph == eager, greedy == argmax
#   custom all-reduce tests     ds_cuda_dist_tests CustomAllReduce.* and AllReduceChoice.* on all GPUs
#   e2e bf16 tpN <fixture>      dsrt score --tp N on the fixtures' tpN plans vs the goldens (check_goldens.py --bf16)
#   realshape 1.5B tp           1.5B-shape random model at TP 2/4 vs transformers f32 and vs the TP 1 dsrt run
#                               (ok: each TP variant within 10% of TP 1's error vs f32)
#   2-node tp4 <fixture>        --tp 4 --nnodes 2: two processes of two GPUs each (0,1 / 2,3) vs the
#                               in-process --tp 4 run, same plan (4 GPUs)
#   2-node tp2 <fixture>        two dsrt processes (CUDA_VISIBLE_DEVICES=0 / =1, --nnodes 2, loopback)
#                               vs the in-process --tp 2 run, same plan
#   dead peer                   rank 1 of a 2-process `dsrt serve` killed: rank 0 must exit non-zero
#                               with a message within 30 s
# TP_ROWS picks rows by group (default all): tests (executor TP tests + custom all-reduce tests),
# e2e, realshape, twoproc (both 2-node rows), dead; e.g. TP_ROWS="twoproc dead" on a second call.
# Logs: $OUT/e2e/tp_* (packed into logs.tgz by run.sh).
TP_DSRT="$BUILD/bin/dsrt"
TP_PY="/opt/torch/.venv/bin/python"
[ -x "$TP_PY" ] || TP_PY=python3
TP_LOG="$OUT/e2e"
mkdir -p "$TP_LOG" "$OUT/parts"
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
echo "tp section: $ngpu GPU(s)" >&2
tp_rows() { case " ${TP_ROWS:-tests e2e realshape twoproc dead} " in *" $1 "*) return 0;; esac; return 1; }

exe="$(find "$BUILD" -name ds_cuda_executor_tp_tests -type f -executable | head -n1)"
if ! tp_rows tests; then
  :
elif [ -n "$exe" ]; then
  DS_TEST_TIMEOUT_S=60 timeout 170 "$exe" --gtest_color=no > "$OUT/parts/ds_cuda_executor_tp_tests.log" 2>&1
  prc=$?
  row "ds_cuda_executor_tp_tests" "$([ $prc = 0 ] && echo ok || echo FAIL)" \
      "$(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/parts/ds_cuda_executor_tp_tests.log" | tr '\n' ' ' | cut -c1-80)"
  grep -E '^\[tp\]' "$OUT/parts/ds_cuda_executor_tp_tests.log" | head -12 >&2
  [ $prc = 0 ] || grep -E 'Failure|error|FAILED' "$OUT/parts/ds_cuda_executor_tp_tests.log" | head -20 >&2
else
  row "ds_cuda_executor_tp_tests" "FAIL" "not built"
fi
# The one-shot custom all-reduce kernel's own tests (sums, residual, epochs, graph replays).
dexe="$(find "$BUILD" -name ds_cuda_dist_tests -type f -executable | head -n1)"
if ! tp_rows tests; then
  :
elif [ -n "$dexe" ]; then
  timeout 120 "$dexe" --gtest_color=no --gtest_filter='CustomAllReduce.*:AllReduceChoice.*' > "$OUT/parts/ds_cuda_dist_tests_custom_ar.log" 2>&1
  prc=$?
  row "custom all-reduce tests" "$([ $prc = 0 ] && echo ok || echo FAIL)" \
      "$(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/parts/ds_cuda_dist_tests_custom_ar.log" | tr '\n' ' ' | cut -c1-80)"
fi

# TP 2 on every fixture, TP 4 on qwen2-tiny-r1 (one KV head: shared by 4 ranks); 5 cases each.
tp_rows e2e && for tp in 2 4; do
  models="qwen2-tiny-tied qwen2-tiny-r1 qwen2-tiny-yarn"; [ "$tp" = 4 ] && models="qwen2-tiny-r1"
  for m in $models; do
    plan="$ROOT/.deps/plans/$m.sm_90a.tp$tp.dsplan"
    if [ "$ngpu" -lt "$tp" ]; then row "e2e bf16 tp$tp $m" "SKIP" "$ngpu GPU(s)"; continue; fi
    if [ ! -f "$plan" ]; then row "e2e bf16 tp$tp $m" "SKIP" "no $plan (make_plans.sh)"; continue; fi
    timeout 90 python3 "$ROOT/tests/e2e/check_goldens.py" --bf16 --tp "$tp" --plan "$plan" --dsrt "$TP_DSRT" \
        --fixture "$ROOT/tests/fixtures/$m" --workdir "$TP_LOG/tp${tp}_$m" \
        --extra-dsrt-args "--model-path $ROOT/tests/fixtures/$m" > "$TP_LOG/tp${tp}_$m.log" 2>&1
    erc=$?
    row "e2e bf16 tp$tp $m" "$([ $erc = 0 ] && echo ok || echo FAIL)" "$(grep -E ' cases, ' "$TP_LOG/tp${tp}_$m.log" | cut -c1-110)"
    [ $erc = 0 ] || tail -n 12 "$TP_LOG/tp${tp}_$m.log" >&2
  done
done

# 1.5B shape: one random checkpoint (check_real_shape.py), the TP 1 plan first and the TP 2/4
# plans as further variants on the same prompts (each vs transformers f32 and vs the TP 1 logits).
rs_plan="$ROOT/.deps/plans/DeepSeek-R1-Distill-Qwen-1.5B.sm_90a.dsplan"
variants=(--plan "tp1=$rs_plan")
for tp in 2 4; do
  p="$ROOT/.deps/plans/DeepSeek-R1-Distill-Qwen-1.5B.sm_90a.tp$tp.dsplan"
  [ "$ngpu" -ge "$tp" ] && [ -f "$p" ] && variants+=(--plan "tp$tp=$p")
done
if ! tp_rows realshape; then
  :
elif [ ${#variants[@]} -le 2 ] || [ ! -f "$rs_plan" ]; then
  row "realshape 1.5B tp" "SKIP" "no tp plans or $ngpu GPU(s)"
else
  timeout 240 "$TP_PY" "$ROOT/tools/gpu/check_real_shape.py" --dsrt "$TP_DSRT" "${variants[@]}" --prompts 2 \
      --workdir /tmp/ds_real_shape_tp --out "$TP_LOG/tp_realshape.json" > /dev/null 2> "$TP_LOG/tp_realshape.log"
  summary="$(python3 - "$TP_LOG/tp_realshape.json" <<'EOF2' 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
# Verdict: tensor parallelism adds no error of its own: every TP variant is within 10% of the TP 1
# run's relative L2 error against transformers float32 (whose own 1e-2 goal is the TP 1 row's).
ok, out, base = True, [], None
for v in r.get("variants", []):
    f32 = [e.get("dsrt_vs_f32", {}).get("rel_l2", float("inf")) for e in v["results"]]
    first = [e["dsrt_vs_first"]["rel_l2"] for e in v["results"] if "dsrt_vs_first" in e]
    worst = max(f32) if f32 else float("inf")
    if base is None:
        base = worst
    else:
        ok = ok and worst <= 1.1 * base
    out.append(f"{v['label']}: relL2 vs f32 {worst:.2e}" + (f", vs tp1 {max(first):.2e}" if first else ""))
print("; ".join(out) or r.get("error", "no results"))
sys.exit(0 if ok and len(out) > 1 else 1)
EOF2
)"
  rrc=$?
  row "realshape 1.5B tp" "$([ $rrc = 0 ] && echo ok || echo FAIL)" "$summary"
  [ $rrc = 0 ] || tail -n 15 "$TP_LOG/tp_realshape.log" >&2
fi

# tp_compare REF OUT: top logits of two `dsrt score --json` runs agree (prints a summary).
tp_compare() {
  python3 - "$1" "$2" <<'EOF' 2>&1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
pa, pb = a.get("positions", a), b.get("positions", b)
if len(pa) != len(pb):
    print(f"{len(pa)} vs {len(pb)} positions"); sys.exit(1)
worst, flips = 0.0, 0
for x, y in zip(pa, pb):
    if x["top_ids"][0] != y["top_ids"][0]:
        flips += 1
    worst = max(worst, max(abs(u - v) for u, v in zip(x["top_logits"], y["top_logits"])))
print(f"{len(pa)} positions, max |top logit diff| {worst:.3g}, top-1 flips {flips}")
sys.exit(0 if flips == 0 and worst < 0.05 else 1)
EOF
}

# Two "nodes" on one host, rendezvous over loopback, vs the same plan in one process:
#   two_process_row LABEL NAME FIXTURE PLAN TP PORT GPUS0 GPUS1 [DIST_ARGS...]
# scores 48 positions with `--tp TP` in one process (reference), then with rank 0 on GPUS0 and rank 1 on
# GPUS1 (`--nnodes 2 DIST_ARGS`), and prints one row comparing rank 0's scores with the reference.
tp_ids="$(python3 -c "print(','.join(str((i * 7919 + 13) % 1900 + 20) for i in range(48)))")"
two_process_row() {
  local label="$1" name="$2" fixture="$3" plan="$4" tp="$5" port="$6" g0="$7" g1="$8"
  shift 8
  local common=(--model-path "$ROOT/tests/fixtures/$fixture" --ids "$tp_ids" --top-k 5 --json)
  local dist=("$@" --nnodes 2 --dist-init-addr "127.0.0.1:$port" --dist-timeout 30)
  local r1 rc0 rc1 cmp_msg crc
  timeout 60 "$TP_DSRT" score "$plan" --tp "$tp" "${common[@]}" > "$TP_LOG/${name}_ref.json" 2> "$TP_LOG/${name}_ref.log"
  CUDA_VISIBLE_DEVICES="$g1" timeout 60 "$TP_DSRT" score "$plan" "${common[@]}" "${dist[@]}" --node-rank 1 \
      > "$TP_LOG/${name}_r1.json" 2> "$TP_LOG/${name}_r1.log" &
  r1=$!
  CUDA_VISIBLE_DEVICES="$g0" timeout 60 "$TP_DSRT" score "$plan" "${common[@]}" "${dist[@]}" --node-rank 0 \
      > "$TP_LOG/${name}_r0.json" 2> "$TP_LOG/${name}_r0.log"
  rc0=$?
  wait $r1; rc1=$?
  cmp_msg="$(tp_compare "$TP_LOG/${name}_ref.json" "$TP_LOG/${name}_r0.json")"
  crc=$?
  row "$label" "$([ $rc0 = 0 ] && [ $rc1 = 0 ] && [ $crc = 0 ] && echo ok || echo FAIL)" "exit $rc0/$rc1; $cmp_msg"
  [ $rc0 = 0 ] && [ $rc1 = 0 ] || tail -n 5 "$TP_LOG/${name}_r0.log" "$TP_LOG/${name}_r1.log" >&2
}

# --tp 4 --nnodes 2: two ranks (GPUs) per process.
m=qwen2-tiny-r1
plan="$ROOT/.deps/plans/$m.sm_90a.tp4.dsplan"
if ! tp_rows twoproc; then
  :
elif [ "$ngpu" -lt 4 ] || [ ! -f "$plan" ]; then
  row "2-node tp4 $m (2 GPUs each)" "SKIP" "$ngpu GPU(s) or no plan"
else
  two_process_row "2-node tp4 $m (2 GPUs each)" tp4_2node "$m" "$plan" 4 $((28000 + RANDOM % 1000)) 0,1 2,3 --tp 4
fi

# One process per GPU.
m=qwen2-tiny-tied
plan="$ROOT/.deps/plans/$m.sm_90a.tp2.dsplan"
if [ "$ngpu" -lt 2 ] || [ ! -f "$plan" ]; then
  tp_rows twoproc && row "2-node tp2 $m" "SKIP" "$ngpu GPU(s) or no plan"
  tp_rows dead && row "dead peer" "SKIP" "$ngpu GPU(s) or no plan"
else
  tp_rows twoproc && two_process_row "2-node tp2 $m" tp_2node "$m" "$plan" 2 $((29000 + RANDOM % 1000)) 0 1
fi
if [ "$ngpu" -ge 2 ] && [ -f "$plan" ] && tp_rows dead; then

  # Dead peer: kill -9 rank 1 of a serving pair, then send a request to rank 0.
  port=$((30000 + RANDOM % 1000)); hport=$((31000 + RANDOM % 1000))
  dist=(--nnodes 2 --dist-init-addr "127.0.0.1:$port" --dist-timeout 20 --model-path "$ROOT/tests/fixtures/$m"
        --mem-fraction-static 0.1)
  CUDA_VISIBLE_DEVICES=1 "$TP_DSRT" serve "$plan" "${dist[@]}" --node-rank 1 --port $((hport + 1)) \
      > "$TP_LOG/tp_dead_r1.log" 2>&1 &
  d1=$!
  CUDA_VISIBLE_DEVICES=0 "$TP_DSRT" serve "$plan" "${dist[@]}" --node-rank 0 --host 127.0.0.1 --port $hport \
      > "$TP_LOG/tp_dead_r0.log" 2>&1 &
  d0=$!
  ready=0
  for _ in $(seq 1 90); do
    kill -0 $d0 2>/dev/null || break
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$hport/health', timeout=2)" 2>/dev/null; then
      ready=1; break
    fi
    sleep 0.5
  done
  if [ $ready = 1 ]; then
    kill -9 $d1
    t_kill=$(date +%s%N)
    python3 -c "
import json, urllib.request
req = urllib.request.Request('http://127.0.0.1:$hport/v1/completions', data=json.dumps({'prompt': [1, 2, 3], 'max_tokens': 8}).encode(), headers={'Content-Type': 'application/json'})
try: urllib.request.urlopen(req, timeout=40)
except Exception as e: print('request:', e)
" > "$TP_LOG/tp_dead_req.log" 2>&1 &
    dead_rc=timeout
    for _ in $(seq 1 70); do
      if ! kill -0 $d0 2>/dev/null; then wait $d0; dead_rc=$?; break; fi
      sleep 0.5
    done
    secs=$(( ($(date +%s%N) - t_kill) / 1000000000 ))
    msg="$(grep -m1 -E 'error' "$TP_LOG/tp_dead_r0.log" | cut -c1-90)"
    ok=FAIL; [ "$dead_rc" != timeout ] && [ "$dead_rc" != 0 ] && [ "$secs" -le 30 ] && ok=ok
    row "dead peer" "$ok" "rank 0 exit $dead_rc after ${secs}s: $msg"
  else
    row "dead peer" "FAIL" "serving pair never became healthy"
    tail -n 5 "$TP_LOG/tp_dead_r0.log" "$TP_LOG/tp_dead_r1.log" >&2
  fi
  kill -9 $d0 $d1 2>/dev/null
  wait $d0 $d1 2>/dev/null
fi
