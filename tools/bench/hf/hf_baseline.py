#!/usr/bin/env python3
"""Hugging Face transformers baselines for the dsrt benchmarks (runs on the GPU machine).

Builds a random-weight model from a config.json (tools/bench/models/NAME/config.json) in bf16 on
cuda and measures, on the same card as dsrt:
  decode   batch-1 greedy decode with model.generate: 32 prompt tokens, 256 new tokens
           (min_new_tokens = max_new_tokens, so every run generates all of them) -> tok/s
  prefill  one forward pass over a 4096-token prompt (logits of the last position only),
           median of --prefill-reps runs -> ms and TFLOP/s
  cb       continuous batching with model.generate_batch (transformers 5): 256 random prompts of
           512 tokens, 128 new tokens each -> total tok/s = sum(prompt + generated) / s and
           output tok/s
Prints one JSON object (and writes it to --out). A section that fails records its error in the
JSON ("error": ...) and the others still run.

  /opt/torch/.venv/bin/python tools/bench/hf/hf_baseline.py \\
      --config tools/bench/models/DeepSeek-R1-Distill-Qwen-7B/config.json --sections decode,prefill,cb

Needs torch and transformers only (no network: the model is built from the config).
"""

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time
import traceback


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="config.json of the model (a file or its directory)")
    ap.add_argument("--sections", default="decode,prefill,cb", help="comma list of decode, prefill, cb")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attn", default="sdpa", help="attn_implementation for decode/prefill (sdpa, eager, ...)")
    ap.add_argument("--decode-prompt-len", type=int, default=32)
    ap.add_argument("--decode-new-tokens", type=int, default=256)
    ap.add_argument("--decode-reps", type=int, default=3, help="timed decode runs (the median is reported)")
    ap.add_argument("--prefill-len", type=int, default=4096)
    ap.add_argument("--prefill-reps", type=int, default=5)
    ap.add_argument("--cb-requests", type=int, default=256)
    ap.add_argument("--cb-prompt-len", type=int, default=512)
    ap.add_argument("--cb-new-tokens", type=int, default=128)
    ap.add_argument("--cb-config", default="", help="JSON object of ContinuousBatchingConfig fields (optional)")
    ap.add_argument("--out", default="", help="also write the JSON here")
    return ap.parse_args()


def from_config(auto_cls, config, dtype, attn):
    """AutoModel*.from_config across transformers versions (dtype= in 5.x, torch_dtype= before)."""
    try:
        return auto_cls.from_config(config, dtype=dtype, attn_implementation=attn)
    except TypeError:
        return auto_cls.from_config(config, torch_dtype=dtype, attn_implementation=attn)


def log(msg):
    print(f"[hf_baseline] {msg}", file=sys.stderr, flush=True)


def build_model(config_path, attn, seed):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg_dir = config_path if os.path.isdir(config_path) else os.path.dirname(os.path.abspath(config_path))
    config = AutoConfig.from_pretrained(cfg_dir)
    t0 = time.perf_counter()
    # Built directly on the GPU, where transformers' own init is fast. (Skipping it with no_init_weights
    # could leave buffers such as rotary inv_freq uninitialized in some versions.) Then every parameter
    # is refilled from a seeded generator so runs are identical across transformers versions.
    with torch.device("cuda"):
        model = from_config(AutoModelForCausalLM, config, torch.bfloat16, attn)
    gen = torch.Generator(device="cuda").manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.fill_(1.0)
            else:  # matrices and biases
                p.normal_(0.0, 0.02, generator=gen)
        for name, b in model.named_buffers():
            if not torch.isfinite(b.float()).all():
                raise RuntimeError(f"buffer {name} is not finite after init")
    model.eval()
    torch.cuda.synchronize()
    log(f"built {config.architectures} from {cfg_dir} in {time.perf_counter() - t0:.1f} s, "
        f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params, "
        f"{torch.cuda.memory_allocated() / 2**30:.1f} GiB allocated")
    return model, config


def linear_params(config):
    """Parameters that a token's forward pass multiplies with (decoder linears; lm_head counted apart)."""
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads, kv = config.num_attention_heads, getattr(config, "num_key_value_heads", config.num_attention_heads)
    hd = getattr(config, "head_dim", None) or h // heads
    per_layer = h * heads * hd + 2 * h * kv * hd + heads * hd * h + 3 * h * inter
    return per_layer * layers, h * config.vocab_size, hd


def prefill_flops(config, t):
    lin, lm_head, hd = linear_params(config)
    attn = 2 * config.num_hidden_layers * config.num_attention_heads * hd * t * t  # causal QK^T + PV
    return 2 * lin * t + attn + 2 * lm_head  # logits of the last position only


