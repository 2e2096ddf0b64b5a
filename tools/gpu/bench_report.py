#!/usr/bin/env python3
"""Summarizes the outputs of tools/gpu/bench.sh (standard library only).

Reads DIR/{env.txt, commands.tsv, ceilings.json, decode_*.json, prefill_32B.json, serve_32B.json,
serve_32B.log, serve_32B_startup.json, hf_*.json, realshape.json} (whatever exists), prints a table
(tok/s, GB/s or TFLOP/s, % of ceiling, x vs transformers, goal) and writes DIR/bench.json with every
figure, the card, date, commit and commands, ready for docs/PERF.md.

  python3 tools/gpu/bench_report.py --dir gpu-out/bench --models tools/bench/models

--dir may be given several times (one per device call, since each call starts with an empty $OUT):
for each file the last directory that has it wins; bench.json goes to the last directory.
"""

import argparse
import json
import os
import re
import sys

# Issue 4 goals (H200 figures).
GOALS = {"decode_7B": 255.0, "decode_32B": 59.0, "prefill_32B_pct_gemm": 70.0, "serve_32B_total": 6700.0,
         "serve_x_hf": 5.5, "decode_pct_copy": 90.0}


DIRS = []


def bench_file(name):
    """Path of a bench output file: the last --dir that has it (else under the last --dir)."""
    for d in reversed(DIRS):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    return os.path.join(DIRS[-1], name)


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # dsrt generate may print log lines around the JSON: take the last line that parses.
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        return {"error": f"{os.path.basename(path)} is not JSON: {text[:200]!r}"}


def log_tail(name):
    """Last non-empty line of a section's log (the error of a failed run)."""
    try:
        with open(bench_file(name), errors="replace") as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def model_bytes(models_dir, size):
    """Bytes a decode step reads: every weight (bf16) except the embedding table (one row)."""
    path = os.path.join(models_dir, f"DeepSeek-R1-Distill-Qwen-{size}", "config.json")
    c = load(path)
    if not c or "hidden_size" not in c:
        return None, None
    return model_bytes_from_config(c)


def model_bytes_from_config(c):
    h, inter, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    heads, kv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    hd = c.get("head_dim") or h // heads
    per_layer = h * heads * hd + 2 * h * kv * hd + heads * hd * h + 3 * h * inter  # linears
    per_layer += heads * hd + 2 * kv * hd + 2 * h  # q/k/v biases, two norms
    lm_head = h * c["vocab_size"]
    decode_bytes = 2 * (layers * per_layer + lm_head + h)
    return decode_bytes, c


def all_weight_bytes(c):
    """Bytes of every bf16 weight of the checkpoint, the whole embedding table included: the
    count the issue's decode goals (7B 255 tok/s, 32B 59 tok/s = 90% of copy) are stated in."""
    h = c["hidden_size"]
    tied = c.get("tie_word_embeddings", False)
    decode_bytes, _ = model_bytes_from_config(c)
    return decode_bytes + (0 if tied else 2 * h * (c["vocab_size"] - 1))


def prefill_flops(c, t):
    h, inter, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    heads, kv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    hd = c.get("head_dim") or h // heads
    lin = layers * (h * heads * hd + 2 * h * kv * hd + heads * hd * h + 3 * h * inter)
    attn = 2 * layers * heads * hd * t * t  # causal: half of 2 x (QK^T + PV)
    return 2 * lin * t + attn + 2 * h * c["vocab_size"]


def find_number(obj, must, avoid=()):
    """First number in a nested JSON whose key path (lower case) contains every word of `must`."""
    best = None

    def walk(o, path):
        nonlocal best
        if best is not None:
            return
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, path + "/" + str(k).lower())
        elif isinstance(o, list):
            for i, v in enumerate(o):
                # Lists of {"name": ..., "value": ...} rows: use the row's name in the path.
                tag = ""
                if isinstance(v, dict):
                    tag = str(v.get("name", v.get("shape", v.get("label", "")))).lower()
                walk(v, path + f"/{tag or i}")
        elif isinstance(o, (int, float)) and not isinstance(o, bool):
            if all(w in path for w in must) and not any(a in path for a in avoid):
                best = (float(o), path)

    walk(obj, "")
    return best


