#!/usr/bin/env python3
"""A plain-Python (float64) forward pass of a tiny Qwen2/Llama checkpoint, to
check that a dscc plan computes the model the checkpoint describes.

Reads config.json and the safetensors file(s) of MODEL_DIR, runs the prompt
`--ids`, and compares each position's logits with `dsrt score --json` output
read from stdin (top ids must agree where the reference's top-2 margin is
clear, logits within --atol). Prints one line per position and exits 1 on a
mismatch.

Implements the Hugging Face semantics: RMSNorm, q/k/v (optional biases), neox
rotary embedding (rope_theta, linear scaling, explicit head_dim), causal GQA
attention with 1/sqrt(head_dim) scaling, o_proj (optional bias), SiLU-gated
MLP, final norm, lm_head or tied embeddings. Standard library only.
"""

import argparse
import json
import math
import os
import struct
import sys


def load_tensors(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else ["model.safetensors"]
    tensors = {}
    for name in files:
        with open(os.path.join(model_dir, name), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            data = f.read()
        for key, info in header.items():
            if key == "__metadata__":
                continue
            b, e = info["data_offsets"]
            raw = data[b:e]
            if info["dtype"] == "BF16":
                vals = [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
            elif info["dtype"] == "F32":
                vals = list(struct.unpack(f"<{len(raw) // 4}f", raw))
            else:
                sys.exit(f"unsupported dtype {info['dtype']} for {key}")
            shape = info["shape"]
            if len(shape) == 2:
                vals = [vals[r * shape[1]:(r + 1) * shape[1]] for r in range(shape[0])]
            tensors[key] = vals
    return tensors


def linear(x, w, b=None):
    out = [sum(a * c for a, c in zip(x, row)) for row in w]
    return [o + bb for o, bb in zip(out, b)] if b is not None else out


def rms_norm(x, w, eps):
    s = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
    return [v * s * g for v, g in zip(x, w)]


def rope(vec, heads, dim, pos, theta, factor):
    out = []
    half = dim // 2
    for h in range(heads):
        x = vec[h * dim:(h + 1) * dim]
        for i in range(dim):
            j = i % half
            ang = (pos / factor) * theta ** (-2.0 * j / dim)
            rot = -x[i + half] if i < half else x[i - half]
            out.append(x[i] * math.cos(ang) + rot * math.sin(ang))
    return out


def forward(cfg, t, ids):
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    dim = cfg.get("head_dim") or hidden // heads
    eps = cfg.get("rms_norm_eps", 1e-6)
    rs = cfg.get("rope_scaling") or {}
    theta = cfg.get("rope_theta", 10000.0)
    factor = rs.get("factor", 1.0) if rs.get("rope_type", rs.get("type")) == "linear" else 1.0
    xs = [list(t["model.embed_tokens.weight"][i]) for i in ids]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        g = lambda n: t.get(p + n)
        qs, ks, vs = [], [], []
        for pos, x in enumerate(xs):
            h = rms_norm(x, g("input_layernorm.weight"), eps)
            qs.append(rope(linear(h, g("self_attn.q_proj.weight"), g("self_attn.q_proj.bias")), heads, dim, pos,
                           theta, factor))
            ks.append(rope(linear(h, g("self_attn.k_proj.weight"), g("self_attn.k_proj.bias")), kv_heads, dim,
                           pos, theta, factor))
            vs.append(linear(h, g("self_attn.v_proj.weight"), g("self_attn.v_proj.bias")))
        for pos in range(len(xs)):
            attn = []
            for hd in range(heads):
                kh = hd // (heads // kv_heads)
                q = qs[pos][hd * dim:(hd + 1) * dim]
                scores = [sum(a * b for a, b in zip(q, ks[s][kh * dim:(kh + 1) * dim])) / math.sqrt(dim)
                          for s in range(pos + 1)]
                m = max(scores)
                e = [math.exp(s - m) for s in scores]
                z = sum(e)
                attn += [sum(e[s] / z * vs[s][kh * dim + i] for s in range(pos + 1)) for i in range(dim)]
            o = linear(attn, g("self_attn.o_proj.weight"), g("self_attn.o_proj.bias"))
            x = [a + b for a, b in zip(xs[pos], o)]
            h = rms_norm(x, g("post_attention_layernorm.weight"), eps)
            gate = linear(h, g("mlp.gate_proj.weight"))
            up = linear(h, g("mlp.up_proj.weight"))
            act = [a / (1.0 + math.exp(-a)) * u for a, u in zip(gate, up)]
            xs[pos] = [a + b for a, b in zip(x, linear(act, g("mlp.down_proj.weight")))]
    head = t["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else t["lm_head.weight"]
    return [linear(rms_norm(x, t["model.norm.weight"], eps), head) for x in xs]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--ids", required=True)
    ap.add_argument("--atol", type=float, default=2e-3)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.model_dir, "config.json")))
    ids = [int(v) for v in a.ids.split(",")]
    ref = forward(cfg, load_tensors(a.model_dir), ids)
    got = json.load(sys.stdin)["positions"]
    ok = len(got) == len(ids)
    for pos, (logits, entry) in enumerate(zip(ref, got)):
        order = sorted(range(len(logits)), key=lambda i: -logits[i])
        diff = max(abs(logits[i] - v) for i, v in zip(entry["top_ids"], entry["top_logits"]))
        clear = logits[order[0]] - logits[order[1]] > 10 * a.atol
        top_ok = entry["top_ids"][0] == order[0] or not clear
        ok = ok and top_ok and diff <= a.atol
        print(f"position {pos}: top {entry['top_ids'][0]} (reference {order[0]}), max |diff| {diff:.2e}"
              f" {'ok' if top_ok and diff <= a.atol else 'MISMATCH'}")
    print("reference match" if ok else "reference MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