def run_decode(model, config, args):
    import torch
    vocab = config.vocab_size
    g = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(0, vocab, (1, args.decode_prompt_len), generator=g).cuda()
    n = args.decode_new_tokens
    kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        model.generate(ids, **dict(kw, max_new_tokens=16, min_new_tokens=16))  # warm up
        times = []
        for _ in range(args.decode_reps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model.generate(ids, **kw)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    generated = out.shape[1] - ids.shape[1]
    med = statistics.median(times)
    return {"prompt_tokens": args.decode_prompt_len, "new_tokens": int(generated), "seconds": times,
            "tok_per_s": generated / med}


def run_prefill(model, config, args):
    import torch
    g = torch.Generator().manual_seed(args.seed + 2)
    t = args.prefill_len
    ids = torch.randint(0, config.vocab_size, (1, t), generator=g).cuda()
    params = inspect.signature(model.forward).parameters
    kw = {"use_cache": False}
    if "logits_to_keep" in params:
        kw["logits_to_keep"] = 1
    elif "num_logits_to_keep" in params:
        kw["num_logits_to_keep"] = 1
    with torch.no_grad():
        model(ids, **kw)  # warm up
        times = []
        for _ in range(args.prefill_reps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(ids, **kw)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    flops = prefill_flops(config, t)
    return {"tokens": t, "ms": [x * 1e3 for x in times], "median_ms": med * 1e3, "flops": flops,
            "tflop_per_s": flops / med / 1e12, "tok_per_s": t / med}


def run_cb(model, config, args):
    import torch
    from transformers import GenerationConfig

    if not hasattr(model, "generate_batch"):
        raise RuntimeError("this transformers has no model.generate_batch (continuous batching needs transformers 5)")
    g = torch.Generator().manual_seed(args.seed + 3)
    prompts = torch.randint(0, config.vocab_size, (args.cb_requests, args.cb_prompt_len), generator=g).tolist()
    n = args.cb_new_tokens
    # eos_token_id None (continuous batching turns it into -1, disabled): random weights must not stop a
    # request early (the counts are checked below anyway). No min_new_tokens: not needed without EOS.
    gen_cfg = GenerationConfig(max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
    sig = inspect.signature(model.generate_batch).parameters
    kw = {}
    if "generation_config" in sig:
        kw["generation_config"] = gen_cfg
    else:
        raise RuntimeError(f"model.generate_batch{inspect.signature(model.generate_batch)} takes no generation_config")
    if "progress_bar" in sig:
        kw["progress_bar"] = False
    if args.cb_config:
        fields = json.loads(args.cb_config)
        from transformers.generation import ContinuousBatchingConfig
        kw["continuous_batching_config"] = ContinuousBatchingConfig(**fields)
    log(f"generate_batch{inspect.signature(model.generate_batch)}")
    # The manager's warm-up (CUDA graph capture, ~30 s) happens once, in an untimed call that keeps the
    # manager (persistent_manager) for the timed one; without that option the timed call skips warm-up.
    warm_kw = dict(kw)
    timed_kw = dict(kw)
    if "persistent_manager" in sig:
        warm_kw["persistent_manager"] = True
    elif "warmup" in sig:
        timed_kw["warmup"] = False
    with torch.no_grad():
        t0 = time.perf_counter()
        warm = model.generate_batch(inputs=prompts[:8], **warm_kw)
        warm_s = time.perf_counter() - t0
        if len(warm) != 8:
            raise RuntimeError(f"warm-up generate_batch returned {len(warm)} results for 8 prompts")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        outs = model.generate_batch(inputs=prompts, **timed_kw)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    if hasattr(model, "destroy_cached_continuous_batching_manager"):
        model.destroy_cached_continuous_batching_manager()
    results = list(outs.values()) if isinstance(outs, dict) else list(outs)
    gen_tokens = [len(getattr(r, "generated_tokens", []) or []) for r in results]
    errors = [str(getattr(r, "error", "")) for r in results if getattr(r, "error", None)]
    prompt_total = args.cb_requests * args.cb_prompt_len
    out_total = sum(gen_tokens)
    return {"requests": args.cb_requests, "results": len(results), "prompt_len": args.cb_prompt_len,
            "new_tokens": n, "generated_min": min(gen_tokens) if gen_tokens else 0,
            "generated_max": max(gen_tokens) if gen_tokens else 0, "request_errors": errors[:4],
            "warmup_seconds": warm_s, "seconds": dt, "total_tok_per_s": (prompt_total + out_total) / dt, "output_tok_per_s": out_total / dt}


def write_out(path, result):
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(json.dumps(result, indent=1) + "\n")
        os.replace(path + ".tmp", path)


def main():
    args = parse_args()
    import torch
    import transformers

    result = {"tool": "hf_baseline", "config": os.path.abspath(args.config),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "torch": torch.__version__, "transformers": transformers.__version__,
              "python": platform.python_version(), "attn_implementation": args.attn}
    if not torch.cuda.is_available():
        result["error"] = "no CUDA device"
        print(json.dumps(result))
        return 1
    result["device"] = torch.cuda.get_device_name(0)
    torch.manual_seed(args.seed)
    model, config = build_model(args.config, args.attn, args.seed)
    result["params"] = sum(p.numel() for p in model.parameters())
    result["weight_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    runners = {"decode": run_decode, "prefill": run_prefill, "cb": run_cb}
    status = 0
    for s in sections:
        if s not in runners:
            result[s] = {"error": f"unknown section '{s}' (decode, prefill, cb)"}
            status = 1
            continue
        log(f"section {s} ...")
        try:
            result[s] = runners[s](model, config, args)
        except Exception as e:  # keep the other sections' numbers
            traceback.print_exc()
            result[s] = {"error": f"{type(e).__name__}: {e}"}
            status = 1
        torch.cuda.empty_cache()
        log(f"section {s}: {json.dumps(result[s])[:400]}")
        write_out(args.out, result)  # after every section: a later one may be cut off by a time limit
    print(json.dumps(result, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main())
