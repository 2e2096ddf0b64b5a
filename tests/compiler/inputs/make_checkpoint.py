#!/usr/bin/env python3
"""Writes a tiny Hugging Face style checkpoint directory for the dscc lit tests.

Python standard library only (no numpy/torch): safetensors files are written by
hand (8-byte little-endian header length, JSON header, raw little-endian data).
Weights are deterministic pseudo-random bf16 values (seeded), so the same
arguments always produce the same bytes.

The directory gets config.json, model.safetensors (or two shards plus
model.safetensors.index.json with --sharded), tokenizer.json (a valid byte-level
BPE tokenizer: 256 byte tokens, no merges, a few added special tokens),
tokenizer_config.json (with a chat template), and generation_config.json.

Options that break the checkpoint on purpose (--drop, --reshape, --retype) exist
for the importer's error tests; other corruptions (truncated files, malformed
JSON, missing files) are made by the tests themselves with shell commands.

Usage: make_checkpoint.py OUT_DIR [--arch Qwen2ForCausalLM] [--layers 2] ...
"""

import argparse
import json
import os
import random
import struct

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

DTYPE_SIZES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "F8_E4M3": 1}


def bytes_to_unicode():
    """GPT-2 byte-level alphabet: every byte maps to a printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer_json():
    alphabet = bytes_to_unicode()
    vocab = {alphabet[b]: b for b in range(256)}
    added = [{"id": 256 + i, "content": tok, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, tok in enumerate(SPECIAL_TOKENS)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": []},
    }


def tensor_specs(a):
    """(name, shape) of every tensor of the checkpoint, in HF naming."""
    h, i, d = a.hidden, a.intermediate, a.head_dim
    qd, kvd = a.heads * d, a.kv_heads * d
    llama = a.arch == "LlamaForCausalLM"
    qkv_bias = a.attention_bias if llama else True
    specs = [("model.embed_tokens.weight", [a.vocab, h])]
    for l in range(a.layers):
        p = f"model.layers.{l}."
        specs.append((p + "input_layernorm.weight", [h]))
        for proj, rows in (("q_proj", qd), ("k_proj", kvd), ("v_proj", kvd)):
            specs.append((p + f"self_attn.{proj}.weight", [rows, h]))
            if qkv_bias:
                specs.append((p + f"self_attn.{proj}.bias", [rows]))
        specs.append((p + "self_attn.o_proj.weight", [h, qd]))
        if llama and a.attention_bias:
            specs.append((p + "self_attn.o_proj.bias", [h]))
        specs.append((p + "post_attention_layernorm.weight", [h]))
        specs.append((p + "mlp.gate_proj.weight", [i, h]))
        specs.append((p + "mlp.up_proj.weight", [i, h]))
        specs.append((p + "mlp.down_proj.weight", [h, i]))
    specs.append(("model.norm.weight", [h]))
    if not a.tied or a.lm_head_when_tied:
        specs.append(("lm_head.weight", [a.vocab, h]))
    for extra in a.extra:
        specs.append((extra, [4]))
    return specs


def tensor_bytes(rng, dtype, shape, is_norm):
    n = 1
    for s in shape:
        n *= s
    if dtype == "F32":
        vals = [1.0 + rng.gauss(0, 0.05) if is_norm else rng.gauss(0, 0.2) for _ in range(n)]
        return struct.pack(f"<{n}f", *vals)
    if dtype == "BF16":
        vals = [1.0 + rng.gauss(0, 0.05) if is_norm else rng.gauss(0, 0.2) for _ in range(n)]
        raw = struct.pack(f"<{n}f", *vals)
        # Keep the high half of every float32 (truncation is fine for test data).
        return b"".join(raw[k + 2:k + 4] for k in range(0, len(raw), 4))
    return bytes(rng.randrange(256) for _ in range(n * DTYPE_SIZES[dtype]))


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, bytes)."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, data in tensors:
            f.write(data)


def rope_config(a, cfg):
    if a.rope_scaling == "none" and not a.rope_parameters:
        return
    params = {"rope_type": a.rope_scaling if a.rope_scaling != "none" else "default"}
    if a.rope_scaling == "linear":
        params["factor"] = 2.0
    elif a.rope_scaling == "yarn":
        params.update({"factor": 4.0, "original_max_position_embeddings": a.max_pos // 4,
                       "beta_fast": 32.0, "beta_slow": 1.0})
    elif a.rope_scaling == "llama3":
        params.update({"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": a.max_pos // 8})
    if a.rope_parameters:  # transformers >= 5 spelling: theta moves inside
        params["rope_theta"] = cfg.pop("rope_theta")
        cfg["rope_parameters"] = params
    else:
        cfg["rope_scaling"] = params


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--arch", default="Qwen2ForCausalLM")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--explicit-head-dim", action="store_true", help="write head_dim into config.json")
    ap.add_argument("--intermediate", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=320)
    ap.add_argument("--max-pos", type=int, default=256)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--lm-head-when-tied", action="store_true", help="keep lm_head.weight even if tied")
    ap.add_argument("--attention-bias", action="store_true", help="Llama: attention_bias = true")
    ap.add_argument("--dtype", default="BF16", choices=sorted(DTYPE_SIZES))
    ap.add_argument("--sharded", action="store_true", help="two shards + model.safetensors.index.json")
    ap.add_argument("--rope-scaling", default="none", choices=["none", "linear", "yarn", "llama3"])
    ap.add_argument("--rope-parameters", action="store_true", help="transformers-5 'rope_parameters' spelling")
    ap.add_argument("--chat-template-file", action="store_true", help="chat template in chat_template.jinja")
    ap.add_argument("--no-generation-config", action="store_true")
    ap.add_argument("--drop", action="append", default=[], help="omit this tensor")
    ap.add_argument("--reshape", action="append", default=[], help="NAME=D0xD1: store with another shape")
    ap.add_argument("--retype", action="append", default=[], help="NAME=DTYPE: store with another dtype")
    ap.add_argument("--extra", action="append", default=[], help="add an unused tensor of shape [4]")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()

    os.makedirs(a.out_dir, exist_ok=True)
    reshape = {k: [int(x) for x in v.split("x")] for k, v in (r.split("=", 1) for r in a.reshape)}
    retype = dict(r.split("=", 1) for r in a.retype)
    rng = random.Random(a.seed)
    tensors = []
    for name, shape in tensor_specs(a):
        if name in a.drop:
            continue
        shape = reshape.get(name, shape)
        dtype = retype.get(name, a.dtype)
        tensors.append((name, dtype, shape, tensor_bytes(rng, dtype, shape, name.endswith("norm.weight"))))

    if a.sharded:
        half = len(tensors) // 2
        shards = [("model-00001-of-00002.safetensors", tensors[:half]),
                  ("model-00002-of-00002.safetensors", tensors[half:])]
        weight_map = {}
        for fname, part in shards:
            write_safetensors(os.path.join(a.out_dir, fname), part)
            weight_map.update({t[0]: fname for t in part})
        index = {"metadata": {"total_size": sum(len(t[3]) for t in tensors)}, "weight_map": weight_map}
        with open(os.path.join(a.out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
    else:
        write_safetensors(os.path.join(a.out_dir, "model.safetensors"), tensors)

    cfg = {
        "architectures": [a.arch],
        "model_type": "llama" if a.arch == "LlamaForCausalLM" else "qwen2",
        "hidden_size": a.hidden,
        "intermediate_size": a.intermediate,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "vocab_size": a.vocab,
        "max_position_embeddings": a.max_pos,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": a.tied,
        "bos_token_id": 256,
        "eos_token_id": 258,
        "torch_dtype": "bfloat16",
        "use_sliding_window": False,
    }
    if a.explicit_head_dim:
        cfg["head_dim"] = a.head_dim
    if a.arch == "LlamaForCausalLM":
        cfg["attention_bias"] = a.attention_bias
        cfg["mlp_bias"] = False
    rope_config(a, cfg)
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    with open(os.path.join(a.out_dir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, indent=1, ensure_ascii=False)
    tok_cfg = {"bos_token": None, "eos_token": "<|im_end|>",
               "pad_token": {"content": "<|endoftext|>", "special": True},
               "model_max_length": a.max_pos, "tokenizer_class": "Qwen2Tokenizer"}
    if a.chat_template_file:
        with open(os.path.join(a.out_dir, "chat_template.jinja"), "w") as f:
            f.write(CHAT_TEMPLATE)
    else:
        tok_cfg["chat_template"] = CHAT_TEMPLATE
    with open(os.path.join(a.out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)

    if not a.no_generation_config:
        gen = {"bos_token_id": 256, "eos_token_id": [258, 256], "do_sample": True,
               "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}
        with open(os.path.join(a.out_dir, "generation_config.json"), "w") as f:
            json.dump(gen, f, indent=2)


if __name__ == "__main__":
    main()
