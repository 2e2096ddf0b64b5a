// RUN: split-file %s %t
// RUN: ds-opt %t/tp2.mlir --ds-shard=tp=2 | FileCheck %t/tp2.mlir
// RUN: ds-opt %t/tp4.mlir --ds-shard=tp=4 | FileCheck %t/tp4.mlir
// RUN: ds-opt %t/tp1.mlir --ds-shard=tp=1 | FileCheck %t/tp1.mlir
// RUN: ds-opt %t/errors.mlir --ds-shard=tp=3 -split-input-file -verify-diagnostics
// The rest of the pipeline on sharded IR: ds-fuse-weights keeps the sources'
// slices, collectives stay outside fused groups, get kernels and buffers.
// RUN: ds-opt %t/tp2.mlir --ds-compile-pipeline="target=cpu tp=2" | FileCheck %t/tp2.mlir --check-prefix=PIPE
// RUN: ds-opt %t/tp2.mlir --ds-shard=tp=2 --ds-select-kernels=target=sm_90a | FileCheck %t/tp2.mlir --check-prefix=CUDA

// Llama-style layer (hidden 8, 4 query heads, 2 KV heads, head_dim 2,
// intermediate 16, vocab 32), q/k/v biases as in Qwen2.

//--- tp2.mlir
// Tied embeddings: one vocab split serves the embedding and the logits.
// CHECK: module attributes {{{.*}}ds.tp_size = 2 : i64}
// CHECK: ds.kv_cache @kv {{{.*}}num_kv_heads = 1 : i64
// CHECK: ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [32, 8], slice_axis = 0, slice_size = 16, slice_rank_stride = 16>]} : tensor<16x8xbf16>
// CHECK: ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
// CHECK: ds.weight @q {sources = [#ds.source<{{.*}}shape = [8, 8], slice_axis = 0, slice_size = 4, slice_rank_stride = 4>]} : tensor<4x8xbf16>
// CHECK: ds.weight @qb {sources = [#ds.source<{{.*}}shape = [8], slice_axis = 0, slice_size = 4, slice_rank_stride = 4>]} : tensor<4xbf16>
// CHECK: ds.weight @k {sources = [#ds.source<{{.*}}shape = [4, 8], slice_axis = 0, slice_size = 2, slice_rank_stride = 2>]} : tensor<2x8xbf16>
// CHECK: ds.weight @kb {sources = [#ds.source<{{.*}}shape = [4], slice_axis = 0, slice_size = 2, slice_rank_stride = 2>]} : tensor<2xbf16>
// CHECK: ds.weight @v {sources = [#ds.source<{{.*}}shape = [4, 8], slice_axis = 0, slice_size = 2, slice_rank_stride = 2>]} : tensor<2x8xbf16>
// CHECK: ds.weight @vb {sources = [#ds.source<{{.*}}shape = [4], slice_axis = 0, slice_size = 2, slice_rank_stride = 2>]} : tensor<2xbf16>
// CHECK: ds.weight @o {sources = [#ds.source<{{.*}}shape = [8, 8], slice_axis = 1, slice_size = 4, slice_rank_stride = 4>]} : tensor<8x4xbf16>
// CHECK: ds.weight @gate {sources = [#ds.source<{{.*}}shape = [16, 8], slice_axis = 0, slice_size = 8, slice_rank_stride = 8>]} : tensor<8x8xbf16>
// CHECK: ds.weight @up {sources = [#ds.source<{{.*}}shape = [16, 8], slice_axis = 0, slice_size = 8, slice_rank_stride = 8>]} : tensor<8x8xbf16>
// CHECK: ds.weight @down {sources = [#ds.source<{{.*}}shape = [8, 16], slice_axis = 1, slice_size = 8, slice_rank_stride = 8>]} : tensor<8x8xbf16>
// CHECK: func.func @forward({{.*}}) -> tensor<?x32xf32>
// CHECK: %[[E:.*]] = ds.embedding %{{.*}}, %{{.*}} {vocab_parallel} : (tensor<?xi32>, tensor<16x8xbf16>) -> tensor<?x8xf32>
// CHECK-NEXT: %[[X:.*]] = ds.all_reduce %[[E]] : tensor<?x8xf32>
// CHECK: ds.rms_norm %[[X]]
// CHECK: ds.linear {{.*}} -> tensor<?x4xf32>
// CHECK: ds.linear {{.*}} -> tensor<?x2xf32>
// CHECK: ds.linear {{.*}} -> tensor<?x2xf32>
// CHECK: ds.rope {{.*}}num_heads = 2 : i64{{.*}} : tensor<?x4xf32>
// CHECK: ds.rope {{.*}}num_heads = 1 : i64{{.*}} : tensor<?x2xf32>
// CHECK: ds.kv_cache_write {{.*}} : tensor<?x2xf32>, tensor<?x2xf32>
// CHECK: %[[A:.*]] = ds.paged_attention {{.*}}num_heads = 2 : i64, num_kv_heads = 1 : i64{{.*}} : tensor<?x4xf32> -> tensor<?x4xf32>
// CHECK: %[[O:.*]] = ds.linear %[[A]], %{{.*}} : (tensor<?x4xf32>, tensor<8x4xbf16>) -> tensor<?x8xf32>
// CHECK-NEXT: %[[OR:.*]] = ds.all_reduce %[[O]] : tensor<?x8xf32>
// CHECK-NEXT: %[[R:.*]] = ds.add %[[X]], %[[OR]]
// CHECK: ds.linear %[[R]], {{.*}} -> tensor<?x8xf32>
// CHECK: ds.linear %[[R]], {{.*}} -> tensor<?x8xf32>
// CHECK: ds.silu {{.*}} : tensor<?x8xf32>
// CHECK: ds.mul {{.*}} : tensor<?x8xf32>
// CHECK: %[[D:.*]] = ds.linear {{.*}} : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
// CHECK-NEXT: %[[DR:.*]] = ds.all_reduce %[[D]] : tensor<?x8xf32>
// CHECK-NEXT: %[[Y:.*]] = ds.add %[[R]], %[[DR]]
// CHECK: %[[L:.*]] = ds.logits %[[Y]], %{{.*}}, %{{.*}} : (tensor<?x8xf32>, tensor<16x8xbf16>, tensor<?xi32>) -> tensor<?x16xf32>
// CHECK-NEXT: %[[G:.*]] = ds.all_gather %[[L]] : tensor<?x16xf32> -> tensor<?x32xf32>
// CHECK-NEXT: return %[[G]] : tensor<?x32xf32>

