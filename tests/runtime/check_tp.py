#!/usr/bin/env python3
"""Tensor parallelism end to end: compile FIXTURE with dscc --tp 1/2/4, score the same
ids with dsrt (--tp N in one process, and --nnodes 2 as two processes over loopback: one rank
each at tp 2, two ranks each at tp 4),
and require every logit and logsumexp of the sharded plans to match the unsharded
plan's within --atol. Exit status 0 only if everything matches."""
import argparse
import json
import os
import socket
import subprocess
import sys


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return p.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def by_id(score):
    return [dict(zip(p["top_ids"], p["top_logits"])) for p in score["positions"]], \
           [p["logsumexp"] for p in score["positions"]]


def compare(label, ref, got, atol):
    errors, worst = [], 0.0
    rl, rz = by_id(ref)
    gl, gz = by_id(got)
    if len(rl) != len(gl):
        return [f"{label}: {len(gl)} positions, want {len(rl)}"], worst
    for pos in range(len(rl)):
        if set(rl[pos]) != set(gl[pos]):
            # Only near-ties at the edge of the top-k may differ.
            edge = min(rl[pos].values())
            for i in set(rl[pos]) ^ set(gl[pos]):
                v = rl[pos].get(i, gl[pos].get(i))
                if abs(v - edge) > atol:
                    errors.append(f"{label} pos {pos}: top ids differ at id {i}")
        for i in set(rl[pos]) & set(gl[pos]):
            d = abs(rl[pos][i] - gl[pos][i])
            worst = max(worst, d)
            if d > atol:
                errors.append(f"{label} pos {pos} id {i}: {gl[pos][i]:.6f}, want {rl[pos][i]:.6f}")
        d = abs(rz[pos] - gz[pos])
        worst = max(worst, d)
        if d > atol:
            errors.append(f"{label} pos {pos}: logsumexp {gz[pos]:.6f}, want {rz[pos]:.6f}")
    return errors, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dscc", required=True)
    ap.add_argument("--dsrt", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--top-k", type=int, default=20)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    goldens = json.load(open(os.path.join(args.fixture, "goldens.json")))
    cases = [c["prompt_ids"] for c in goldens["cases"]][:3]

    plans = {}
    for tp in (1, 2, 4):
        plans[tp] = os.path.join(args.workdir, f"tp{tp}.dsplan")
        run([args.dscc, "compile", args.fixture, "-o", plans[tp], "--target", "cpu", "--tp", str(tp)])

    errors, worst = [], 0.0
    for n, ids in enumerate(cases):
        idarg = ",".join(str(i) for i in ids)
        base = ["score", "--ids", idarg, "--top-k", str(args.top_k), "--json"]
        ref = json.loads(run([args.dsrt, base[0], plans[1]] + base[1:]))
        for tp in (2, 4):
            got = json.loads(run([args.dsrt, base[0], plans[tp]] + base[1:] + ["--tp", str(tp)]))
            e, w = compare(f"case {n} --tp {tp}", ref, got, args.atol)
            errors += e
            worst = max(worst, w)
        # Two processes: one rank each (tp 2), and two ranks each (tp 4: --tp 4 --nnodes 2).
        for tp in (2, 4):
            label = f"case {n} --tp {tp} --nnodes 2"
            dist = ["--tp", str(tp), "--nnodes", "2", "--dist-timeout", "60",
                    "--dist-init-addr", f"127.0.0.1:{free_port()}"]
            cmd = [args.dsrt, base[0], plans[tp]] + base[1:] + dist
            follower = subprocess.Popen(cmd + ["--node-rank", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
            try:
                got = json.loads(run(cmd + ["--node-rank", "0"]))
            finally:
                out, err = follower.communicate(timeout=120)
            if follower.returncode != 0:
                errors.append(f"{label}: rank 1 exited {follower.returncode}: {err.strip()}")
            if out.strip():
                errors.append(f"{label}: rank 1 printed {out[:80]!r}")
            e, w = compare(label, ref, got, args.atol)
            errors += e
            worst = max(worst, w)

    print(f"{os.path.basename(os.path.normpath(args.fixture))}: {len(cases)} cases x tp 2/4, in one process and over 2 processes, "
          f"max |logit diff| vs tp 1 {worst:.3e}")
    for e in errors[:40]:
        print("  MISMATCH", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
