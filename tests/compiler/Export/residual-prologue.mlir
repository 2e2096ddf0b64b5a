// Fused residuals and GEMV-prologue marks in the plan, and a CPU run of such a
// plan. The CUDA grouping and marks are made on a cpu-target import (ds.target
// set to sm_90a for ds-fuse-elementwise and ds-gemv-prologue, ref.* kernels,
// ds.target back to cpu before the export), so the reference backend runs a
// plan of the GPU's structure: it ignores `prologue` (it runs every group) and
// its logits still match a float64 forward pass.
// REQUIRES: dscc, dsrt

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %inputs/make_checkpoint.py %t/qwen2 --layers 2
// RUN: %dscc compile %t/qwen2 --emit=mlir-import --mlir-print-debuginfo -o %t/qwen2.import.mlir
// RUN: sed -e 's/ds.target = "cpu"/ds.target = "sm_90a"/' %t/qwen2.import.mlir \
// RUN:   | ds-opt --mlir-print-debuginfo --canonicalize --ds-fuse-weights --ds-fuse-residual-add --ds-fuse-elementwise \
// RUN:       --canonicalize --ds-select-kernels=target=cpu --ds-gemv-prologue --ds-plan-buffers \
// RUN:   | sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' > %t/qwen2.mlir
// RUN: FileCheck %s --check-prefix=IR --input-file=%t/qwen2.mlir
// RUN: %dscc export %t/qwen2.mlir --model %t/qwen2 -o %t/qwen2.dsplan
// RUN: %dsrt inspect %t/qwen2.dsplan | FileCheck %s --check-prefix=INSPECT
// RUN: %dsrt score %t/qwen2.dsplan --ids 1,2,3,40,50,60 --top-k 4 --json | %python %inputs/reference_forward.py %t/qwen2 --ids 1,2,3,40,50,60 | FileCheck %s --check-prefix=REF

// Llama with attention_bias: the o_proj linear has a bias and a residual
// (inputs [x, w, bias, residual]).
// RUN: %python %inputs/make_checkpoint.py %t/llama --arch LlamaForCausalLM --attention-bias --seed 5
// RUN: %dscc compile %t/llama --emit=mlir-import --mlir-print-debuginfo -o %t/llama.import.mlir
// RUN: sed -e 's/ds.target = "cpu"/ds.target = "sm_90a"/' %t/llama.import.mlir \
// RUN:   | ds-opt --mlir-print-debuginfo --canonicalize --ds-fuse-weights --ds-fuse-residual-add --ds-fuse-elementwise \
// RUN:       --canonicalize --ds-select-kernels=target=cpu --ds-gemv-prologue --ds-plan-buffers \
// RUN:   | sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' > %t/llama.mlir
// RUN: %dscc export %t/llama.mlir --model %t/llama -o %t/llama.dsplan
// RUN: %dsrt inspect %t/llama.dsplan | FileCheck %s --check-prefix=LLAMA
// RUN: %dsrt score %t/llama.dsplan --ids 100,200,7,8 --top-k 4 --json | %python %inputs/reference_forward.py %t/llama --ids 100,200,7,8 | FileCheck %s --check-prefix=REF

// The runtime checks the inputs against the attribute: plans edited through
// flatc's JSON (without the attribute, the residual is read as a bias; an
// attribute that is not 0/1; a residual attribute on a linear whose last input
// is its bias).
// RUN: %if flatc %{ flatc --json --strict-json --raw-binary -o %t %plan_fbs -- %t/qwen2.dsplan %}
// RUN: %if flatc %{ %python %inputs/edit_kernel_attr.py %t/qwen2.json %t/nores.json linear.1 residual %}
// RUN: %if flatc %{ %python %inputs/edit_kernel_attr.py %t/qwen2.json %t/res2.json linear.1 residual 2 %}
// RUN: %if flatc %{ %python %inputs/edit_kernel_attr.py %t/qwen2.json %t/biasres.json linear residual 1 %}
// RUN: %if flatc %{ flatc -b -o %t %plan_fbs %t/nores.json %t/res2.json %t/biasres.json %}
// RUN: %if flatc %{ not %dsrt generate %t/nores.dsplan --prompt-ids 1,2 --max-new-tokens 1 2>&1 | FileCheck %s --check-prefix=NORES %}
// RUN: %if flatc %{ not %dsrt generate %t/res2.dsplan --prompt-ids 1,2 --max-new-tokens 1 2>&1 | FileCheck %s --check-prefix=RES2 %}
// RUN: %if flatc %{ not %dsrt generate %t/biasres.dsplan --prompt-ids 1,2 --max-new-tokens 1 2>&1 | FileCheck %s --check-prefix=BIASRES %}
// NORES: program[5] kernel 'linear.1' (linear): input 2 (bias) must be a weight, got a activation
// RES2: program[5] kernel 'linear.1' (linear): attribute residual must be 0 or 1, got 2
// BIASRES: program[2] kernel 'linear' (linear): input 2 (residual) must be a activation, got a weight

// The module below: the exported live range of a group input extends to the
// marked linear, which reads it in decode steps.
// RUN: ds-opt %s --ds-plan-buffers --mlir-print-debuginfo -o %t/small.mlir
// RUN: %dscc export %t/small.mlir --model %t/qwen2 -o %t/small.dsplan
// RUN: %dsrt inspect %t/small.dsplan | FileCheck %s --check-prefix=LIVE
// RUN: %dsrt generate %t/small.dsplan --prompt-ids 1,2,3 --max-new-tokens 2 --temperature 0 --ignore-eos --json | FileCheck %s --check-prefix=GEN

