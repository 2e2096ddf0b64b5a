#!/usr/bin/env python3
"""dsbench against a real `dsrt serve` (CPU backend) on a compiled fixture.

Compiles the fixture with dscc, starts `dsrt serve PLAN --host 127.0.0.1 --port P` on a free
port, waits for /health, then runs dsbench three times (completions + streaming + Poisson
arrivals with token-exact random prompts; chat + streaming with a concurrency limit; chat on a
JSONL dataset, not streamed) and checks the JSON reports: every request succeeded, output
token counts equal max_tokens (ignore_eos), prompt token counts are exact, latencies are
consistent. Every wait is bounded; the server is always stopped.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

NUM_PROMPTS = 6
INPUT_LEN = 16
OUTPUT_LEN = 8


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc, url, log_path, timeout_s=120):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"dsrt serve exited with {proc.returncode} before it was healthy; log:\n"
                     + open(log_path, errors="replace").read()[-4000:])
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"dsrt serve not healthy after {timeout_s} s")


def run_dsbench(dsbench, args, out_path):
    cmd = [dsbench] + args + ["--output-file", out_path, "--max-duration", "240"]
    print("+", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    print(p.stdout, flush=True)
    if p.returncode != 0:
        sys.exit(f"dsbench failed with {p.returncode}")
    with open(out_path) as f:
        return json.load(f)


def check(report, n, exact_prompt, streamed):
    m = report["metrics"]
    errors = report["errors"]
    assert m["completed"] == n and m["failed"] == 0 and m["aborted"] == 0 and m["not_sent"] == 0, (m, errors)
    assert m["total_output_tokens"] == n * OUTPUT_LEN, m
    for r in report["requests"]:
        assert r["success"] and r["usage_reported"], r
        assert r["output_tokens"] == OUTPUT_LEN, r
        assert 0 < r["ttft_ms"] <= r["e2e_ms"], r
        if exact_prompt:
            # The prompt is exactly INPUT_LEN tokens; the server may add a BOS.
            assert INPUT_LEN <= r["prompt_tokens"] <= INPUT_LEN + 1, r
    assert m["ttft_ms"]["count"] == n and m["e2e_ms"]["count"] == n, m
    assert m["tpot_ms"]["count"] == (n if streamed else 0), m
    if streamed:
        assert m["itl_ms"]["count"] >= n, m  # at least one gap per request (chunks may carry several tokens)
    assert m["request_throughput"] > 0 and m["output_throughput"] > 0, m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dscc", required=True)
    ap.add_argument("--dsrt", required=True)
    ap.add_argument("--dsbench", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    plan = os.path.join(args.workdir, "model.plan")
    subprocess.run([args.dscc, "compile", args.fixture, "-o", plan, "--target", "cpu"], check=True, timeout=300)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = os.path.join(args.workdir, "server.log")
    log = open(log_path, "w")
    server = subprocess.Popen([args.dsrt, "serve", plan, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(server, url, log_path)
        common = ["--base-url", url, "--plan", plan, "--num-prompts", str(NUM_PROMPTS), "--random-input-len",
                  str(INPUT_LEN), "--random-output-len", str(OUTPUT_LEN), "--seed", "3", "--warmup", "1"]
        r1 = run_dsbench(args.dsbench, common + ["--endpoint", "completions", "--request-rate", "20"],
                         os.path.join(args.workdir, "completions.json"))
        check(r1, NUM_PROMPTS, exact_prompt=True, streamed=True)
        r2 = run_dsbench(args.dsbench, common + ["--endpoint", "chat", "--max-concurrency", "2"],
                         os.path.join(args.workdir, "chat.json"))
        check(r2, NUM_PROMPTS, exact_prompt=False, streamed=True)

        dataset = os.path.join(args.workdir, "conversations.jsonl")
        with open(dataset, "w") as f:
            for i in range(NUM_PROMPTS):
                f.write(json.dumps({"messages": [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
                                    "max_tokens": OUTPUT_LEN}) + "\n")
        r3 = run_dsbench(args.dsbench, ["--base-url", url, "--plan", plan, "--dataset", "jsonl", "--dataset-path",
                                        dataset, "--num-prompts", str(NUM_PROMPTS), "--endpoint", "chat",
                                        "--disable-stream", "--warmup", "0"],
                         os.path.join(args.workdir, "jsonl.json"))
        check(r3, NUM_PROMPTS, exact_prompt=False, streamed=False)
        if server.poll() is not None:
            sys.exit(f"dsrt serve died during the benchmark ({server.returncode})")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()
    print("dsbench against dsrt serve: OK")


if __name__ == "__main__":
    main()
