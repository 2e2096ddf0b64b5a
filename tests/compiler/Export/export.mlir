// The exporter on a hand-written compiled module (what the pipeline produces
// for a 1-layer model: fused q/k/v and gate/up weights, fused row-wise groups,
// ds.impl / ds.offsets / ds.sizes set): `dscc export` writes the plan, which
// is read back with flatc (every field) and with dsrt inspect.
// REQUIRES: dscc

// RUN: rm -rf %t && mkdir -p %t && %python %inputs/make_checkpoint.py %t/m --layers 1
// RUN: %dscc export %s --model %t/m -o %t/plan.dsplan
// RUN: %if flatc %{ flatc --json --strict-json --raw-binary -o %t %plan_fbs -- %t/plan.dsplan %}
// RUN: %if flatc %{ FileCheck %s --input-file=%t/plan.json %}
// RUN: %if dsrt %{ %dsrt inspect %t/plan.dsplan | FileCheck %s --check-prefix=INSPECT %}

// CHECK: "format_version": {{[0-9]+}},
// CHECK-NEXT: "producer": "dscc 0.1.0",
// CHECK-NEXT: "target": "cpu",
// CHECK-NEXT: "model": {
// CHECK-NEXT:   "architecture": "Qwen2ForCausalLM",
// CHECK-NEXT:   "model_type": "qwen2",
// CHECK-NEXT:   "name": "m",
// CHECK-NEXT:   "checkpoint_path": "{{/.*}}/m",
// CHECK-NEXT:   "hidden_size": 64,
// CHECK-NEXT:   "intermediate_size": 128,
// CHECK-NEXT:   "num_layers": 1,
// CHECK-NEXT:   "num_attention_heads": 4,
// CHECK-NEXT:   "num_kv_heads": 2,
// CHECK-NEXT:   "head_dim": 16,
// CHECK-NEXT:   "vocab_size": 320,
// CHECK-NEXT:   "max_model_len": 256,
// CHECK-NEXT:   "rms_norm_eps": 0.000001,
// CHECK-NEXT:   "rope": {
// CHECK-NEXT:     "rotary_dim": 16
// CHECK-NEXT:   },
// CHECK-NEXT:   "config_json": "{\n  \"architectures\": [\n    \"Qwen2ForCausalLM\"
// CHECK: "tokenizer": {
// CHECK-NEXT:   "tokenizer_json": "{\n \"version\": \"1.0\",
// CHECK-NEXT:   "tokenizer_config_json": "{\n  \"bos_token\": null,
// CHECK-NEXT:   "chat_template": "{% for message in messages %}
// CHECK-NEXT:   "eos_token_ids": [
// CHECK-NEXT:     258
// CHECK-NEXT:   ],
// CHECK-NEXT:   "pad_token_id": 256
// CHECK-NEXT: },
// CHECK-NEXT: "generation": {
// CHECK-NEXT:   "do_sample": true,
// CHECK-NEXT:   "temperature": 0.7,
// CHECK-NEXT:   "top_p": 0.8,
// CHECK-NEXT:   "top_k": 20,
// CHECK-NEXT:   "repetition_penalty": 1.05,
// CHECK-NEXT:   "eos_token_ids": [
// CHECK-NEXT:     258,
// CHECK-NEXT:     256
// CHECK-NEXT:   ],
// CHECK-NEXT:   "generation_config_json": "{\n  \"bos_token_id\": 256,