def ceilings():
    """ds_gpu_ceilings --json: copy_bandwidth_GBps, gemm[{name, tflops}], prefill_32b_layer_tflops."""
    c = load(bench_file("ceilings.json"))
    if not c or "error" in c:
        return {}
    out = {}
    if isinstance(c.get("copy_bandwidth_GBps"), (int, float)):
        out["copy_gb_s"] = float(c["copy_bandwidth_GBps"])
        out["copy_key"] = "copy_bandwidth_GBps"
    for g in c.get("gemm") or []:
        if isinstance(g, dict) and str(g.get("name", "")).startswith("square") and "tflops" in g:
            out["gemm_square_tflop_s"] = float(g["tflops"])
            out["gemm_square_key"] = f"gemm[{g['name']}].tflops"
    if isinstance(c.get("prefill_32b_layer_tflops"), (int, float)):
        # The 32B layer's linears at m = 4096 through cuBLASLt: "the measured bf16 GEMM rate" of the goal.
        out["gemm_tflop_s"] = float(c["prefill_32b_layer_tflops"])
        out["gemm_key"] = "prefill_32b_layer_tflops (32B layer linears, m=4096, cuBLASLt)"
    elif "gemm_square_tflop_s" in out:
        out["gemm_tflop_s"] = out["gemm_square_tflop_s"]
        out["gemm_key"] = out["gemm_square_key"]
    return out