// PIPE: ds.weight @qkv {sources = [#ds.source<name = "q", {{.*}}slice_axis = 0, slice_size = 4, slice_rank_stride = 4>, #ds.source<name = "k", {{.*}}slice_axis = 0, slice_size = 2, slice_rank_stride = 2>, #ds.source<name = "v", {{.*}}slice_axis = 0, slice_size = 2, slice_rank_stride = 2>]} : tensor<8x8xbf16>
// PIPE: ds.weight @gate_up {sources = [#ds.source<name = "gate", {{.*}}slice_size = 8, slice_rank_stride = 8>, #ds.source<name = "up", {{.*}}slice_size = 8, slice_rank_stride = 8>]} : tensor<16x8xbf16>
// PIPE: ds.embedding {{.*}}ds.impl = "ref.embedding"{{.*}}vocab_parallel
// PIPE-NEXT: ds.all_reduce {{.*}}ds.impl = "ref.all_reduce", ds.offsets
// PIPE: %[[O:.*]] = ds.linear {{.*}}tensor<8x4xbf16>
// The residual add after the all-reduce moves into it (ds-fuse-residual-add).
// PIPE-NEXT: %[[OR:.*]] = ds.all_reduce %[[O]] residual %{{.*}} {ds.impl = "ref.all_reduce", ds.offsets
// PIPE-NOT: ds.add
// PIPE: %[[L:.*]] = ds.logits {{.*}}ds.impl = "ref.logits", ds.offsets = array<i64: {{[0-9]+}}>, ds.sizes = array<i64: 64>}
// PIPE-NEXT: %[[G:.*]] = ds.all_gather %[[L]] {ds.impl = "ref.all_gather"} : tensor<?x16xf32> -> tensor<?x32xf32>
// PIPE-NEXT: return %[[G]]

