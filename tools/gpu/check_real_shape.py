#!/usr/bin/env python3
"""Real-shape correctness check of dsrt against transformers (runs on the GPU machine).

1. Builds a seeded random model of the DeepSeek-R1-Distill-Qwen-1.5B shape with transformers
   (tools/bench/models/DeepSeek-R1-Distill-Qwen-1.5B/config.json) and saves it to --workdir as one
   bf16 model.safetensors plus config.json.
2. Reference logits, teacher-forced, for --prompts random prompts of --len tokens: a float32 model
   holding exactly the saved bf16 weights (the "truth"), and the bf16 model itself (to show the
   size of plain bf16 rounding).
3. Runs `dsrt score PLAN --model-path WORKDIR --ids ... --logits-out X.npy` for each prompt and
   each plan; the plans are compiled from config.json alone (tools/bench/models/make_plans.sh:
   .deps/plans/DeepSeek-R1-Distill-Qwen-1.5B.sm_90a.dsplan, whose residual stream and o_proj/
   down_proj outputs are float32, ...sm_90a.res-bf16.dsplan (`dscc --residual-dtype bf16`) and
   ...sm_90a.proj-bf16.dsplan (`--proj-out-dtype bf16`: f32 residual, bf16 o/down outputs), so
   they load the checkpoint through --model-path. --plan may be repeated (LABEL=PATH or PATH);
   given once, the plan's .res-bf16 and .proj-bf16 siblings are added when they exist
   (--no-sibling: not).
4. Reports per prompt the relative L2 error of the full logits (||dsrt - ref|| / ||ref||, goal
   < 1e-2), max abs error and greedy-token agreement, for dsrt vs the float32 model, dsrt vs the
   bf16 model, and the bf16 model vs the float32 one (the bf16 noise floor at this shape), as JSON
   (stdout and --out); "as_close_as_hf_bf16" says whether dsrt is at least as close to float32
   as transformers-bf16 is. "bf16_floors_vs_f32": the float32 model with only bf16 GEMM inputs
   ("linear_in") and also bf16 GEMM outputs and q/k/v ("linear_io_kv") against itself: the
   part of the error no bf16 implementation avoids. "hf_bf16_backends_vs_hf_bf16": transformers-bf16
   run with torch's sdpa attention and with cuBLAS's reduced-precision reduction toggled, against
   the reference transformers-bf16 run (eager attention): how far two runs of the same bf16 code
   are apart (--init hf: transformers' own initialisation instead of this script's).
   The first plan's results are the top-level "results" / "pass";
   "variants" lists every plan's. Exit status 1 when a prompt of the first plan misses the goal.

  /opt/torch/.venv/bin/python tools/gpu/check_real_shape.py --dsrt build-gpu/bin/dsrt \\
      --plan .deps/plans/DeepSeek-R1-Distill-Qwen-1.5B.sm_90a.dsplan --out $OUT/real_shape.json
"""

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsrt", default=os.path.join(ROOT, "build-gpu", "bin", "dsrt"))
    ap.add_argument("--plan", action="append", default=[],
                    help="[LABEL=]PATH of a plan to check (repeatable; default: the 1.5B bench plan)")
    ap.add_argument("--no-sibling", action="store_true",
                    help="with one --plan, do not add its .res-bf16 sibling plan")
    ap.add_argument("--config", default=os.path.join(ROOT, "tools", "bench", "models",
                                                     "DeepSeek-R1-Distill-Qwen-1.5B", "config.json"))
    ap.add_argument("--workdir", default="/tmp/ds_real_shape")
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--len", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--std", type=float, default=0.02, help="std of the random weights (norms are 1)")
    ap.add_argument("--init", choices=["ds", "hf"], default="ds",
                    help="ds: every weight and bias N(0, std), norm weights 1 + 0.1 N(0, 1) (a dropped norm "
                         "weight shows); hf: transformers' own initialisation from config.json "
                         "(initializer_range, zero biases, unit norms)")
    ap.add_argument("--goal", type=float, default=1e-2, help="relative L2 error goal")
    ap.add_argument("--dsrt-args", default="", help="extra dsrt score arguments (space separated)")
    ap.add_argument("--out", default="")
    return ap.parse_args()


