// RUN: ds-opt %s --ds-compile-pipeline | FileCheck %s --check-prefix=CPU
// The sm_90a runs need NVRTC (DS_ENABLE_CUDA=ON).
// RUN: %if nvrtc %{ ds-opt %s --ds-compile-pipeline=target=sm_90a | FileCheck %s --check-prefix=SM90 %}
// RUN: %if nvrtc %{ sed -e "s/ds.target = \"cpu\"/ds.target = \"sm_90a\"/" %s | ds-opt --ds-compile-pipeline | FileCheck %s --check-prefixes=SM90,SM90MOD %}
// ds-gemv-prologue reads the module's ds.target (no option), so only the
// sm_90a module (SM90MOD) gets the prologue marks, not target=sm_90a alone.

// One Qwen2-style layer as the importer emits it, through the whole pipeline.

// CPU: module attributes {ds.activation_dtype = f32, ds.arena_alignment = 16 : i64, ds.arena_bytes_per_token = {{[0-9]+}} : i64
// CPU: ds.weight @model.layers.0.self_attn.qkv_proj.weight
// CPU: ds.weight @model.layers.0.self_attn.qkv_proj.bias
// CPU: ds.weight @model.layers.0.mlp.gate_up_proj.weight
// CPU-LABEL: func.func @forward
// CPU: %[[X:[0-9]+]] = ds.embedding {{.*}}ds.impl = "ref.embedding", ds.offsets
// CPU: ds.rms_norm {{.*}}ds.impl = "ref.rms_norm"
// CPU: ds.linear {{.*}}ds.impl = "ref.linear"{{.*}} -> tensor<?x64xf32>
// CPU: ds.fused_group({{.*}}) {ds.impl = "interp", ds.offsets
// CPU: ds.rope
// CPU: ds.fused_group({{.*}}) {ds.impl = "interp"} : (tensor<?x64xf32>, tensor<?xi32>) -> () {
// CPU: ds.kv_cache_write
// CPU: ds.paged_attention {{.*}}ds.impl = "ref.paged_attention"
// The residual adds run in the o_proj / down_proj epilogues
// (ds-fuse-residual-add); the norms after them are lone ops on the CPU.
// CPU-NOT: ds.add
// CPU: %[[H:[0-9]+]] = ds.linear %{{.*}}, %{{.*}} residual %[[X]] {ds.impl = "ref.linear"
// CPU: ds.rms_norm %[[H]]
// CPU: ds.linear {{.*}} -> tensor<?x128xf32>
// CPU: ds.fused_group
// CPU: ds.silu
// CPU-NEXT: ds.mul
// CPU-NOT: ds.add
// CPU: %[[H2:[0-9]+]] = ds.linear %{{.*}}, %{{.*}} residual %[[H]] {ds.impl = "ref.linear"
// CPU: ds.rms_norm %[[H2]]
// CPU-NEXT: ds.logits {{.*}}ds.impl = "ref.logits"
// CPU-NOT: cuda
// CPU-NOT: ds.prologue
// CPU-NOT: ds.rope_prologue

// Every row-wise op runs in a generated kernel on CUDA targets.
// SM90-NOT: ds.impl = "cuda.rms_norm"
// SM90: ds.embedding {{.*}}ds.impl = "cuda.embedding"
// SM90-NEXT: ds.get_weight @model.layers.0.input_layernorm.weight
// SM90-NEXT: ds.fused_group({{.*}}ds.impl = "nvrtc"
// SM90: ds.rms_norm
// A linear after a pure-RMSNorm group may normalize in its GEMV prologue.
// SM90MOD: ds.linear {{.*}}ds.impl = "cublaslt.gemm"{{.*}}ds.prologue = "rms_norm"
// SM90: ds.linear {{.*}} residual {{.*}}ds.impl = "cublaslt.gemm"
// SM90: ds.fused_group({{.*}}) {ds.block_dim = {{[0-9]+}} : i64, ds.cuda_arch = "sm_90a", ds.cuda_binary = "\7FELF
// SM90-SAME: ds.impl = "nvrtc"
// SM90: ds.logits {{.*}}ds.impl = "cublaslt.gemm"