// CUDA-COUNT-3: ds.impl = "nccl.all_reduce"
// CUDA: ds.impl = "nccl.all_gather"
module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 2 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [32, 8]>]} : tensor<32x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [4, 8]>]} : tensor<4x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [4]>]} : tensor<4xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [4, 8]>]} : tensor<4x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [4]>]} : tensor<4xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 16]>]} : tensor<8x16xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x32xf32> {
    %e = ds.get_weight @embed : tensor<32x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<32x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<8x8xbf16>
    %qb = ds.get_weight @qb : tensor<8xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<8x8xbf16>, tensor<8xbf16>) -> tensor<?x8xf32>
    %kw = ds.get_weight @k : tensor<4x8xbf16>
    %kb = ds.get_weight @kb : tensor<4xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<4x8xbf16>, tensor<4xbf16>) -> tensor<?x4xf32>
    %vw = ds.get_weight @v : tensor<4x8xbf16>
    %vb = ds.get_weight @vb : tensor<4xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<4x8xbf16>, tensor<4xbf16>) -> tensor<?x4xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 4 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x8xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 2 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x4xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x4xf32>, tensor<?x4xf32>
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x8xf32> -> tensor<?x8xf32>
    %ow = ds.get_weight @o : tensor<8x8xbf16>
    %att = ds.linear %a, %ow : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<16x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %uw = ds.get_weight @up : tensor<16x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %s = ds.silu %g : tensor<?x16xf32>
    %m = ds.mul %s, %u : tensor<?x16xf32>
    %dw = ds.get_weight @down : tensor<8x16xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x16xf32>, tensor<8x16xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<32x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<32x8xbf16>, tensor<?xi32>) -> tensor<?x32xf32>
    return %l : tensor<?x32xf32>
  }
}

//--- tp4.mlir
// Untied lm_head; tp 4 > 2 KV heads: each KV head is shared by 2 ranks
// (slice_rank_divisor 2), one query head per rank.
// CHECK: ds.kv_cache @kv {{{.*}}num_kv_heads = 1 : i64
// CHECK: ds.weight @embed {{.*}}slice_axis = 0, slice_size = 8, slice_rank_stride = 8>]} : tensor<8x8xbf16>
// CHECK: ds.weight @q {{.*}}slice_axis = 0, slice_size = 2, slice_rank_stride = 2>]} : tensor<2x8xbf16>
// CHECK: ds.weight @k {{.*}}shape = [4, 8], slice_axis = 0, slice_size = 2, slice_rank_stride = 2, slice_rank_divisor = 2>]} : tensor<2x8xbf16>
// CHECK: ds.weight @kb {{.*}}shape = [4], slice_axis = 0, slice_size = 2, slice_rank_stride = 2, slice_rank_divisor = 2>]} : tensor<2xbf16>
// CHECK: ds.weight @v {{.*}}shape = [4, 8], slice_axis = 0, slice_size = 2, slice_rank_stride = 2, slice_rank_divisor = 2>]} : tensor<2x8xbf16>
// CHECK: ds.weight @o {{.*}}shape = [8, 8], slice_axis = 1, slice_size = 2, slice_rank_stride = 2>]} : tensor<8x2xbf16>
// CHECK: ds.weight @down {{.*}}shape = [8, 16], slice_axis = 1, slice_size = 4, slice_rank_stride = 4>]} : tensor<8x4xbf16>
// CHECK: ds.weight @lm_head {{.*}}shape = [32, 8], slice_axis = 0, slice_size = 8, slice_rank_stride = 8>]} : tensor<8x8xbf16>
// CHECK: ds.rope {{.*}}num_heads = 1 : i64{{.*}} : tensor<?x2xf32>
// CHECK: ds.rope {{.*}}num_heads = 1 : i64{{.*}} : tensor<?x2xf32>
// CHECK: ds.paged_attention {{.*}}num_heads = 1 : i64, num_kv_heads = 1 : i64{{.*}} : tensor<?x2xf32> -> tensor<?x2xf32>
// CHECK: %[[L:.*]] = ds.logits {{.*}} -> tensor<?x8xf32>
// CHECK-NEXT: ds.all_gather %[[L]] : tensor<?x8xf32> -> tensor<?x32xf32>
module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 2 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [32, 8]>]} : tensor<32x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [4, 8]>]} : tensor<4x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [4]>]} : tensor<4xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [4, 8]>]} : tensor<4x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [4]>]} : tensor<4xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 16]>]} : tensor<8x16xbf16>
  ds.weight @lm_head {sources = [#ds.source<name = "lm_head", file = "model.safetensors", dtype = bf16, shape = [32, 8]>]} : tensor<32x8xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x32xf32> {
    %e = ds.get_weight @embed : tensor<32x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<32x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<8x8xbf16>
    %qb = ds.get_weight @qb : tensor<8xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<8x8xbf16>, tensor<8xbf16>) -> tensor<?x8xf32>
    %kw = ds.get_weight @k : tensor<4x8xbf16>
    %kb = ds.get_weight @kb : tensor<4xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<4x8xbf16>, tensor<4xbf16>) -> tensor<?x4xf32>
    %vw = ds.get_weight @v : tensor<4x8xbf16>
    %vb = ds.get_weight @vb : tensor<4xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<4x8xbf16>, tensor<4xbf16>) -> tensor<?x4xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 4 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x8xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 2 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x4xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x4xf32>, tensor<?x4xf32>
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x8xf32> -> tensor<?x8xf32>
    %ow = ds.get_weight @o : tensor<8x8xbf16>
    %att = ds.linear %a, %ow : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<16x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %uw = ds.get_weight @up : tensor<16x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %s = ds.silu %g : tensor<?x16xf32>
    %m = ds.mul %s, %u : tensor<?x16xf32>
    %dw = ds.get_weight @down : tensor<8x16xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x16xf32>, tensor<8x16xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @lm_head : tensor<32x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<32x8xbf16>, tensor<?xi32>) -> tensor<?x32xf32>
    return %l : tensor<?x32xf32>
  }
}