// Weights in symbol order (defaults such as dtype f32 are omitted by flatc);
// a fused weight lists its sources.
// CHECK: "weights": [
// CHECK-NEXT: {
// CHECK-NEXT:   "name": "embed",
// CHECK-NEXT:   "dtype": "bf16",
// CHECK-NEXT:   "shape": [
// CHECK-NEXT:     320,
// CHECK-NEXT:     64
// CHECK-NEXT:   ],
// CHECK-NEXT:   "sources": [
// CHECK-NEXT:     {
// CHECK-NEXT:       "name": "model.embed_tokens.weight",
// CHECK-NEXT:       "file": "model.safetensors",
// CHECK-NEXT:       "dtype": "bf16",
// CHECK-NEXT:       "shape": [
// CHECK-NEXT:         320,
// CHECK-NEXT:         64
// CHECK-NEXT:       ]
// CHECK-NEXT:     }
// CHECK-NEXT:   ]
// CHECK:   "name": "qkv",
// CHECK-NEXT: "dtype": "bf16",
// CHECK-NEXT: "shape": [
// CHECK-NEXT:   128,
// CHECK-NEXT:   64
// CHECK-NEXT: ],
// CHECK-NEXT: "sources": [
// CHECK-NEXT: {
// CHECK-NEXT:   "name": "model.layers.0.self_attn.q_proj.weight",
// CHECK:        "name": "model.layers.0.self_attn.k_proj.weight",
// CHECK-NEXT:   "file": "model.safetensors",
// CHECK-NEXT:   "dtype": "bf16",
// CHECK-NEXT:   "shape": [
// CHECK-NEXT:     32,
// CHECK-NEXT:     64
// CHECK:        "name": "model.layers.0.self_attn.v_proj.weight",
// CHECK:   "name": "lm_head",

// Arena: buffers named after the ops (a fused group's results after the op
// that computes them), liveness in instruction numbers.
// CHECK: "arena": {
// CHECK-NEXT: "bytes_per_token": 4480,
// CHECK-NEXT: "buffers": [
// CHECK-NEXT: {
// CHECK-NEXT:   "name": "embed",
// CHECK-NEXT:   "row_shape": [
// CHECK-NEXT:     64
// CHECK-NEXT:   ],
// CHECK-NEXT:   "bytes_per_token": 256,
// CHECK-NEXT:   "last_instr": 7
// CHECK:   "name": "l0.input_norm",
// CHECK:   "name": "l0.q_proj+l0.k_proj+l0.v_proj",
// CHECK:   "name": "l0.q_rope",
// CHECK:   "name": "l0.k_rope",
// CHECK-NEXT:   "row_shape": [
// CHECK-NEXT:     32
// CHECK-NEXT:   ],
// CHECK-NEXT:   "bytes_per_token": 128,
// CHECK-NEXT:   "offset_per_token": 4352,
// CHECK-NEXT:   "first_instr": 4,
// CHECK-NEXT:   "last_instr": 4
// CHECK:   "name": "l0.attn",
// CHECK:   "name": "l0.o_proj",
// CHECK:   "name": "l0.attn_residual",
// CHECK:   "name": "l0.post_attn_norm",
// CHECK:   "name": "l0.gate_proj+l0.up_proj",
// CHECK:   "name": "l0.mlp_mul",
// CHECK:   "name": "l0.down_proj",
// CHECK:   "name": "l0.mlp_residual",
// CHECK:   "name": "final_norm",
// CHECK-NEXT:   "row_shape": [
// CHECK-NEXT:     64
// CHECK-NEXT:   ],
// CHECK-NEXT:   "bytes_per_token": 256,
// CHECK-NEXT:   "offset_per_token": 4096,
// CHECK-NEXT:   "first_instr": 11,
// CHECK-NEXT:   "last_instr": 12

// CHECK: "kv_cache": {
// CHECK-NEXT: "layout": "NHD",
// CHECK-NEXT: "layers": [
// CHECK-NEXT: {
// CHECK-NEXT: "k_dim": 16,
// CHECK-NEXT: "v_dim": 16,
// CHECK-NEXT: "num_kv_heads": 2
// CHECK-NEXT: }
// CHECK-NEXT: ]