module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 128 : i64} {
  ds.weight @model.embed_tokens.weight {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [64, 32]>]} : tensor<64x32xbf16>
  ds.weight @model.layers.0.input_layernorm.weight {sources = [#ds.source<name = "model.layers.0.input_layernorm.weight", file = "model.safetensors", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
  ds.weight @model.layers.0.self_attn.q_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.q_proj.weight", file = "model.safetensors", dtype = bf16, shape = [32, 32]>]} : tensor<32x32xbf16>
  ds.weight @model.layers.0.self_attn.q_proj.bias {sources = [#ds.source<name = "model.layers.0.self_attn.q_proj.bias", file = "model.safetensors", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
  ds.weight @model.layers.0.self_attn.k_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.k_proj.weight", file = "model.safetensors", dtype = bf16, shape = [16, 32]>]} : tensor<16x32xbf16>
  ds.weight @model.layers.0.self_attn.k_proj.bias {sources = [#ds.source<name = "model.layers.0.self_attn.k_proj.bias", file = "model.safetensors", dtype = bf16, shape = [16]>]} : tensor<16xbf16>
  ds.weight @model.layers.0.self_attn.v_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.v_proj.weight", file = "model.safetensors", dtype = bf16, shape = [16, 32]>]} : tensor<16x32xbf16>
  ds.weight @model.layers.0.self_attn.v_proj.bias {sources = [#ds.source<name = "model.layers.0.self_attn.v_proj.bias", file = "model.safetensors", dtype = bf16, shape = [16]>]} : tensor<16xbf16>
  ds.weight @model.layers.0.self_attn.o_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.o_proj.weight", file = "model.safetensors", dtype = bf16, shape = [32, 32]>]} : tensor<32x32xbf16>
  ds.weight @model.layers.0.post_attention_layernorm.weight {sources = [#ds.source<name = "model.layers.0.post_attention_layernorm.weight", file = "model.safetensors", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
  ds.weight @model.layers.0.mlp.gate_proj.weight {sources = [#ds.source<name = "model.layers.0.mlp.gate_proj.weight", file = "model.safetensors", dtype = bf16, shape = [64, 32]>]} : tensor<64x32xbf16>
  ds.weight @model.layers.0.mlp.up_proj.weight {sources = [#ds.source<name = "model.layers.0.mlp.up_proj.weight", file = "model.safetensors", dtype = bf16, shape = [64, 32]>]} : tensor<64x32xbf16>
  ds.weight @model.layers.0.mlp.down_proj.weight {sources = [#ds.source<name = "model.layers.0.mlp.down_proj.weight", file = "model.safetensors", dtype = bf16, shape = [32, 64]>]} : tensor<32x64xbf16>
  ds.weight @model.norm.weight {sources = [#ds.source<name = "model.norm.weight", file = "model.safetensors", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 8 : i64, v_dim = 8 : i64, page_size = 16 : i64, dtype = bf16}
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %logit_rows: tensor<?xi32>) -> tensor<?x64xf32> {
    %e = ds.get_weight @model.embed_tokens.weight : tensor<64x32xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<64x32xbf16>) -> tensor<?x32xf32>
    %n1w = ds.get_weight @model.layers.0.input_layernorm.weight : tensor<32xbf16>
    %n1 = ds.rms_norm %x, %n1w {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xf32>
    %qw = ds.get_weight @model.layers.0.self_attn.q_proj.weight : tensor<32x32xbf16>
    %qb = ds.get_weight @model.layers.0.self_attn.q_proj.bias : tensor<32xbf16>
    %q = ds.linear %n1, %qw, %qb : (tensor<?x32xf32>, tensor<32x32xbf16>, tensor<32xbf16>) -> tensor<?x32xf32>
    %kw = ds.get_weight @model.layers.0.self_attn.k_proj.weight : tensor<16x32xbf16>
    %kb = ds.get_weight @model.layers.0.self_attn.k_proj.bias : tensor<16xbf16>
    %k = ds.linear %n1, %kw, %kb : (tensor<?x32xf32>, tensor<16x32xbf16>, tensor<16xbf16>) -> tensor<?x16xf32>
    %vw = ds.get_weight @model.layers.0.self_attn.v_proj.weight : tensor<16x32xbf16>
    %vb = ds.get_weight @model.layers.0.self_attn.v_proj.bias : tensor<16xbf16>
    %v = ds.linear %n1, %vw, %vb : (tensor<?x32xf32>, tensor<16x32xbf16>, tensor<16xbf16>) -> tensor<?x16xf32>
    %qr = ds.rope %q, %positions {num_heads = 4 : i64, head_dim = 8 : i64, rope = #ds.rope<theta = 1000000.0, rotary_dim = 8>} : tensor<?x32xf32>, tensor<?xi32>
    %kr = ds.rope %k, %positions {num_heads = 2 : i64, head_dim = 8 : i64, rope = #ds.rope<theta = 1000000.0, rotary_dim = 8>} : tensor<?x16xf32>, tensor<?xi32>
    ds.kv_cache_write %kr, %v {cache = @kv, layer = 0 : i64} : tensor<?x16xf32>, tensor<?x16xf32>
    %a = ds.paged_attention %qr {cache = @kv, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x32xf32> -> tensor<?x32xf32>
    %ow = ds.get_weight @model.layers.0.self_attn.o_proj.weight : tensor<32x32xbf16>
    %o = ds.linear %a, %ow : (tensor<?x32xf32>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    %h = ds.add %x, %o : tensor<?x32xf32>
    %n2w = ds.get_weight @model.layers.0.post_attention_layernorm.weight : tensor<32xbf16>
    %n2 = ds.rms_norm %h, %n2w {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xf32>
    %gw = ds.get_weight @model.layers.0.mlp.gate_proj.weight : tensor<64x32xbf16>
    %g = ds.linear %n2, %gw : (tensor<?x32xf32>, tensor<64x32xbf16>) -> tensor<?x64xf32>
    %uw = ds.get_weight @model.layers.0.mlp.up_proj.weight : tensor<64x32xbf16>
    %u = ds.linear %n2, %uw : (tensor<?x32xf32>, tensor<64x32xbf16>) -> tensor<?x64xf32>
    %s = ds.silu %g : tensor<?x64xf32>
    %m = ds.mul %s, %u : tensor<?x64xf32>
    %dw = ds.get_weight @model.layers.0.mlp.down_proj.weight : tensor<32x64xbf16>
    %d = ds.linear %m, %dw : (tensor<?x64xf32>, tensor<32x64xbf16>) -> tensor<?x32xf32>
    %h2 = ds.add %h, %d : tensor<?x32xf32>
    %nfw = ds.get_weight @model.norm.weight : tensor<32xbf16>
    %nf = ds.rms_norm %h2, %nfw {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xf32>
    %l = ds.logits %nf, %e, %logit_rows : (tensor<?x32xf32>, tensor<64x32xbf16>, tensor<?xi32>) -> tensor<?x64xf32>
    return %l : tensor<?x64xf32>
  }
}