def from_config(auto_cls, config, dtype, attn):
    """AutoModel*.from_config across transformers versions (dtype= in 5.x, torch_dtype= before)."""
    try:
        return auto_cls.from_config(config, dtype=dtype, attn_implementation=attn)
    except TypeError:
        return auto_cls.from_config(config, torch_dtype=dtype, attn_implementation=attn)


def log(msg):
    print(f"[check_real_shape] {msg}", file=sys.stderr, flush=True)


def build_and_save(args):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(os.path.dirname(os.path.abspath(args.config)))
    torch.manual_seed(args.seed)
    with torch.device("cuda"):
        model = from_config(AutoModelForCausalLM, config, torch.bfloat16, "eager")
    gen = torch.Generator(device="cuda").manual_seed(args.seed)
    with torch.no_grad():
        for name, p in (model.named_parameters() if args.init == "ds" else []):
            if p.dim() == 1 and "norm" in name:
                # Norm weights near 1 (not exactly, so that a dropped norm weight shows).
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen, device="cuda", dtype=torch.float32))
            else:
                p.copy_(args.std * torch.randn(p.shape, generator=gen, device="cuda", dtype=torch.float32))
    model.eval()
    os.makedirs(args.workdir, exist_ok=True)
    for f in os.listdir(args.workdir):
        if f.endswith(".safetensors") or f.endswith(".json"):
            os.remove(os.path.join(args.workdir, f))
    import inspect
    save_kw = {"max_shard_size": "1000GB"}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        save_kw["safe_serialization"] = True
    model.save_pretrained(args.workdir, **save_kw)
    files = sorted(os.listdir(args.workdir))
    if "model.safetensors" not in files:
        raise RuntimeError(f"save_pretrained wrote {files}, expected a single model.safetensors")
    log(f"saved {args.workdir}: {files}")
    return model, config


def reference_logits(model, config, prompts):
    """Teacher-forced logits of the bf16 model and of a float32 copy of its (bf16) weights."""
    import torch
    from transformers import AutoModelForCausalLM

    out_bf16 = []
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([p], device="cuda")
            out_bf16.append(model(ids, use_cache=False).logits[0].float().cpu())
    # float32 model with the same weights; built anew so rotary inv_freq is computed in float32.
    with torch.device("cuda"):
        ref = from_config(AutoModelForCausalLM, config, torch.float32, "eager")
    src = model.state_dict()
    ref.load_state_dict({k: v.float() for k, v in src.items()}, strict=True)
    ref.eval()
    missing = [k for k, v in ref.state_dict().items() if k in src and not torch.equal(v, src[k].float())]
    if missing:
        raise RuntimeError(f"float32 reference differs from the bf16 model in {missing[:4]}")
    def run(m):
        out = []
        with torch.no_grad():
            for p in prompts:
                ids = torch.tensor([p], device="cuda")
                out.append(m(ids, use_cache=False).logits[0].float().cpu())
        return out

    out_f32 = run(ref)
    floors = bf16_floors(ref, run)
    del ref
    torch.cuda.empty_cache()
    return out_f32, out_bf16, floors, hf_bf16_backends(model, config, run)


def hf_bf16_backends(model, config, run):
    """Logits of transformers-bf16 run other ways than the reference (eager attention, default
    cuBLAS settings): "sdpa" (torch's scaled-dot-product attention kernels) and "no_reduced_reduction"
    (eager, torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction off). Every rounding
    point of the model's code is the same; only kernels and summation orders differ, so their
    distance from the reference bf16 logits is how far two bf16 runs of one implementation are.
    """
    import torch
    from transformers import AutoModelForCausalLM

    out = {}
    # A copy of the config: from_config records the attention backend in the config object,
    # which the reference model also reads at every forward.
    with torch.device("cuda"):
        sdpa = from_config(AutoModelForCausalLM, copy.deepcopy(config), torch.bfloat16, "sdpa")
    sdpa.load_state_dict(model.state_dict(), strict=True)
    sdpa.eval()
    out["sdpa"] = run(sdpa)
    del sdpa
    torch.cuda.empty_cache()
    flag = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = not flag
    try:
        out["no_reduced_reduction" if flag else "reduced_reduction"] = run(model)
    finally:
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = flag
    return out