//--- tp1.mlir
// tp 1 only records the degree.
// CHECK: module attributes {{{.*}}ds.tp_size = 1 : i64}
// CHECK-NOT: slice_axis
// CHECK-NOT: ds.all_
module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 2 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [32, 8]>]} : tensor<32x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [4, 8]>]} : tensor<4x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [4]>]} : tensor<4xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [4, 8]>]} : tensor<4x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [4]>]} : tensor<4xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 16]>]} : tensor<8x16xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x32xf32> {
    %e = ds.get_weight @embed : tensor<32x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<32x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<8x8xbf16>
    %qb = ds.get_weight @qb : tensor<8xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<8x8xbf16>, tensor<8xbf16>) -> tensor<?x8xf32>
    %kw = ds.get_weight @k : tensor<4x8xbf16>
    %kb = ds.get_weight @kb : tensor<4xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<4x8xbf16>, tensor<4xbf16>) -> tensor<?x4xf32>
    %vw = ds.get_weight @v : tensor<4x8xbf16>
    %vb = ds.get_weight @vb : tensor<4xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<4x8xbf16>, tensor<4xbf16>) -> tensor<?x4xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 4 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x8xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 2 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x4xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x4xf32>, tensor<?x4xf32>
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x8xf32> -> tensor<?x8xf32>
    %ow = ds.get_weight @o : tensor<8x8xbf16>
    %att = ds.linear %a, %ow : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<16x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %uw = ds.get_weight @up : tensor<16x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %s = ds.silu %g : tensor<?x16xf32>
    %m = ds.mul %s, %u : tensor<?x16xf32>
    %dw = ds.get_weight @down : tensor<8x16xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x16xf32>, tensor<8x16xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<32x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<32x8xbf16>, tensor<?xi32>) -> tensor<?x32xf32>
    return %l : tensor<?x32xf32>
  }
}

//--- errors.mlir
// Every split that does not work out at tp 3, and what cannot be sharded.
module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 2 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [30, 8]>]} : tensor<30x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [4, 8]>]} : tensor<4x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [4]>]} : tensor<4xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [4, 8]>]} : tensor<4x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [4]>]} : tensor<4xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 16]>]} : tensor<8x16xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x30xf32> {
    %e = ds.get_weight @embed : tensor<30x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<30x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<8x8xbf16>
    %qb = ds.get_weight @qb : tensor<8xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<8x8xbf16>, tensor<8xbf16>) -> tensor<?x8xf32>
    %kw = ds.get_weight @k : tensor<4x8xbf16>
    %kb = ds.get_weight @kb : tensor<4xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<4x8xbf16>, tensor<4xbf16>) -> tensor<?x4xf32>
    %vw = ds.get_weight @v : tensor<4x8xbf16>
    %vb = ds.get_weight @vb : tensor<4xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<4x8xbf16>, tensor<4xbf16>) -> tensor<?x4xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 4 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x8xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 2 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x4xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x4xf32>, tensor<?x4xf32>
    // expected-error @+1 {{ds-shard: num_heads 4 is not divisible by tp 3}}
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x8xf32> -> tensor<?x8xf32>
    %ow = ds.get_weight @o : tensor<8x8xbf16>
    %att = ds.linear %a, %ow : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<16x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %uw = ds.get_weight @up : tensor<16x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %s = ds.silu %g : tensor<?x16xf32>
    %m = ds.mul %s, %u : tensor<?x16xf32>
    %dw = ds.get_weight @down : tensor<8x16xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x16xf32>, tensor<8x16xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<30x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<30x8xbf16>, tensor<?xi32>) -> tensor<?x30xf32>
    return %l : tensor<?x30xf32>
  }
}

// -----

