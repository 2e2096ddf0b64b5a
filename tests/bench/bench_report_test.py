#!/usr/bin/env python3
"""tools/gpu/bench_report.py on a bench directory in the formats bench.sh and bench_tp.sh write.

The report only ever runs on the GPU machine, after a device call; an error there loses the call's
summary (session 10, batch 48: the all-reduce protocol table's loop variable shadowed the row list
and the script stopped with AttributeError). This test writes every input the report reads for the
decode and tensor-parallel sections, with the figures of that batch, and checks the rows it prints
and the bench.json it writes.

  bench_report_test.py REPO_ROOT
"""

import json
import os
import subprocess
import sys
import tempfile

NCCL_LOG = """\
[ RUN      ] NcclBandwidth.AllReduceReport
all_reduce bf16 on 2 GPUs (rank 0's stream; bus bandwidth = bytes * 2(N-1)/N / time)
  message             bytes enqueue us   eager us   eager GB/s   graph us   graph GB/s
  64 MiB           67108864      150.4      254.8        263.4      245.8        273.1
  5120 x 1            10240       62.1       68.3          0.1        7.2          1.4
  5120 x 256        2621440       71.1       76.8         34.1       28.0         93.8
[       OK ] NcclBandwidth.AllReduceReport (1618 ms)
[ RUN      ] AllReduceProtocols.DecodeRowsReport
all_reduce of f32 rows of 5120 on 2 GPUs, us per call (graphs of 16 calls, median of 5)
   rows    bytes         LL     staged       NCCL
      1    20480       2.66       6.62       8.76
      2    40960       2.76       6.26       8.50
     12   245760       4.11       7.23      10.46
[       OK ] AllReduceProtocols.DecodeRowsReport (559 ms)
"""


def generate_json(tps, tokens=8):
    return {"output_ids": [49987] * tokens, "text": " " * tokens,
            "timings": {"decode_ms": 1000.0 * (tokens - 1) / tps, "decode_tokens_per_s": tps,
                        "prefill_ms": 38.0, "ttft_ms": 38.0}}


def write_bench_dir(d):
    files = {
        "env.txt": "gpu NVIDIA H200, 143771 MiB, 580.159.04, 1980 MHz\ndate 2026-11-28T19:46:04Z\ncommit 33d809e\n",
        "commands.tsv": "tp_decode_32B_tp2\tdsrt generate PLAN --tp 2 --load-format dummy\n",
        "tp_nccl_tp2.log": NCCL_LOG,
        "tp_decode_32B_tp2.log": "dsrt: decode all-reduce of 20480 bytes: custom kernel 2.3 us, NCCL 8.5 us -> custom kernel\n",
    }
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    jsons = {
        "ceilings.json": {"copy_bandwidth_GBps": 4226.5, "gemm": [{"name": "square 8192^3", "tflops": 819.8}],
                          "prefill_32b_layer_tflops": 738.4},
        "decode_7B.json": generate_json(242.0),
        "tp_decode_32B_tp1.json": generate_json(59.9),
        "tp_decode_32B_tp2.json": generate_json(103.1),
        "tp_decode_32B_tp4.json": generate_json(168.2),
        "tp_decode_32B_tp2_nccl.json": generate_json(93.6),
    }
    for name, obj in jsons.items():
        with open(os.path.join(d, name), "w") as f:
            json.dump(obj, f)


def main():
    root = sys.argv[1]
    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory() as d:
        write_bench_dir(d)
        r = subprocess.run([sys.executable, os.path.join(root, "tools/gpu/bench_report.py"), "--dir", d,
                            "--models", os.path.join(root, "tools/bench/models")],
                           capture_output=True, text=True, timeout=60)
        out = r.stdout
        expect(r.returncode == 0, f"exit status {r.returncode}, stderr:\n{r.stderr}")
        expect("decode bs1 7B" in out and "242.0" in out, "7B decode row")
        expect(">= 255 tok/s (H200), >= 90% copy NO" in out, "7B decode goal not met")
        # 242.0 tok/s x 15.23 GB (every weight, the embedding table included) / 4226.5 GB/s copy.
        expect("all 15.23 GB of weights: 87.2% of copy" in out, "7B all-weights share of copy")
        tp2 = [l for l in out.splitlines() if l.startswith("decode bs1 32B TP 2 ") and "(" not in l]
        expect(len(tp2) == 1 and "1.721" in tp2[0] and "NO" in tp2[0], f"TP 2 row with 1.721x TP 1: {tp2}")
        expect("custom kernel 2.3 us, NCCL 8.5 us -> custom kernel" in out, "start-up all-reduce choice note")
        expect("decode bs1 32B TP 2 (NCCL all_reduce only)" in out, "NCCL-only TP 2 row")
        expect("NCCL all_reduce 64 MiB on 2 GPUs" in out and "273.1" in out, "NCCL bus bandwidth row")
        for rows, ll in (("1", "2.660"), ("12", "4.110")):
            line = [l for l in out.splitlines() if l.startswith(f"custom all_reduce, {rows} f32 row(s) of 5120 on 2 GPUs")]
            expect(len(line) == 1 and ll in line[0], f"protocol row for {rows} row(s): {line}")
        try:
            with open(os.path.join(d, "bench.json")) as f:
                report = json.load(f)
            names = {row["name"] for row in report["rows"]}
            expect("decode bs1 32B TP 4" in names, "bench.json has the TP 4 row")
            expect(report["commit"] == "33d809e" and report["ceilings"]["copy_gb_s"] == 4226.5,
                   "bench.json keeps commit and ceilings")
        except (OSError, ValueError, KeyError) as e:
            failures.append(f"bench.json: {e}")
        if failures:
            print(out)
    for f in failures:
        print(f"FAIL: {f}")
    print("bench_report_test: " + ("ok" if not failures else f"{len(failures)} failure(s)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
