# Tensor-parallel benchmarks: the `tp` section of tools/gpu/bench.sh (sourced by it; uses its
# B, PLANS, DSRT, DSBENCH, PY, PORT, GEN_ARGS, SERVE_ARGS, ids(), note(), cmdlog(), model_name()).
# Each part is skipped when fewer GPUs than ranks are visible or a plan is missing; TP_PARTS picks
# parts (default "decode nccl profile serve": about 3-4 minutes on 4 GPUs).
#   tp_decode_32B_tpN.json   dsrt generate --tp N, 32 prompt ids, 128 new tokens (N = 1, 2, 4; the
#                            TP 1 run is repeated here so that every figure comes from one card;
#                            TP 1 and 2 alternate TP_DECODE_REPEATS times, default 2, best run kept;
#                            every run is in tp_decode_*.rep<i>.json);
#                            tp_decode_32B_tp2_nccl.json: TP 2 with --disable-custom-all-reduce;
#                            tp_decode_32B_tp2_custom.json: TP 2 with the custom kernel forced
#                            (DSRT_CUSTOM_ALLREDUCE=1; by default dsrt times it against NCCL at start-up);
#                            tp_decode_32B_tp2_staged.json: the same without its LL protocol
#                            (DSRT_CUSTOM_ALLREDUCE_LL=0); tp_decode_32B_tp2_tppipe.json: TP 2 with
#                            pipelined sampling on every rank (DSRT_TP_PIPELINED_SAMPLING=1)
#   tp_nccl_tpN.log          ds_cuda_dist_tests NcclBandwidth on N GPUs: all_reduce bus bandwidth
#                            at 64 MiB and at decode sizes (5120 x 1..256 rows), eager and graph;
#                            AllReduceProtocols: us per call of the custom kernel's LL and staged
#                            protocols and NCCL over f32 decode rows (5120 x 1..12)
#   tp_profile_32B_tpN.log   DSRT_PROFILE=1, graphs off: per-instruction GPU time of eager decode
#                            steps; all_reduce's share of the step span (rank 0's profile first)
#   tp_serve_32B_tp2.json    dsbench 256 x (512 in / 128 out) against dsrt serve --tp 2
tp_ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
tp_plan() { if [ "$2" = 1 ]; then echo "$PLANS/$(model_name "$1").sm_90a.dsplan"; else echo "$PLANS/$(model_name "$1").sm_90a.tp$2.dsplan"; fi; }
note "tp: $tp_ngpu GPU(s)"
tp_prompt="$(ids 32 1)"
tp_part() { case " ${TP_PARTS:-decode nccl profile serve} " in *" $1 "*) return 0;; esac; return 1; }
# tp_decode NAME [ENV=VALUE ...] -- DSRT_ARGS...: one `dsrt generate` run into $B/NAME.rep<i>.json;
# tp_decode_best NAME keeps the run with the most decode tok/s as $B/NAME.json (and its log).
tp_decode() {
  local name="$1" envs=() i
  shift
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  i=$(ls "$B/$name".rep*.json 2>/dev/null | wc -l)
  # shellcheck disable=SC2086
  env "${envs[@]}" timeout 120 "$DSRT" generate "$@" --load-format dummy --prompt-ids "$tp_prompt" --max-new-tokens 128 \
      --ignore-eos --json $GEN_ARGS > "$B/$name.rep$i.json" 2> "$B/$name.rep$i.log" \
    || note "$name (run $i): exit $? (see $name.rep$i.log)"
}
tp_decode_best() {
  local best
  best="$(python3 - "$B/$1".rep*.json <<'EOF2'
import json, sys
runs = []
for p in sys.argv[1:]:
    try:
        runs.append((json.load(open(p))["timings"]["decode_tokens_per_s"], p))
    except Exception:
        pass
print(max(runs)[1] if runs else "")
EOF2
)"
  [ -n "$best" ] || return 0
  cp "$best" "$B/$1.json"
  cp "${best%.json}.log" "$B/$1.log"
}

# 32B decode at TP 1, 2 and 4; TP 1 and TP 2 (the ratio of issue 5) alternate, TP_DECODE_REPEATS
# times each (default 2), and the best run of each counts: the ratio is then less a matter of
# one run's kAuto timing on a noisy host.
if tp_part decode; then
  reps="${TP_DECODE_REPEATS:-2}"
  for rep in $(seq 1 "$reps"); do
    for tp in 1 2 4; do
      plan="$(tp_plan 32B $tp)"
      if [ "$tp_ngpu" -lt "$tp" ] || [ ! -f "$plan" ]; then
        [ "$rep" = 1 ] && note "tp decode 32B tp$tp: skipped ($tp_ngpu GPUs, $plan)"
        continue
      fi
      [ "$tp" = 4 ] && [ "$rep" != 1 ] && continue
      note "tp decode 32B tp$tp (run $rep of $reps)"
      [ "$rep" = 1 ] && cmdlog "tp_decode_32B_tp$tp" "$DSRT generate $plan --tp $tp --load-format dummy --prompt-ids <32 ids> --max-new-tokens 128 --ignore-eos --json $GEN_ARGS (best of $reps for TP 1 and 2)"
      tp_decode "tp_decode_32B_tp$tp" -- "$plan" --tp "$tp"
    done
  done
  for tp in 1 2 4; do tp_decode_best "tp_decode_32B_tp$tp"; done