module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 4 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [30, 8]>]} : tensor<30x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [24, 8]>]} : tensor<24x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [24]>]} : tensor<24xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 24]>]} : tensor<8x24xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 16]>]} : tensor<8x16xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x30xf32> {
    %e = ds.get_weight @embed : tensor<30x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<30x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<24x8xbf16>
    %qb = ds.get_weight @qb : tensor<24xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<24x8xbf16>, tensor<24xbf16>) -> tensor<?x24xf32>
    %kw = ds.get_weight @k : tensor<8x8xbf16>
    %kb = ds.get_weight @kb : tensor<8xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<8x8xbf16>, tensor<8xbf16>) -> tensor<?x8xf32>
    %vw = ds.get_weight @v : tensor<8x8xbf16>
    %vb = ds.get_weight @vb : tensor<8xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<8x8xbf16>, tensor<8xbf16>) -> tensor<?x8xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 12 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x24xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 4 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x8xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x8xf32>
    // expected-error @+1 {{ds-shard: num_kv_heads 4 is not divisible by tp 3}}
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 12 : i64, num_kv_heads = 4 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x24xf32> -> tensor<?x24xf32>
    %ow = ds.get_weight @o : tensor<8x24xbf16>
    %att = ds.linear %a, %ow : (tensor<?x24xf32>, tensor<8x24xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<16x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %uw = ds.get_weight @up : tensor<16x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %s = ds.silu %g : tensor<?x16xf32>
    %m = ds.mul %s, %u : tensor<?x16xf32>
    %dw = ds.get_weight @down : tensor<8x16xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x16xf32>, tensor<8x16xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<30x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<30x8xbf16>, tensor<?xi32>) -> tensor<?x30xf32>
    return %l : tensor<?x30xf32>
  }
}

// -----

module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 2 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [30, 8]>]} : tensor<30x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [12, 8]>]} : tensor<12x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [12]>]} : tensor<12xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [4, 8]>]} : tensor<4x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [4]>]} : tensor<4xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [4, 8]>]} : tensor<4x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [4]>]} : tensor<4xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 12]>]} : tensor<8x12xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 16]>]} : tensor<8x16xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x30xf32> {
    %e = ds.get_weight @embed : tensor<30x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<30x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<12x8xbf16>
    %qb = ds.get_weight @qb : tensor<12xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<12x8xbf16>, tensor<12xbf16>) -> tensor<?x12xf32>
    %kw = ds.get_weight @k : tensor<4x8xbf16>
    %kb = ds.get_weight @kb : tensor<4xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<4x8xbf16>, tensor<4xbf16>) -> tensor<?x4xf32>
    %vw = ds.get_weight @v : tensor<4x8xbf16>
    %vb = ds.get_weight @vb : tensor<4xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<4x8xbf16>, tensor<4xbf16>) -> tensor<?x4xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 6 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x12xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 2 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x4xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x4xf32>, tensor<?x4xf32>
    // expected-error @+1 {{ds-shard: tp 3 is larger than num_kv_heads 2 but not a multiple of it}}
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 6 : i64, num_kv_heads = 2 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x12xf32> -> tensor<?x12xf32>
    %ow = ds.get_weight @o : tensor<8x12xbf16>
    %att = ds.linear %a, %ow : (tensor<?x12xf32>, tensor<8x12xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<16x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %uw = ds.get_weight @up : tensor<16x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %s = ds.silu %g : tensor<?x16xf32>
    %m = ds.mul %s, %u : tensor<?x16xf32>
    %dw = ds.get_weight @down : tensor<8x16xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x16xf32>, tensor<8x16xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<30x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<30x8xbf16>, tensor<?xi32>) -> tensor<?x30xf32>
    return %l : tensor<?x30xf32>
  }
}

// -----

module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 3 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [30, 8]>]} : tensor<30x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [12, 8]>]} : tensor<12x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [12]>]} : tensor<12xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 12]>]} : tensor<8x12xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 16]>]} : tensor<8x16xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x30xf32> {
    %e = ds.get_weight @embed : tensor<30x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<30x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<12x8xbf16>
    %qb = ds.get_weight @qb : tensor<12xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<12x8xbf16>, tensor<12xbf16>) -> tensor<?x12xf32>
    %kw = ds.get_weight @k : tensor<6x8xbf16>
    %kb = ds.get_weight @kb : tensor<6xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %vw = ds.get_weight @v : tensor<6x8xbf16>
    %vb = ds.get_weight @vb : tensor<6xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 6 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x12xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 3 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x6xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x6xf32>, tensor<?x6xf32>
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 6 : i64, num_kv_heads = 3 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x12xf32> -> tensor<?x12xf32>
    %ow = ds.get_weight @o : tensor<8x12xbf16>
    %att = ds.linear %a, %ow : (tensor<?x12xf32>, tensor<8x12xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<16x8xbf16>
    // expected-error @+1 {{ds-shard: intermediate size 16 is not divisible by tp 3}}
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %uw = ds.get_weight @up : tensor<16x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<16x8xbf16>) -> tensor<?x16xf32>
    %s = ds.silu %g : tensor<?x16xf32>
    %m = ds.mul %s, %u : tensor<?x16xf32>
    %dw = ds.get_weight @down : tensor<8x16xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x16xf32>, tensor<8x16xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<30x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<30x8xbf16>, tensor<?xi32>) -> tensor<?x30xf32>
    return %l : tensor<?x30xf32>
  }
}

