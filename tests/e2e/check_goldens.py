#!/usr/bin/env python3
"""End-to-end golden test: compile a fixture with dscc, run dsrt, compare with transformers.

For every case in FIXTURE/goldens.json (made by tools/fixtures/make_fixtures.py with
transformers in float32):
  * `dsrt score` (teacher-forced): top-k ids identical (exact ties excepted), top-k logits and
    logsumexp within --atol;
  * `dsrt generate --temperature 0`: the golden greedy tokens are reproduced up to the first
    step whose golden top-2 margin is <= --margin (after that the two may legitimately diverge);
  * where the case has prompt text tokenized with special tokens, `dsrt generate --prompt`
    gives the same tokens as `--prompt-ids` (checks the tokenizer wiring end to end).
Exit status 0 only if everything matches. Reports the maximum errors seen.
"""
import argparse
import json
import os
import subprocess
import sys


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return p.stdout


def compare_score(case, got, top_k, atol, tie_tol):
    errors, max_err = [], 0.0
    want = case["score"]
    if len(got["positions"]) != len(want):
        return [f"{case['name']}: {len(got['positions'])} positions, want {len(want)}"], max_err
    for pos, (g, w) in enumerate(zip(got["positions"], want)):
        wl, gl = w["top_logits"][:top_k], g["top_logits"][:top_k]
        wi, gi = w["top_ids"][:top_k], g["top_ids"][:top_k]
        if len(gi) != len(wi):
            errors.append(f"{case['name']} pos {pos}: {len(gi)} top ids, want {len(wi)}")
            continue
        for r in range(len(wi)):
            if gi[r] != wi[r]:
                # Accept a swap only between (numerically) tied candidates.
                tied = any(abs(wl[r] - wl[s]) < tie_tol for s in (r - 1, r + 1) if 0 <= s < len(wl))
                if not tied:
                    errors.append(f"{case['name']} pos {pos} rank {r}: id {gi[r]}, want {wi[r]}")
            max_err = max(max_err, abs(gl[r] - wl[r]))
            if abs(gl[r] - wl[r]) > atol:
                errors.append(f"{case['name']} pos {pos} rank {r}: logit {gl[r]:.6f}, want {wl[r]:.6f}")
        d = abs(g["logsumexp"] - w["logsumexp"])
        max_err = max(max_err, d)
        if d > atol:
            errors.append(f"{case['name']} pos {pos}: logsumexp {g['logsumexp']:.6f}, want {w['logsumexp']:.6f}")
    return errors, max_err


def compare_greedy(case, got_ids, margin):
    want = case["greedy"]["output_ids"]
    margins = case["greedy"]["top2_margins"]
    checked = 0
    for i, w in enumerate(want):
        if i >= len(got_ids):
            return [f"{case['name']}: generated {len(got_ids)} tokens, want {len(want)}"], checked
        if got_ids[i] != w:
            if margins[i] <= margin:
                return [], checked  # legitimately ambiguous step: stop comparing here
            return [f"{case['name']}: greedy token {i} is {got_ids[i]}, want {w} (margin {margins[i]:.4f})"], checked
        checked += 1
        if margins[i] <= margin:
            return [], checked  # later tokens depend on an ambiguous choice
    return [], checked


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dscc", required=True)
    ap.add_argument("--dsrt", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--target", default="cpu")
    ap.add_argument("--atol", type=float, default=2e-3)
    ap.add_argument("--margin", type=float, default=1e-2)
    ap.add_argument("--tie-tol", type=float, default=1e-4)
    ap.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (dscc --tp, dsrt --tp)")
    ap.add_argument("--extra-dsrt-args", default="")
    args = ap.parse_args()

    goldens = json.load(open(os.path.join(args.fixture, "goldens.json")))
    os.makedirs(args.workdir, exist_ok=True)
    plan = os.path.join(args.workdir, os.path.basename(os.path.normpath(args.fixture)) + f".tp{args.tp}.dsplan")
    run([args.dscc, "compile", args.fixture, "-o", plan, "--target", args.target, "--tp", str(args.tp)])
    extra = args.extra_dsrt_args.split() + (["--tp", str(args.tp)] if args.tp > 1 else [])

    errors, max_err, greedy_checked = [], 0.0, 0
    top_k = goldens["top_k"]
    for case in goldens["cases"]:
        ids = ",".join(str(i) for i in case["prompt_ids"])
        got = json.loads(run([args.dsrt, "score", plan, "--ids", ids, "--top-k", str(top_k), "--json"] + extra))
        e, m = compare_score(case, got, top_k, args.atol, args.tie_tol)
        errors += e
        max_err = max(max_err, m)

        n = case["greedy"]["max_new_tokens"]
        gen = [args.dsrt, "generate", plan, "--max-new-tokens", str(n), "--temperature", "0",
               "--ignore-eos", "--json"] + extra
        got_ids = json.loads(run(gen + ["--prompt-ids", ids]))["output_ids"]
        e, c = compare_greedy(case, got_ids, args.margin)
        errors += e
        greedy_checked += c

        if case.get("add_special_tokens", True) and case.get("prompt_text") is not None \
                and case.get("prompt_text_roundtrip", True):
            via_text = json.loads(run(gen + ["--prompt", case["prompt_text"]]))["output_ids"]
            if via_text != got_ids:
                errors.append(f"{case['name']}: --prompt gives {via_text[:8]}..., --prompt-ids gives {got_ids[:8]}...")

    name = goldens.get("fixture", args.fixture) + (f" (tp {args.tp})" if args.tp > 1 else "")
    print(f"{name}: {len(goldens['cases'])} cases, max |logit err| {max_err:.3e}, "
          f"{greedy_checked} greedy tokens checked")
    for e in errors[:40]:
        print("  MISMATCH", e)
    if errors:
        print(f"{len(errors)} mismatches")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