def bf16_floors(ref, run):
    """Logits of the float32 model with only the roundings no bf16 implementation avoids.

    "linear_in": every nn.Linear input (lm_head included) rounded to bf16 (bf16 GEMM
    operands), all else float32. "linear_io_kv": also every nn.Linear output but the logits,
    and q/k after rope (a bf16 KV cache and bf16 attention inputs). Forward hooks on the float32 model;
    the rope function of the model's module is wrapped for the second.
    """
    import importlib
    import torch

    def to_bf16(t):
        return t.to(torch.bfloat16).float()

    linears = [m for m in ref.modules() if isinstance(m, torch.nn.Linear)]
    floors = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args: (to_bf16(args[0]),) + tuple(args[1:]))
             for m in linears]
    try:
        floors["linear_in"] = run(ref)
        # Not the lm_head output: logits stay float32 in dsrt too.
        head = ref.get_output_embeddings()
        hooks += [m.register_forward_hook(lambda mod, args, out: to_bf16(out)) for m in linears if m is not head]
        module = importlib.import_module(type(ref).__module__)
        rope = getattr(module, "apply_rotary_pos_emb", None)
        if rope is not None:
            module.apply_rotary_pos_emb = lambda *a, **k: tuple(to_bf16(t) for t in rope(*a, **k))
        try:
            floors["linear_io_kv" if rope is not None else "linear_io"] = run(ref)
        finally:
            if rope is not None:
                module.apply_rotary_pos_emb = rope
    finally:
        for h in hooks:
            h.remove()
    return floors


def load_npy(path):
    import numpy as np
    return np.load(path)


def compare(got, ref):
    import torch
    got = torch.as_tensor(got, dtype=torch.float32)
    if got.shape != ref.shape:
        return {"error": f"dsrt logits have shape {list(got.shape)}, expected {list(ref.shape)}"}
    diff = got - ref
    rel = (diff.norm() / ref.norm()).item()
    per_pos = (diff.norm(dim=1) / ref.norm(dim=1))
    agree = (got.argmax(dim=1) == ref.argmax(dim=1)).float().mean().item()
    return {"rel_l2": rel, "rel_l2_worst_position": per_pos.max().item(), "max_abs": diff.abs().max().item(),
            "ref_abs_max": ref.abs().max().item(), "greedy_agreement": agree}


def plan_list(args):
    """[(label, path)] of the plans to check, the first one being the primary."""
    specs = args.plan or [os.path.join(ROOT, ".deps", "plans", "DeepSeek-R1-Distill-Qwen-1.5B.sm_90a.dsplan")]
    plans = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            path = spec
            # The plan's variant from its name (make_plans.sh): NAME.ARCH[.res-bf16|.tpN].dsplan.
            m = re.search(r"\.(res-bf16|proj-bf16|tp\d+)\.dsplan$", os.path.basename(spec))
            label = m.group(1) if m else "default"
        plans.append((label, path))
    if len(plans) == 1 and not args.no_sibling and plans[0][1].endswith(".dsplan") and plans[0][0] == "default":
        for variant in ("res-bf16", "proj-bf16"):
            sibling = plans[0][1][:-len(".dsplan")] + f".{variant}.dsplan"
            if os.path.exists(sibling):
                plans.append((variant, sibling))
    return plans