// Kernels: the four linears share one kernel, so do the two add+rms_norm
// groups; attributes are flattened (#ds.rope to its fields) and sorted by
// key; fused groups list their ops with operands numbered inputs first.
// CHECK: "kernels": [
// CHECK-NEXT: {
// CHECK-NEXT:   "name": "embed",
// CHECK-NEXT:   "impl": "ref.embedding",
// CHECK-NEXT:   "op": "embedding"
// CHECK:        "name": "l0.input_norm",
// CHECK-NEXT:   "impl": "ref.rms_norm",
// CHECK-NEXT:   "op": "rms_norm",
// CHECK-NEXT:   "attrs": [
// CHECK-NEXT:     {
// CHECK-NEXT:       "key": "eps",
// CHECK-NEXT:       "type": "float_",
// CHECK-NEXT:       "f": 0.000001
// CHECK:        "name": "linear",
// CHECK-NEXT:   "impl": "ref.linear",
// CHECK-NEXT:   "op": "linear",
// CHECK-NEXT:   "attrs": [
// CHECK-NEXT:     {
// CHECK-NEXT:       "key": "quant",
// CHECK-NEXT:       "type": "string_",
// CHECK-NEXT:       "s": "none"
// CHECK:        "name": "l0.q_group",
// CHECK-NEXT:   "kind": "fused",
// CHECK-NEXT:   "impl": "interp",
// CHECK-NEXT:   "num_inputs": 2,
// CHECK-NEXT:   "fused_ops": [
// CHECK-NEXT:     {
// CHECK-NEXT:       "op": "slice",
// CHECK-NEXT:       "operands": [
// CHECK-NEXT:         0
// CHECK-NEXT:       ],
// CHECK-NEXT:       "attrs": [
// CHECK-NEXT:         {
// CHECK-NEXT:           "key": "offset"
// CHECK-NEXT:         },
// CHECK-NEXT:         {
// CHECK-NEXT:           "key": "size",
// CHECK-NEXT:           "i": 64
// CHECK:            "op": "rope",
// CHECK-NEXT:       "operands": [
// CHECK-NEXT:         2,
// CHECK-NEXT:         1
// CHECK-NEXT:       ],
// CHECK-NEXT:       "attrs": [
// CHECK-NEXT:         {
// CHECK-NEXT:           "key": "beta_fast",
// CHECK-NEXT:           "type": "float_",
// CHECK-NEXT:           "f": 32.0
// CHECK:                "key": "head_dim",
// CHECK-NEXT:           "i": 16
// CHECK:                "key": "mscale_all_dim",
// CHECK:                "key": "num_heads",
// CHECK-NEXT:           "i": 4
// CHECK:                "key": "rotary_dim",
// CHECK-NEXT:           "i": 16
// CHECK:                "key": "scaling",
// CHECK-NEXT:           "type": "string_",
// CHECK-NEXT:           "s": "none"
// CHECK:                "key": "style",
// CHECK-NEXT:           "type": "string_",
// CHECK-NEXT:           "s": "neox"
// CHECK:                "key": "theta",
// CHECK-NEXT:           "type": "float_",
// CHECK-NEXT:           "f": 1000000.0
// CHECK:            "row_shape": [
// CHECK-NEXT:         64
// CHECK:        "results": [
// CHECK-NEXT:     1
// CHECK-NEXT:   ]
// CHECK:        "name": "l0.kv_group",
// CHECK-NEXT:   "kind": "fused",
// CHECK:            "op": "kv_cache_write",
// CHECK-NEXT:       "operands": [
// CHECK-NEXT:         3,
// CHECK-NEXT:         4
// CHECK-NEXT:       ],
// CHECK-NEXT:       "attrs": [
// CHECK-NEXT:         {
// CHECK-NEXT:           "key": "layer"
// CHECK:        "name": "l0.attn",
// CHECK-NEXT:   "impl": "ref.paged_attention",
// CHECK-NEXT:   "op": "paged_attention",
// CHECK:                "key": "num_kv_heads",
// CHECK-NEXT:           "i": 2
// CHECK:                "key": "scale",
// CHECK-NEXT:           "type": "float_",
// CHECK-NEXT:           "f": 0.25
// CHECK:                "key": "v_head_dim",
// CHECK-NEXT:           "i": 16
// CHECK:        "name": "add_rms_norm",
// CHECK-NEXT:   "kind": "fused",
// CHECK:        "name": "l0.mlp_group",
// CHECK:        "name": "logits",
// CHECK-NEXT:   "impl": "ref.logits",
// CHECK-NEXT:   "op": "logits"
// CHECK: "program": [
// CHECK: "mlir": "module attributes {ds.activation_dtype = f32