def startup_lines(m):
    try:
        with open(bench_file(f"serve_{m}.log"), errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    pat = re.compile(r"startup|load|ready|graph|captur|kernel|weights|plan|memory|kv|listen", re.I)
    return [l.strip() for l in lines if pat.search(l)][:30]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, action="append")
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    DIRS.extend(a.dir)
    d = a.dir[-1]
    env = {}
    try:
        for line in open(bench_file("env.txt")):
            k, _, v = line.strip().partition(" ")
            env[k] = v
    except OSError:
        pass
    commands = {}
    for dd in DIRS:
        try:
            for line in open(os.path.join(dd, "commands.tsv")):
                k, _, v = line.rstrip("\n").partition("\t")
                commands[k] = v
        except OSError:
            pass

    ceil = ceilings()
    copy = ceil.get("copy_gb_s")
    gemm = ceil.get("gemm_tflop_s")
    hf = {m: load(bench_file(f"hf_{m}.json")) or {} for m in ("7B", "32B")}
    report = {"card": env.get("gpu", "unknown"), "date": env.get("date"), "commit": env.get("commit"),
              "commands": commands, "ceilings": ceil, "rows": [], "raw": {}}
    rows = report["rows"]

    def row(name, value, unit, rate=None, rate_unit="", pct=None, x_hf=None, goal=None, ok=None, note=""):
        rows.append({"name": name, "value": value, "unit": unit, "rate": rate, "rate_unit": rate_unit,
                     "pct_ceiling": pct, "x_hf": x_hf, "goal": goal, "meets_goal": ok, "note": note})

    if copy:
        row("ceiling: copy bandwidth", copy, "GB/s", note=ceil.get("copy_key", ""))
    if ceil.get("gemm_square_tflop_s"):
        row("ceiling: bf16 GEMM 8192^3", ceil["gemm_square_tflop_s"], "TFLOP/s", note=ceil.get("gemm_square_key", ""))
    if gemm:
        row("ceiling: bf16 GEMM, 32B layer m=4096", gemm, "TFLOP/s",
            note="the rate prefill % of ceiling is taken against: " + ceil.get("gemm_key", ""))

    for m in ("7B", "32B"):
        r = load(bench_file(f"decode_{m}.json"))
        if r is None:
            continue
        r = dict(r, **(r.get("timings") or {}))  # dsrt generate --json nests them under "timings"
        report["raw"][f"decode_{m}"] = {k: v for k, v in r.items() if k not in ("output_ids", "text")}
        tps = r.get("decode_tokens_per_s")
        if tps is None and r.get("decode_ms") and r.get("output_ids"):
            tps = (len(r["output_ids"]) - 1) / (r["decode_ms"] / 1e3)
        if tps is None:
            row(f"decode bs1 {m}", None, "tok/s",
                note=log_tail(f"decode_{m}.log") or r.get("error", "no decode_tokens_per_s in dsrt JSON"))
            continue
        nbytes, c = model_bytes(a.models, m)
        gbs = tps * nbytes / 1e9 if nbytes else None
        pct = 100 * gbs / copy if gbs and copy else None
        hf_tps = (hf[m].get("decode") or {}).get("tok_per_s")
        goal = GOALS[f"decode_{m}"]
        note = f"ttft {r.get('ttft_ms')} ms, {len(r.get('output_ids', []))} tokens"
        if c and copy:
            # The rate column counts the bytes a step reads; the goal's 90% counts every weight.
            allb = all_weight_bytes(c)
            note += f"; all {allb / 1e9:.2f} GB of weights: {100 * tps * allb / 1e9 / copy:.1f}% of copy"
        row(f"decode bs1 {m}", tps, "tok/s", gbs, "GB/s", pct, tps / hf_tps if hf_tps else None,
            f">= {goal:g} tok/s (H200), >= 90% copy", tps >= goal, note)

    r = load(bench_file("prefill_32B.json"))
    if r is not None:
        r = dict(r, **(r.get("timings") or {}))
        report["raw"]["prefill_32B"] = {k: v for k, v in r.items() if k not in ("output_ids", "text")}
        ms = r.get("prefill_ms") or r.get("ttft_ms")
        _, c = model_bytes(a.models, "32B")
        if ms and c:
            tf = prefill_flops(c, 4096) / (ms / 1e3) / 1e12
            pct = 100 * tf / gemm if gemm else None
            hf_ms = (hf["32B"].get("prefill") or {}).get("median_ms")
            row("prefill 32B 4096", ms, "ms", tf, "TFLOP/s", pct, hf_ms / ms if hf_ms else None,
                ">= 70% of GEMM", pct >= GOALS["prefill_32B_pct_gemm"] if pct else None)
        else:
            row("prefill 32B 4096", None, "ms",
                note=log_tail("prefill_32B.log") or r.get("error", "no prefill_ms in dsrt JSON"))

    sp = load(bench_file("serve_prefill_32B.json"))
    if sp is not None and isinstance(sp.get("metrics"), dict):
        ttft = (sp["metrics"].get("ttft_ms") or {}).get("median")
        _, c = model_bytes(a.models, "32B")
        if ttft and c:
            tf = prefill_flops(c, 4096) / (ttft / 1e3) / 1e12
            pct = 100 * tf / gemm if gemm else None
            hf_ms = (hf["32B"].get("prefill") or {}).get("median_ms")
            row("prefill 32B 4096 (serve, warm TTFT)", ttft, "ms", tf, "TFLOP/s", pct, hf_ms / ttft if hf_ms else None,
                ">= 70% of GEMM", pct >= GOALS["prefill_32B_pct_gemm"] if pct else None,
                f"median of {sp['metrics'].get('completed')} requests, HTTP + tokenizer included")

    s = load(bench_file("serve_32B.json"))
    if s is not None:
        met = s.get("metrics", {})
        report["raw"]["serve_32B"] = met
        tot = met.get("total_throughput")
        hf_cb = hf["32B"].get("cb") or {}
        hf_tot = hf_cb.get("total_tok_per_s")
        x = tot / hf_tot if tot and hf_tot else None
        goal_ok = None
        if tot:
            goal_ok = tot >= GOALS["serve_32B_total"] and (x is None or x >= GOALS["serve_x_hf"])
        row("serve 32B 256x(512/128)", tot, "tok/s total", met.get("output_throughput"), "out tok/s", None, x,
            ">= 6.7k tok/s, >= 5.5x HF", goal_ok,
            f"completed {met.get('completed')}, failed {met.get('failed')}, duration {met.get('duration_s')} s")
        st = load(bench_file("serve_32B_startup.json")) or {}
        report["startup"] = {"ms_to_health": st.get("ms_to_health"), "log": startup_lines("32B")}
        if st.get("ms_to_health") is not None:
            row("serve 32B startup (to /health)", st["ms_to_health"] / 1e3, "s")

    for m in ("7B", "32B"):
        if hf[m]:
            report["raw"][f"hf_{m}"] = hf[m]
            dec = hf[m].get("decode") or {}
            if "tok_per_s" in dec:
                row(f"HF decode bs1 {m}", dec["tok_per_s"], "tok/s")
            pre = hf[m].get("prefill") or {}
            if "median_ms" in pre:
                row(f"HF prefill {m} 4096", pre["median_ms"], "ms", pre.get("tflop_per_s"), "TFLOP/s",
                    100 * pre["tflop_per_s"] / gemm if gemm and pre.get("tflop_per_s") else None)
            cb = hf[m].get("cb") or {}
            if "total_tok_per_s" in cb:
                row(f"HF generate_batch {m} 256x(512/128)", cb["total_tok_per_s"], "tok/s total",
                    cb.get("output_tok_per_s"), "out tok/s")
            for sec in ("decode", "prefill", "cb"):
                if isinstance(hf[m].get(sec), dict) and "error" in hf[m][sec]:
                    row(f"HF {sec} {m}", None, "", note=hf[m][sec]["error"][:120])

    # Tensor parallelism (bench.sh tp, tools/gpu/bench_tp.sh).
    tp_tps = {}
    for tp in (1, 2, 4, "2_nccl", "2_custom", "2_staged", "2_tppipe"):
        r = load(bench_file(f"tp_decode_32B_tp{tp}.json"))
        if r is None:
            continue
        r = dict(r, **(r.get("timings") or {}))
        tps = r.get("decode_tokens_per_s")
        report["raw"][f"tp_decode_32B_tp{tp}"] = {k: v for k, v in r.items() if k not in ("output_ids", "text")}
        if tps:
            tp_tps[tp] = tps
        speedup = tps / tp_tps[1] if tps and tp_tps.get(1) and tp != 1 else None
        label = f"decode bs1 32B TP {tp}".replace("2_nccl", "2 (NCCL all_reduce only)")
        label = label.replace("2_custom", "2 (custom all_reduce forced)")
        label = label.replace("2_staged", "2 (custom all_reduce forced, staged protocol)")
        label = label.replace("2_tppipe", "2 (pipelined sampling on every rank)")
        # dsrt's start-up choice between the custom all-reduce and NCCL (all_reduce_choice.h).
        choice = ""
        path = bench_file(f"tp_decode_32B_tp{tp}.log")
        if path and os.path.exists(path):
            m = re.search(r"decode all-reduce of .*", open(path, errors="replace").read())
            choice = m.group(0) if m else ""
        row(label, tps, "tok/s", speedup, "x TP 1", None, None,
            ">= 1.8x TP 1" if tp == 2 else "", speedup >= 1.8 if tp == 2 and speedup else None,
            log_tail(f"tp_decode_32B_tp{tp}.log") if not tps else choice)
    for tp in (2, 4):
        text = None
        path = bench_file(f"tp_nccl_tp{tp}.log")
        if path and os.path.exists(path):
            text = open(path, errors="replace").read()
        if text:
            for label in ("64 MiB", "5120 x 1", "5120 x 256"):
                m = re.search(r"^\s*" + re.escape(label) + r"\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
                if m:
                    row(f"NCCL all_reduce {label} on {tp} GPUs", float(m.group(6)), "GB/s bus (graph)",
                        float(m.group(5)), "us (graph)", note=f"eager {m.group(3)} us, {m.group(4)} GB/s")
            # AllReduceProtocols.DecodeRowsReport: rows, bytes, LL us, staged us, NCCL us.
            for nrows in ("1", "12"):
                m = re.search(r"^\s+" + nrows + r"\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s*$", text, re.M)
                if m:
                    row(f"custom all_reduce, {nrows} f32 row(s) of 5120 on {tp} GPUs", float(m.group(2)),
                        "us LL (graph)", float(m.group(3)), "us staged", note=f"NCCL {m.group(4)} us")
        path = bench_file(f"tp_profile_32B_tp{tp}.log")
        if path and os.path.exists(path):
            prof = open(path, errors="replace").read().split("dsrt profile")
            if len(prof) > 1:
                first = prof[1]  # rank 0's profile (ranks print in order)
                share = sum(float(m.group(1)) for m in re.finditer(r"^\s+all_reduce .*?\s([0-9.]+)%\s*$", first, re.M))
                span = re.search(r"GPU span ([0-9.]+) ms/step", first)
                row(f"all_reduce share of decode step, TP {tp}", share, "% of GPU span (eager)",
                    float(span.group(1)) if span else None, "ms/step span",
                    note="eager steps (graphs off): all_reduce time includes waiting for the slower rank")
    s2 = load(bench_file("tp_serve_32B_tp2.json"))
    if s2 is not None:
        met = s2.get("metrics", {})
        report["raw"]["tp_serve_32B_tp2"] = met
        row("serve 32B TP 2 256x(512/128)", met.get("total_throughput"), "tok/s total", met.get("output_throughput"),
            "out tok/s", note=f"completed {met.get('completed')}, failed {met.get('failed')}")

    rs = load(bench_file("realshape.json"))
    if rs is not None:
        report["raw"]["realshape"] = rs
        note = rs.get("error", "")
        for e in rs.get("results", []):
            err = (e.get("dsrt") or {}).get("error")
            if err and not note:
                tail = [l for l in (e["dsrt"].get("stderr") or "").splitlines() if l.strip()]
                note = err + (": " + tail[-1][:160] if tail else "")

        def worst(key):
            """Worst rel L2 and lowest greedy agreement over the prompts for one comparison."""
            rel = [(e.get(key) or {}).get("rel_l2") for e in rs.get("results", [])]
            agr = [(e.get(key) or {}).get("greedy_agreement") for e in rs.get("results", [])]
            rel = [v for v in rel if v is not None]
            agr = [v for v in agr if v is not None]
            return (max(rel) if rel else None), (min(agr) if agr else None)

        rel, agr = worst("dsrt_vs_f32")
        row("1.5B logits: dsrt bf16 vs HF f32", rel, "rel L2 (worst prompt)", agr, "greedy agreement",
            goal="< 1e-2", ok=rs.get("pass"), note=note)
        rel, agr = worst("dsrt_vs_hf_bf16")
        row("1.5B logits: dsrt bf16 vs HF bf16", rel, "rel L2 (worst prompt)", agr, "greedy agreement")
        rel, agr = worst("hf_bf16_vs_f32")
        row("1.5B logits: HF bf16 vs HF f32", rel, "rel L2 (worst prompt)", agr, "greedy agreement",
            note="bf16 noise floor at this shape: the f32 model holds the same bf16 weights")
        if rs.get("as_close_as_hf_bf16") is not None:
            row("1.5B logits: dsrt at least as close to f32 as HF bf16", None, "", goal="every prompt",
                ok=rs.get("as_close_as_hf_bf16"))
        # Other plans of the same check (check_real_shape.py "variants"; the first is the one above),
        # e.g. the bf16 residual stream (dscc --residual-dtype bf16) next to the default f32 one.
        for v in (rs.get("variants") or [])[1:]:
            rel = [(e.get("dsrt_vs_f32") or {}).get("rel_l2") for e in v.get("results", [])]
            agr = [(e.get("dsrt_vs_f32") or {}).get("greedy_agreement") for e in v.get("results", [])]
            rel = [x for x in rel if x is not None]
            agr = [x for x in agr if x is not None]
            row(f"1.5B logits ({v.get('label')}): dsrt bf16 vs HF f32", max(rel) if rel else None,
                "rel L2 (worst prompt)", min(agr) if agr else None, "greedy agreement", goal="< 1e-2",
                ok=v.get("pass"), note=os.path.basename(v.get("plan", "")))

    def fmt(v, nd=1):
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "NO"
        if abs(v) < 0.1 and v != 0:
            return f"{v:.2e}"
        if abs(v) < 10:
            return f"{v:.3f}"
        return f"{v:,.{nd}f}"

    print(f"card: {report['card']}   date: {report['date']}   commit: {report['commit']}")
    hdr = f"{'benchmark':38} {'value':>12} {'unit':22} {'rate':>10} {'rate unit':18} {'% ceil':>7} {'x HF':>6}  goal"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        goal = f"{r['goal']} {fmt(r['meets_goal'])}" if r["goal"] else ""
        print(f"{r['name']:38} {fmt(r['value']):>12} {r['unit']:22} {fmt(r['rate']):>10} {r['rate_unit']:18} "
              f"{fmt(r['pct_ceiling']):>7} {fmt(r['x_hf'], 2):>6}  {goal}")
        if r["note"]:
            print(f"{'':38}   {r['note']}")
    if report.get("startup", {}).get("log"):
        print("startup (serve log):")
        for l in report["startup"]["log"]:
            print("  " + l[:150])
    with open(os.path.join(d, "bench.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {os.path.join(d, 'bench.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