fi

# TP 2 once more with the custom kernel forced (no start-up timing), with it forced and its staged
# protocol only, and with every all_reduce through NCCL.
plan="$(tp_plan 32B 2)"
if tp_part decode && [ "$tp_ngpu" -ge 2 ] && [ -f "$plan" ]; then
  note "tp decode 32B tp2, custom all-reduce forced"
  cmdlog "tp_decode_32B_tp2_custom" "DSRT_CUSTOM_ALLREDUCE=1 $DSRT generate $plan --tp 2 ... (as above)"
  tp_decode tp_decode_32B_tp2_custom DSRT_CUSTOM_ALLREDUCE=1 -- "$plan" --tp 2
  note "tp decode 32B tp2, custom all-reduce forced, staged protocol only"
  cmdlog "tp_decode_32B_tp2_staged" "DSRT_CUSTOM_ALLREDUCE=1 DSRT_CUSTOM_ALLREDUCE_LL=0 $DSRT generate $plan --tp 2 ... (as above)"
  tp_decode tp_decode_32B_tp2_staged DSRT_CUSTOM_ALLREDUCE=1 DSRT_CUSTOM_ALLREDUCE_LL=0 -- "$plan" --tp 2
  note "tp decode 32B tp2, NCCL only"
  cmdlog "tp_decode_32B_tp2_nccl" "$DSRT generate $plan --tp 2 --disable-custom-all-reduce ... (as above)"
  tp_decode tp_decode_32B_tp2_nccl -- "$plan" --tp 2 --disable-custom-all-reduce
  note "tp decode 32B tp2, pipelined sampling on every rank"
  cmdlog "tp_decode_32B_tp2_tppipe" "DSRT_TP_PIPELINED_SAMPLING=1 $DSRT generate $plan --tp 2 ... (as above)"
  tp_decode tp_decode_32B_tp2_tppipe DSRT_TP_PIPELINED_SAMPLING=1 -- "$plan" --tp 2
  for n in custom staged nccl tppipe; do tp_decode_best "tp_decode_32B_tp2_$n"; done
fi

tp_dist_exe="$(find "$BUILD" -name ds_cuda_dist_tests -type f -executable 2>/dev/null | head -n1)"
tp_part nccl && for tp in 2 4; do
  [ "$tp_ngpu" -ge "$tp" ] && [ -n "$tp_dist_exe" ] || continue
  note "tp nccl bandwidth on $tp GPUs"
  CUDA_VISIBLE_DEVICES="$(seq -s, 0 $((tp - 1)))" timeout 90 "$tp_dist_exe" --gtest_filter='NcclBandwidth.*:AllReduceProtocols.*' \
      > "$B/tp_nccl_tp$tp.log" 2>&1 || note "tp nccl tp$tp: exit $?"
done

tp_part profile && for tp in 2 4; do
  plan="$(tp_plan 32B $tp)"
  [ "$tp_ngpu" -ge "$tp" ] && [ -f "$plan" ] || continue
  note "tp profile 32B tp$tp (eager)"
  cmdlog "tp_profile_32B_tp$tp" "DSRT_PROFILE=1 $DSRT generate $plan --tp $tp --load-format dummy --prompt-ids <32 ids> --max-new-tokens 32 --ignore-eos --disable-cuda-graph --json"
  DSRT_PROFILE=1 timeout 120 "$DSRT" generate "$plan" --tp "$tp" --load-format dummy --prompt-ids "$tp_prompt" \
      --max-new-tokens 32 --ignore-eos --disable-cuda-graph --json > "$B/tp_profile_32B_tp$tp.json" \
      2> "$B/tp_profile_32B_tp$tp.log" || note "tp profile tp$tp: exit $?"
done

plan="$(tp_plan 32B 2)"
if tp_part serve && [ "$tp_ngpu" -ge 2 ] && [ -f "$plan" ] && [ -x "$DSBENCH" ]; then
  port=$((PORT + 7))
  note "tp serve 32B tp2 on port $port"
  cmdlog "tp_serve_32B_tp2" "$DSRT serve $plan --tp 2 --load-format dummy --port $port $SERVE_ARGS; $DSBENCH --dataset random --num-prompts 256 --random-input-len 512 --random-output-len 128 --max-concurrency 256 --warmup 2"
  # shellcheck disable=SC2086
  "$DSRT" serve "$plan" --tp 2 --load-format dummy --host 127.0.0.1 --port "$port" $SERVE_ARGS > "$B/tp_serve_32B_tp2.log" 2>&1 &
  server=$!
  if wait_healthy "$server" "$port" 120; then
    timeout 150 "$DSBENCH" --base-url "http://127.0.0.1:$port" --plan "$plan" --dataset random --num-prompts 256 \
        --random-input-len 512 --random-output-len 128 --max-concurrency 256 --warmup 2 --progress-interval 30 \
        --output-file "$B/tp_serve_32B_tp2.json" > "$B/tp_dsbench_32B_tp2.log" 2>&1 || note "tp dsbench: exit $?"
  else
    note "tp serve: the server did not become healthy (see tp_serve_32B_tp2.log)"
    tail -n 20 "$B/tp_serve_32B_tp2.log" >&2
  fi
  stop_server "$server"
fi