// Program: ValueRefs per IR_CONTRACT (step inputs, weights, the KV-cache
// layer as an extra output of the write and input of the attention, logits
// to step output 0), shown by the runtime's own reader.
// INSPECT:      format_version {{[0-9]+}}, producer dscc 0.1.0, target cpu, activation dtype f32, tp_size 1
// INSPECT:      program: 13 instructions
// INSPECT-NEXT:   0: %embed = embed(in.tokens, @embed)
// INSPECT-NEXT:   1: %l0.input_norm = l0.input_norm(%embed, @ln1)
// INSPECT-NEXT:   2: %l0.q_proj+l0.k_proj+l0.v_proj = linear(%l0.input_norm, @qkv, @qkv_bias)
// INSPECT-NEXT:   3: %l0.q_rope = l0.q_group(%l0.q_proj+l0.k_proj+l0.v_proj, in.positions)
// INSPECT-NEXT:   4: %l0.k_rope, kv[0] = l0.kv_group(%l0.q_proj+l0.k_proj+l0.v_proj, in.positions)
// INSPECT-NEXT:   5: %l0.attn = l0.attn(%l0.q_rope, kv[0])
// INSPECT-NEXT:   6: %l0.o_proj = linear(%l0.attn, @o)
// INSPECT-NEXT:   7: %l0.attn_residual, %l0.post_attn_norm = add_rms_norm(%embed, %l0.o_proj, @ln2)
// INSPECT-NEXT:   8: %l0.gate_proj+l0.up_proj = linear(%l0.post_attn_norm, @gate_up)
// INSPECT-NEXT:   9: %l0.mlp_mul = l0.mlp_group(%l0.gate_proj+l0.up_proj)
// INSPECT-NEXT:   10: %l0.down_proj = linear(%l0.mlp_mul, @down)
// INSPECT-NEXT:   11: %l0.mlp_residual, %final_norm = add_rms_norm(%l0.attn_residual, %l0.down_proj, @norm)
// INSPECT-NEXT:   12: out.logits = logits(%final_norm, @lm_head, in.logit_rows)

// The plan runs: greedy decoding of a few tokens on the reference backend.
// RUN: %if dsrt %{ %dsrt generate %t/plan.dsplan --prompt-ids 1,2,3 --max-new-tokens 4 --temperature 0 --ignore-eos --json | FileCheck %s --check-prefix=GEN %}
// GEN: "output_ids":[{{[0-9]+}},{{[0-9]+}},{{[0-9]+}},{{[0-9]+}}]

