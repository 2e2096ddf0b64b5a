// RUN: ds-opt %s | FileCheck %s
// RUN: ds-opt %s | ds-opt | FileCheck %s
// RUN: ds-opt %s --mlir-print-op-generic | ds-opt | FileCheck %s

// Tensor-parallel pieces round trip: ds.tp_size, sliced sources with a rank
// divisor, vocab-parallel embedding, ds.all_reduce (with and without a
// residual), ds.all_gather.

// CHECK: module attributes {{{.*}}ds.tp_size = 2 : i64
module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 128 : i64, ds.tp_size = 2 : i64} {
  // CHECK: #ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [64, 32], slice_axis = 0, slice_size = 32, slice_rank_stride = 32>
  ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [64, 32], slice_axis = 0, slice_start = 0, slice_size = 32, slice_rank_stride = 32>]} : tensor<32x32xbf16>
  // CHECK: #ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [8, 32], slice_axis = 0, slice_size = 8, slice_rank_stride = 8, slice_rank_divisor = 2>
  ds.weight @k {sources = [#ds.source<name = "k", file = "model.safetensors", dtype = bf16, shape = [8, 32], slice_axis = 0, slice_size = 8, slice_rank_stride = 8, slice_rank_divisor = 2>]} : tensor<8x32xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x64xf32> {
    %e = ds.get_weight @embed : tensor<32x32xbf16>
    // CHECK: %[[X:.*]] = ds.embedding %{{.*}}, %{{.*}} {vocab_parallel} : (tensor<?xi32>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    %x = ds.embedding %tokens, %e {vocab_parallel} : (tensor<?xi32>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    // CHECK: %[[S:.*]] = ds.all_reduce %[[X]] : tensor<?x32xf32>
    %s = ds.all_reduce %x {group = "tp"} : tensor<?x32xf32>
    // CHECK: %[[H:.*]] = ds.all_reduce %[[S]] residual %[[X]] : tensor<?x32xf32>
    %h = ds.all_reduce %s residual %x : tensor<?x32xf32>
    // CHECK: %[[L:.*]] = ds.logits %[[H]]
    %l = ds.logits %h, %e, %rows : (tensor<?x32xf32>, tensor<32x32xbf16>, tensor<?xi32>) -> tensor<?x32xf32>
    // CHECK: %[[G:.*]] = ds.all_gather %[[L]] : tensor<?x32xf32> -> tensor<?x64xf32>
    %g = ds.all_gather %l {group = "tp", axis = -1 : i64} : tensor<?x32xf32> -> tensor<?x64xf32>
    // CHECK: return %[[G]]
    return %g : tensor<?x64xf32>
  }
}