// -----

module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 3 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [32, 8]>]} : tensor<32x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [12, 8]>]} : tensor<12x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [12]>]} : tensor<12xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 12]>]} : tensor<8x12xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [18, 8]>]} : tensor<18x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [18, 8]>]} : tensor<18x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 18]>]} : tensor<8x18xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x32xf32> {
    %e = ds.get_weight @embed : tensor<32x8xbf16>
    // expected-error @+1 {{ds-shard: vocab size 32 is not divisible by tp 3}}
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<32x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<12x8xbf16>
    %qb = ds.get_weight @qb : tensor<12xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<12x8xbf16>, tensor<12xbf16>) -> tensor<?x12xf32>
    %kw = ds.get_weight @k : tensor<6x8xbf16>
    %kb = ds.get_weight @kb : tensor<6xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %vw = ds.get_weight @v : tensor<6x8xbf16>
    %vb = ds.get_weight @vb : tensor<6xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 6 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x12xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 3 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x6xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x6xf32>, tensor<?x6xf32>
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 6 : i64, num_kv_heads = 3 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x12xf32> -> tensor<?x12xf32>
    %ow = ds.get_weight @o : tensor<8x12xbf16>
    %att = ds.linear %a, %ow : (tensor<?x12xf32>, tensor<8x12xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<18x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<18x8xbf16>) -> tensor<?x18xf32>
    %uw = ds.get_weight @up : tensor<18x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<18x8xbf16>) -> tensor<?x18xf32>
    %s = ds.silu %g : tensor<?x18xf32>
    %m = ds.mul %s, %u : tensor<?x18xf32>
    %dw = ds.get_weight @down : tensor<8x18xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x18xf32>, tensor<8x18xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<32x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<32x8xbf16>, tensor<?xi32>) -> tensor<?x32xf32>
    return %l : tensor<?x32xf32>
  }
}

// -----

module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 3 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [30, 8]>]} : tensor<30x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [12, 8]>]} : tensor<12x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [12]>]} : tensor<12xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 12]>]} : tensor<8x12xbf16>
  ds.weight @ob {sources = [#ds.source<name = "ob", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [18, 8]>]} : tensor<18x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [18, 8]>]} : tensor<18x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 18]>]} : tensor<8x18xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x30xf32> {
    %e = ds.get_weight @embed : tensor<30x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<30x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<12x8xbf16>
    %qb = ds.get_weight @qb : tensor<12xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<12x8xbf16>, tensor<12xbf16>) -> tensor<?x12xf32>
    %kw = ds.get_weight @k : tensor<6x8xbf16>
    %kb = ds.get_weight @kb : tensor<6xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %vw = ds.get_weight @v : tensor<6x8xbf16>
    %vb = ds.get_weight @vb : tensor<6xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 6 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x12xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 3 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x6xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x6xf32>, tensor<?x6xf32>
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 6 : i64, num_kv_heads = 3 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x12xf32> -> tensor<?x12xf32>
    %ow = ds.get_weight @o : tensor<8x12xbf16>
    %obias = ds.get_weight @ob : tensor<8xbf16>
    // expected-error @+1 {{ds-shard: the row-parallel o_proj has a bias, which tensor parallelism does not support yet}}
    %att = ds.linear %a, %ow, %obias : (tensor<?x12xf32>, tensor<8x12xbf16>, tensor<8xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<18x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<18x8xbf16>) -> tensor<?x18xf32>
    %uw = ds.get_weight @up : tensor<18x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<18x8xbf16>) -> tensor<?x18xf32>
    %s = ds.silu %g : tensor<?x18xf32>
    %m = ds.mul %s, %u : tensor<?x18xf32>
    %dw = ds.get_weight @down : tensor<8x18xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x18xf32>, tensor<8x18xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<30x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<30x8xbf16>, tensor<?xi32>) -> tensor<?x30xf32>
    return %l : tensor<?x30xf32>
  }
}

// -----