// Per layer: the q/k/v and gate/up linears read pure-RMSNorm groups and are
// marked; o_proj and down_proj take the residual stream; no add is left.
// IR-NOT: ds.add
// IR: ds.fused_group({{.*}}) {ds.impl = "interp", {{.*}}} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32> {
// IR-NEXT: ^bb0
// IR-NEXT: ds.rms_norm
// IR-NEXT: ds.yield
// IR: ds.linear {{.*}}ds.prologue = "rms_norm"{{.*}} -> tensor<?x128xf32>
// IR: ds.linear {{.*}} residual {{.*}} -> tensor<?x64xf32>
// IR: ds.linear {{.*}}ds.prologue = "rms_norm"{{.*}} -> tensor<?x256xf32>
// IR: ds.linear {{.*}} residual {{.*}} -> tensor<?x64xf32>
// IR-COUNT-2: ds.prologue = "rms_norm"
// IR-NOT: ds.prologue
// IR-NOT: ds.add

// INSPECT: kernels:
// INSPECT-DAG: linear: builtin impl ref.linear op linear {prologue="rms_norm", quant="none"}
// INSPECT-DAG: linear.1: builtin impl ref.linear op linear {quant="none", residual=1}
// INSPECT: program: 21 instructions
// INSPECT: 1: %l0.input_norm = rms_norm(%embed, @model.layers.0.input_layernorm.weight)
// INSPECT-NEXT: 2: %l0.q_proj+l0.k_proj+l0.v_proj = linear(%l0.input_norm, @model.layers.0.self_attn.qkv_proj.weight, @model.layers.0.self_attn.qkv_proj.bias)
// INSPECT: 5: %l0.o_proj+l0.attn_residual = linear.1(%l0.attn, @model.layers.0.self_attn.o_proj.weight, %embed)
// INSPECT-NEXT: 6: %l0.post_attn_norm = rms_norm(%l0.o_proj+l0.attn_residual, @model.layers.0.post_attention_layernorm.weight)
// INSPECT-NEXT: 7: %l0.gate_proj+l0.up_proj = linear(%l0.post_attn_norm, @model.layers.0.mlp.gate_up_proj.weight)
// INSPECT: 9: %l0.down_proj+l0.mlp_residual = linear.1(%l0.mlp_mul, @model.layers.0.mlp.down_proj.weight, %l0.o_proj+l0.attn_residual)
// INSPECT: 19: %final_norm = rms_norm(%l1.down_proj+l1.mlp_residual, @model.norm.weight)
// INSPECT-NEXT: 20: out.logits = logits(%final_norm, @lm_head.weight, in.logit_rows)

// LLAMA: linear.1: builtin impl ref.linear op linear {quant="none", residual=1}
// LLAMA: 5: %l0.o_proj+l0.attn_residual = linear.1(%l0.attn, @model.layers.0.self_attn.o_proj.weight, @model.layers.0.self_attn.o_proj.bias, %embed)
// LLAMA: 9: %l0.down_proj+l0.mlp_residual = linear.1(%l0.mlp_mul, @model.layers.0.mlp.down_proj.weight, %l0.o_proj+l0.attn_residual)

// REF-NOT: MISMATCH
// REF: reference match

// Without the mark %embed would be dead after instruction 1 and %proj would
// take its offset 0.
// LIVE: [0] embed: f32[64] at 0+256 per token, live [0, 2]
// LIVE-NEXT: [1] norm: f32[64] at 256+256 per token, live [1, 2]
// LIVE-NEXT: [2] proj: f32[64] at 512+256 per token, live [2, 3]
// LIVE: [2] proj: builtin impl ref.linear op linear {prologue="rms_norm", quant="none"}
// GEN: "output_ids":[{{[0-9]+}},{{[0-9]+}}]

module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 256 : i64} {
  ds.kv_cache @kv {num_layers = 2 : i64, num_kv_heads = 2 : i64, k_dim = 16 : i64, v_dim = 16 : i64, page_size = 16 : i64, dtype = f32}
  ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
  ds.weight @ln1 {sources = [#ds.source<name = "model.layers.0.input_layernorm.weight", file = "model.safetensors", dtype = bf16, shape = [64]>]} : tensor<64xbf16>
  ds.weight @o {sources = [#ds.source<name = "model.layers.0.self_attn.o_proj.weight", file = "model.safetensors", dtype = bf16, shape = [64, 64]>]} : tensor<64x64xbf16>
  ds.weight @lm_head {sources = [#ds.source<name = "lm_head.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x320xf32> {
    %e = ds.get_weight @embed : tensor<320x64xbf16>
    %x = ds.embedding %tokens, %e {ds.impl = "ref.embedding"} : (tensor<?xi32>, tensor<320x64xbf16>) -> tensor<?x64xf32> loc("embed")
    %ln1 = ds.get_weight @ln1 : tensor<64xbf16>
    %n = ds.fused_group(%x, %ln1) {ds.impl = "interp"} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32> {
    ^bb0(%a: tensor<?x64xf32>, %w: tensor<64xbf16>):
      %r = ds.rms_norm %a, %w {eps = 1.0e-06 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32> loc("norm")
      ds.yield %r : tensor<?x64xf32>
    } loc("norm_group")
    %wo = ds.get_weight @o : tensor<64x64xbf16>
    %y = ds.linear %n, %wo {ds.impl = "ref.linear", ds.prologue = "rms_norm"} : (tensor<?x64xf32>, tensor<64x64xbf16>) -> tensor<?x64xf32> loc("proj")
    %lm = ds.get_weight @lm_head : tensor<320x64xbf16>
    %l = ds.logits %y, %lm, %rows {ds.impl = "ref.logits"} : (tensor<?x64xf32>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32> loc("logits")
    return %l : tensor<?x320xf32>
  }
}