def run_dsrt(args, plan, prompt, index):
    npy = os.path.join(args.workdir, f"dsrt_logits_{index}.npy")
    if os.path.exists(npy):
        os.remove(npy)
    cmd = [args.dsrt, "score", plan, "--model-path", args.workdir, "--ids", ",".join(map(str, prompt)),
           "--top-k", "1", "--json", "--logits-out", npy] + args.dsrt_args.split()
    # Tensor-parallel plans (make_plans.sh: NAME.sm_90a.tpN.dsplan) run with --tp N.
    tp = re.search(r"\.tp(\d+)\.dsplan$", plan)
    if tp and "--tp" not in cmd:
        cmd += ["--tp", tp.group(1)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        return None, {"error": f"dsrt exited {r.returncode}", "stderr": r.stderr[-2000:], "cmd": " ".join(cmd[:4])}
    return load_npy(npy), {"seconds": dt}


def main():
    args = parse_args()
    import torch

    plans = plan_list(args)
    result = {"tool": "check_real_shape", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "plan": plans[0][1], "plans": [{"label": l, "plan": p} for l, p in plans], "config": args.config, "prompts": args.prompts, "len": args.len,
              "seed": args.seed, "goal_rel_l2": args.goal}
    for path, what in [(args.dsrt, "--dsrt"), (args.config, "--config")] + [(p, "--plan") for _, p in plans]:
        if not os.path.exists(path):
            result["error"] = f"{what} {path} does not exist"
            print(json.dumps(result, indent=1))
            return 1
    if not torch.cuda.is_available():
        result["error"] = "no CUDA device"
        print(json.dumps(result, indent=1))
        return 1
    result["device"] = torch.cuda.get_device_name(0)
    model, config = build_and_save(args)
    g = torch.Generator().manual_seed(args.seed + 1)
    prompts = torch.randint(0, config.vocab_size, (args.prompts, args.len), generator=g).tolist()
    ref_f32, ref_bf16, floors, backends = reference_logits(model, config, prompts)
    result["init"] = args.init
    # transformers-bf16 against itself with other kernels: the spread between two bf16 runs of the
    # same code, i.e. how close any other implementation could come to transformers-bf16.
    result["hf_bf16_backends_vs_hf_bf16"] = {name: [compare(out[i], ref_bf16[i]) for i in range(len(prompts))]
                                            for name, out in backends.items()}
    result["hf_bf16_backends_vs_f32"] = {name: [compare(out[i], ref_f32[i]) for i in range(len(prompts))]
                                        for name, out in backends.items()}
    log("hf bf16 backends vs hf bf16: " + json.dumps(
        {k: [e.get("rel_l2") for e in v] for k, v in result["hf_bf16_backends_vs_hf_bf16"].items()}))
    # What part of the error no bf16 implementation avoids (f32 model, bf16 GEMM inputs [+ outputs, KV]).
    result["bf16_floors_vs_f32"] = {name: [compare(out[i], ref_f32[i]) for i in range(len(prompts))]
                                    for name, out in floors.items()}
    log("floors: " + json.dumps({k: [e.get("rel_l2") for e in v] for k, v in result["bf16_floors_vs_f32"].items()}))
    del model
    torch.cuda.empty_cache()  # leave the GPU to dsrt

    result["variants"] = []
    first_logits = {}  # prompt -> the first plan's logits: later plans (e.g. TP 2/4) also report dsrt_vs_first
    for label, plan in plans:
        ok = True
        close = True
        results = []
        for i, p in enumerate(prompts):
            entry = {"prompt": i, "hf_bf16_vs_f32": compare(ref_bf16[i], ref_f32[i])}
            got, info = run_dsrt(args, plan, p, i)
            entry["dsrt"] = info
            if got is None:
                ok = False
            else:
                entry["dsrt_vs_f32"] = compare(got, ref_f32[i])
                entry["dsrt_vs_hf_bf16"] = compare(got, ref_bf16[i])
                if i in first_logits:
                    entry["dsrt_vs_first"] = compare(got, torch.as_tensor(first_logits[i], dtype=torch.float32))
                elif not result["variants"]:
                    first_logits[i] = got
                rel = entry["dsrt_vs_f32"].get("rel_l2")
                entry["pass"] = rel is not None and rel < args.goal
                # The bf16 noise floor: transformers in bf16 against the same weights in float32.
                floor = entry["hf_bf16_vs_f32"].get("rel_l2")
                entry["as_close_as_hf_bf16"] = rel is not None and floor is not None and rel <= floor
                close = close and entry["as_close_as_hf_bf16"]
                ok = ok and entry["pass"]
            log(f"{label}: " + json.dumps(entry))
            results.append(entry)
        result["variants"].append({"label": label, "plan": plan, "results": results, "pass": ok,
                                   "as_close_as_hf_bf16": close})
    primary = result["variants"][0]
    result["results"] = primary["results"]
    result["pass"] = primary["pass"]
    result["as_close_as_hf_bf16"] = primary["as_close_as_hf_bf16"]
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