module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 3 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [30, 8]>]} : tensor<30x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [12, 8]>]} : tensor<12x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [12]>]} : tensor<12xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 12]>]} : tensor<8x12xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [18, 8]>]} : tensor<18x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [18, 8]>]} : tensor<18x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 18]>]} : tensor<8x18xbf16>
  ds.weight @extra {sources = [#ds.source<name = "extra", file = "model.safetensors", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x30xf32> {
    %e = ds.get_weight @embed : tensor<30x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<30x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<12x8xbf16>
    %qb = ds.get_weight @qb : tensor<12xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<12x8xbf16>, tensor<12xbf16>) -> tensor<?x12xf32>
    %kw = ds.get_weight @k : tensor<6x8xbf16>
    %kb = ds.get_weight @kb : tensor<6xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %vw = ds.get_weight @v : tensor<6x8xbf16>
    %vb = ds.get_weight @vb : tensor<6xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 6 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x12xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 3 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x6xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x6xf32>, tensor<?x6xf32>
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 6 : i64, num_kv_heads = 3 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x12xf32> -> tensor<?x12xf32>
    %ow = ds.get_weight @o : tensor<8x12xbf16>
    %att = ds.linear %a, %ow : (tensor<?x12xf32>, tensor<8x12xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<18x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<18x8xbf16>) -> tensor<?x18xf32>
    %uw = ds.get_weight @up : tensor<18x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<18x8xbf16>) -> tensor<?x18xf32>
    %s = ds.silu %g : tensor<?x18xf32>
    %m = ds.mul %s, %u : tensor<?x18xf32>
    %dw = ds.get_weight @down : tensor<8x18xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x18xf32>, tensor<8x18xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %xw = ds.get_weight @extra : tensor<8x8xbf16>
    // expected-error @+1 {{ds-shard: this linear is neither part of an attention block nor of a gated MLP; cannot shard}}
    %y2 = ds.linear %y, %xw : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<30x8xbf16>
    %l = ds.logits %y2, %lw, %rows : (tensor<?x8xf32>, tensor<30x8xbf16>, tensor<?xi32>) -> tensor<?x30xf32>
    return %l : tensor<?x30xf32>
  }
}

// -----

module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 3 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [30, 8]>]} : tensor<30x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q0", file = "model.safetensors", dtype = bf16, shape = [6, 8]>, #ds.source<name = "q1", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<12x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [12]>]} : tensor<12xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 12]>]} : tensor<8x12xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [18, 8]>]} : tensor<18x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [18, 8]>]} : tensor<18x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 18]>]} : tensor<8x18xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x30xf32> {
    %e = ds.get_weight @embed : tensor<30x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<30x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<12x8xbf16>
    %qb = ds.get_weight @qb : tensor<12xbf16>
    // expected-error @+1 {{ds-shard: the q projection weight @q is built from 2 sources; only a single whole checkpoint tensor can be sharded}}
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<12x8xbf16>, tensor<12xbf16>) -> tensor<?x12xf32>
    %kw = ds.get_weight @k : tensor<6x8xbf16>
    %kb = ds.get_weight @kb : tensor<6xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %vw = ds.get_weight @v : tensor<6x8xbf16>
    %vb = ds.get_weight @vb : tensor<6xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 6 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x12xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 3 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x6xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x6xf32>, tensor<?x6xf32>
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 6 : i64, num_kv_heads = 3 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x12xf32> -> tensor<?x12xf32>
    %ow = ds.get_weight @o : tensor<8x12xbf16>
    %att = ds.linear %a, %ow : (tensor<?x12xf32>, tensor<8x12xbf16>) -> tensor<?x8xf32>
    %r = ds.add %x, %att : tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<18x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<18x8xbf16>) -> tensor<?x18xf32>
    %uw = ds.get_weight @up : tensor<18x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<18x8xbf16>) -> tensor<?x18xf32>
    %s = ds.silu %g : tensor<?x18xf32>
    %m = ds.mul %s, %u : tensor<?x18xf32>
    %dw = ds.get_weight @down : tensor<8x18xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x18xf32>, tensor<8x18xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<30x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<30x8xbf16>, tensor<?xi32>) -> tensor<?x30xf32>
    return %l : tensor<?x30xf32>
  }
}

// -----

// A residual fused before sharding would be summed over the ranks.

