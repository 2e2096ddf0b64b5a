#!/usr/bin/env python3
"""Checks `dsrt score --logits-out` for the lit tests (standard library only).

Usage: check_logits_npy.py LOGITS.npy SCORE.json
LOGITS.npy must be a little-endian float32 [T, vocab] array whose rows agree with
the score JSON: row[top_ids[j]] == top_logits[j], no logit above top_logits[0],
and logsumexp(row) == the reported logsumexp (1e-4 relative).
"""
import ast
import json
import math
import struct
import sys


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY" or data[6] != 1:
        sys.exit(f"{path}: not a version 1 .npy file")
    hlen = struct.unpack("<H", data[8:10])[0]
    if (10 + hlen) % 64 != 0:
        sys.exit(f"{path}: header not padded to 64 bytes")
    header = ast.literal_eval(data[10:10 + hlen].decode("latin1"))
    if header["descr"] != "<f4" or header["fortran_order"] or len(header["shape"]) != 2:
        sys.exit(f"{path}: unexpected header {header}")
    rows, cols = header["shape"]
    body = data[10 + hlen:]
    if len(body) != rows * cols * 4:
        sys.exit(f"{path}: {len(body)} data bytes for shape {header['shape']}")
    flat = struct.unpack(f"<{rows * cols}f", body)
    return [flat[r * cols:(r + 1) * cols] for r in range(rows)]


def main():
    rows = read_npy(sys.argv[1])
    with open(sys.argv[2]) as f:
        positions = json.load(f)["positions"]
    if len(rows) != len(positions):
        sys.exit(f"{len(rows)} logit rows for {len(positions)} positions")
    for i, (row, p) in enumerate(zip(rows, positions)):
        for tid, logit in zip(p["top_ids"], p["top_logits"]):
            if struct.unpack("<f", struct.pack("<f", logit))[0] != row[tid]:
                sys.exit(f"position {i}: logit of token {tid} is {row[tid]} in the .npy, {logit} in the JSON")
        if max(row) != row[p["top_ids"][0]]:
            sys.exit(f"position {i}: the .npy has a logit {max(row)} above the JSON's top {p['top_logits'][0]}")
        m = max(row)
        lse = m + math.log(sum(math.exp(x - m) for x in row))
        if abs(lse - p["logsumexp"]) > 1e-4 * max(1.0, abs(lse)):
            sys.exit(f"position {i}: logsumexp {lse} of the .npy row, {p['logsumexp']} in the JSON")
    print(f"ok: {len(rows)} x {len(rows[0])} logits agree with the score JSON")


if __name__ == "__main__":
    main()