module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 256 : i64,
                   ds.arena_bytes_per_token = 4480 : i64, ds.arena_alignment = 16 : i64} {
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 16 : i64, v_dim = 16 : i64,
                   page_size = 16 : i64, dtype = f32}
  ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
  ds.weight @ln1 {sources = [#ds.source<name = "model.layers.0.input_layernorm.weight", file = "model.safetensors", dtype = bf16, shape = [64]>]} : tensor<64xbf16>
  ds.weight @qkv {sources = [
      #ds.source<name = "model.layers.0.self_attn.q_proj.weight", file = "model.safetensors", dtype = bf16, shape = [64, 64]>,
      #ds.source<name = "model.layers.0.self_attn.k_proj.weight", file = "model.safetensors", dtype = bf16, shape = [32, 64]>,
      #ds.source<name = "model.layers.0.self_attn.v_proj.weight", file = "model.safetensors", dtype = bf16, shape = [32, 64]>]} : tensor<128x64xbf16>
  ds.weight @qkv_bias {sources = [
      #ds.source<name = "model.layers.0.self_attn.q_proj.bias", file = "model.safetensors", dtype = bf16, shape = [64]>,
      #ds.source<name = "model.layers.0.self_attn.k_proj.bias", file = "model.safetensors", dtype = bf16, shape = [32]>,
      #ds.source<name = "model.layers.0.self_attn.v_proj.bias", file = "model.safetensors", dtype = bf16, shape = [32]>]} : tensor<128xbf16>
  ds.weight @o {sources = [#ds.source<name = "model.layers.0.self_attn.o_proj.weight", file = "model.safetensors", dtype = bf16, shape = [64, 64]>]} : tensor<64x64xbf16>
  ds.weight @ln2 {sources = [#ds.source<name = "model.layers.0.post_attention_layernorm.weight", file = "model.safetensors", dtype = bf16, shape = [64]>]} : tensor<64xbf16>
  ds.weight @gate_up {sources = [
      #ds.source<name = "model.layers.0.mlp.gate_proj.weight", file = "model.safetensors", dtype = bf16, shape = [128, 64]>,
      #ds.source<name = "model.layers.0.mlp.up_proj.weight", file = "model.safetensors", dtype = bf16, shape = [128, 64]>]} : tensor<256x64xbf16>
  ds.weight @down {sources = [#ds.source<name = "model.layers.0.mlp.down_proj.weight", file = "model.safetensors", dtype = bf16, shape = [64, 128]>]} : tensor<64x128xbf16>
  ds.weight @norm {sources = [#ds.source<name = "model.norm.weight", file = "model.safetensors", dtype = bf16, shape = [64]>]} : tensor<64xbf16>
  ds.weight @lm_head {sources = [#ds.source<name = "lm_head.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x320xf32> {
    %e = ds.get_weight @embed : tensor<320x64xbf16>
    // 0
    %x = ds.embedding %tokens, %e {ds.impl = "ref.embedding", ds.offsets = array<i64: 0>, ds.sizes = array<i64: 256>}
        : (tensor<?xi32>, tensor<320x64xbf16>) -> tensor<?x64xf32> loc("embed")
    %ln1 = ds.get_weight @ln1 : tensor<64xbf16>
    // 1
    %h = ds.rms_norm %x, %ln1 {eps = 1.0e-06 : f64, ds.impl = "ref.rms_norm", ds.offsets = array<i64: 256>, ds.sizes = array<i64: 256>}
        : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32> loc("l0.input_norm")
    %wqkv = ds.get_weight @qkv : tensor<128x64xbf16>
    %bqkv = ds.get_weight @qkv_bias : tensor<128xbf16>
    // 2
    %qkv = ds.linear %h, %wqkv, %bqkv {ds.impl = "ref.linear", ds.offsets = array<i64: 512>, ds.sizes = array<i64: 512>}
        : (tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128xbf16>) -> tensor<?x128xf32>
        loc(fused["l0.q_proj", "l0.k_proj", "l0.v_proj"])
    // 3
    %q = ds.fused_group(%qkv, %positions) {ds.impl = "interp", ds.offsets = array<i64: 1024>, ds.sizes = array<i64: 256>}
        : (tensor<?x128xf32>, tensor<?xi32>) -> tensor<?x64xf32> {
    ^bb0(%a: tensor<?x128xf32>, %p: tensor<?xi32>):
      %qs = ds.slice %a {offset = 0 : i64, size = 64 : i64} : tensor<?x128xf32> -> tensor<?x64xf32> loc("l0.q_slice")
      %qr = ds.rope %qs, %p {num_heads = 4 : i64, head_dim = 16 : i64, rope = #ds.rope<theta = 1000000.0, rotary_dim = 16>}
          : tensor<?x64xf32>, tensor<?xi32> loc("l0.q_rope")
      ds.yield %qr : tensor<?x64xf32>
    } loc("l0.q_group")
    // 4
    %k = ds.fused_group(%qkv, %positions) {ds.impl = "interp", ds.offsets = array<i64: 4352>, ds.sizes = array<i64: 128>}
        : (tensor<?x128xf32>, tensor<?xi32>) -> tensor<?x32xf32> {
    ^bb0(%a: tensor<?x128xf32>, %p: tensor<?xi32>):
      %ks = ds.slice %a {offset = 64 : i64, size = 32 : i64} : tensor<?x128xf32> -> tensor<?x32xf32>
      %kr = ds.rope %ks, %p {num_heads = 2 : i64, head_dim = 16 : i64, rope = #ds.rope<theta = 1000000.0, rotary_dim = 16>}
          : tensor<?x32xf32>, tensor<?xi32> loc("l0.k_rope")
      %vs = ds.slice %a {offset = 96 : i64, size = 32 : i64} : tensor<?x128xf32> -> tensor<?x32xf32>
      ds.kv_cache_write %kr, %vs {cache = @kv, layer = 0 : i64} : tensor<?x32xf32>, tensor<?x32xf32>
      ds.yield %kr : tensor<?x32xf32>
    } loc("l0.kv_group")
    // 5
    %att = ds.paged_attention %q {cache = @kv, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64,
                                  head_dim = 16 : i64, v_head_dim = 16 : i64, scale = 0.25 : f64,
                                  ds.impl = "ref.paged_attention", ds.offsets = array<i64: 1280>, ds.sizes = array<i64: 256>}
        : tensor<?x64xf32> -> tensor<?x64xf32> loc("l0.attn")
    %wo = ds.get_weight @o : tensor<64x64xbf16>
    // 6
    %o = ds.linear %att, %wo {ds.impl = "ref.linear", ds.offsets = array<i64: 1536>, ds.sizes = array<i64: 256>}
        : (tensor<?x64xf32>, tensor<64x64xbf16>) -> tensor<?x64xf32> loc("l0.o_proj")
    %ln2 = ds.get_weight @ln2 : tensor<64xbf16>
    // 7
    %x2, %h2 = ds.fused_group(%x, %o, %ln2) {ds.impl = "interp", ds.offsets = array<i64: 1792, 2048>, ds.sizes = array<i64: 256, 256>}
        : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<64xbf16>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
    ^bb0(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>, %w: tensor<64xbf16>):
      %s = ds.add %a, %b : tensor<?x64xf32> loc("l0.attn_residual")
      %n = ds.rms_norm %s, %w {eps = 1.0e-06 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32> loc("l0.post_attn_norm")
      ds.yield %s, %n : tensor<?x64xf32>, tensor<?x64xf32>
    } loc("l0.post_attn_group")
    %wgu = ds.get_weight @gate_up : tensor<256x64xbf16>
    // 8
    %gu = ds.linear %h2, %wgu {ds.impl = "ref.linear", ds.offsets = array<i64: 2304>, ds.sizes = array<i64: 1024>}
        : (tensor<?x64xf32>, tensor<256x64xbf16>) -> tensor<?x256xf32> loc(fused["l0.gate_proj", "l0.up_proj"])
    // 9
    %m = ds.fused_group(%gu) {ds.impl = "interp", ds.offsets = array<i64: 3328>, ds.sizes = array<i64: 512>}
        : (tensor<?x256xf32>) -> tensor<?x128xf32> {
    ^bb0(%a: tensor<?x256xf32>):
      %g = ds.slice %a {offset = 0 : i64, size = 128 : i64} : tensor<?x256xf32> -> tensor<?x128xf32>
      %u = ds.slice %a {offset = 128 : i64, size = 128 : i64} : tensor<?x256xf32> -> tensor<?x128xf32>
      %sg = ds.silu %g : tensor<?x128xf32>
      %mm = ds.mul %sg, %u : tensor<?x128xf32> loc("l0.mlp_mul")
      ds.yield %mm : tensor<?x128xf32>
    } loc("l0.mlp_group")
    %wd = ds.get_weight @down : tensor<64x128xbf16>
    // 10
    %d = ds.linear %m, %wd {ds.impl = "ref.linear", ds.offsets = array<i64: 3840>, ds.sizes = array<i64: 256>}
        : (tensor<?x128xf32>, tensor<64x128xbf16>) -> tensor<?x64xf32> loc("l0.down_proj")
    %nw = ds.get_weight @norm : tensor<64xbf16>
    // 11: the same add + rms_norm kernel as 7, under another name.
    %x3, %xf = ds.fused_group(%x2, %d, %nw) {ds.impl = "interp", ds.offsets = array<i64: 0, 4096>, ds.sizes = array<i64: 256, 256>}
        : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<64xbf16>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
    ^bb0(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>, %w: tensor<64xbf16>):
      %s = ds.add %a, %b : tensor<?x64xf32> loc("l0.mlp_residual")
      %n = ds.rms_norm %s, %w {eps = 1.0e-06 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32> loc("final_norm")
      ds.yield %s, %n : tensor<?x64xf32>, tensor<?x64xf32>
    } loc("final_group")
    %lm = ds.get_weight @lm_head : tensor<320x64xbf16>
    // 12
    %l = ds.logits %xf, %lm, %rows {ds.impl = "ref.logits"}
        : (tensor<?x64xf32>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32> loc("logits")
    return %l : tensor<?x320xf32>
  }
}