module attributes {ds.activation_dtype = f32, ds.max_model_len = 64 : i64, ds.target = "cpu"} {
  ds.kv_cache @kv {dtype = f32, k_dim = 2 : i64, num_kv_heads = 3 : i64, num_layers = 1 : i64, v_dim = 2 : i64}
  ds.weight @embed {sources = [#ds.source<name = "embed", file = "model.safetensors", dtype = bf16, shape = [30, 8]>]} : tensor<30x8xbf16>
  ds.weight @norm {sources = [#ds.source<name = "norm", file = "model.safetensors", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @q {sources = [#ds.source<name = "q", file = "model.safetensors", dtype = bf16, shape = [12, 8]>]} : tensor<12x8xbf16>
  ds.weight @qb {sources = [#ds.source<name = "qb", file = "model.safetensors", dtype = bf16, shape = [12]>]} : tensor<12xbf16>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @kb {sources = [#ds.source<name = "kb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @v {sources = [#ds.source<name = "v", file = "model.safetensors", dtype = bf16, shape = [6, 8]>]} : tensor<6x8xbf16>
  ds.weight @vb {sources = [#ds.source<name = "vb", file = "model.safetensors", dtype = bf16, shape = [6]>]} : tensor<6xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "model.safetensors", dtype = bf16, shape = [8, 12]>]} : tensor<8x12xbf16>
  ds.weight @gate {sources = [#ds.source<name = "gate", file = "model.safetensors", dtype = bf16, shape = [18, 8]>]} : tensor<18x8xbf16>
  ds.weight @up {sources = [#ds.source<name = "up", file = "model.safetensors", dtype = bf16, shape = [18, 8]>]} : tensor<18x8xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "model.safetensors", dtype = bf16, shape = [8, 18]>]} : tensor<8x18xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x30xf32> {
    %e = ds.get_weight @embed : tensor<30x8xbf16>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<30x8xbf16>) -> tensor<?x8xf32>
    %nw = ds.get_weight @norm : tensor<8xbf16>
    %n = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x8xf32>
    %qw = ds.get_weight @q : tensor<12x8xbf16>
    %qb = ds.get_weight @qb : tensor<12xbf16>
    %q0 = ds.linear %n, %qw, %qb : (tensor<?x8xf32>, tensor<12x8xbf16>, tensor<12xbf16>) -> tensor<?x12xf32>
    %kw = ds.get_weight @k : tensor<6x8xbf16>
    %kb = ds.get_weight @kb : tensor<6xbf16>
    %k0 = ds.linear %n, %kw, %kb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %vw = ds.get_weight @v : tensor<6x8xbf16>
    %vb = ds.get_weight @vb : tensor<6xbf16>
    %v0 = ds.linear %n, %vw, %vb : (tensor<?x8xf32>, tensor<6x8xbf16>, tensor<6xbf16>) -> tensor<?x6xf32>
    %q1 = ds.rope %q0, %pos {head_dim = 2 : i64, num_heads = 6 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x12xf32>, tensor<?xi32>
    %k1 = ds.rope %k0, %pos {head_dim = 2 : i64, num_heads = 3 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 2>} : tensor<?x6xf32>, tensor<?xi32>
    ds.kv_cache_write %k1, %v0 {cache = @kv, layer = 0 : i64} : tensor<?x6xf32>, tensor<?x6xf32>
    %a = ds.paged_attention %q1 {cache = @kv, head_dim = 2 : i64, layer = 0 : i64, num_heads = 6 : i64, num_kv_heads = 3 : i64, scale = 5.000000e-01 : f64, v_head_dim = 2 : i64} : tensor<?x12xf32> -> tensor<?x12xf32>
    %ow = ds.get_weight @o : tensor<8x12xbf16>
    // expected-error @+1 {{ds-shard: this linear has a fused residual; run ds-shard before ds-fuse-residual-add}}
    %r = ds.linear %a, %ow residual %x : (tensor<?x12xf32>, tensor<8x12xbf16>, tensor<?x8xf32>) -> tensor<?x8xf32>
    %gw = ds.get_weight @gate : tensor<18x8xbf16>
    %g = ds.linear %r, %gw : (tensor<?x8xf32>, tensor<18x8xbf16>) -> tensor<?x18xf32>
    %uw = ds.get_weight @up : tensor<18x8xbf16>
    %u = ds.linear %r, %uw : (tensor<?x8xf32>, tensor<18x8xbf16>) -> tensor<?x18xf32>
    %s = ds.silu %g : tensor<?x18xf32>
    %m = ds.mul %s, %u : tensor<?x18xf32>
    %dw = ds.get_weight @down : tensor<8x18xbf16>
    %dn = ds.linear %m, %dw : (tensor<?x18xf32>, tensor<8x18xbf16>) -> tensor<?x8xf32>
    %y = ds.add %r, %dn : tensor<?x8xf32>
    %lw = ds.get_weight @embed : tensor<30x8xbf16>
    %l = ds.logits %y, %lw, %rows : (tensor<?x8xf32>, tensor<30x8xbf16>, tensor<?xi32>) -> tensor<?x30xf32>
    return %l : tensor<?x30xf32>
  }
}
