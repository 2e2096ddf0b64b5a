// RUN: ds-opt %s | FileCheck %s
// RUN: ds-opt %s | ds-opt | FileCheck %s
// RUN: ds-opt %s --mlir-print-op-generic | ds-opt | FileCheck %s

// A two-token-dimension toy layer that uses every op (round trip).

module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 128 : i64} {
  // CHECK: ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [64, 32]>]} : tensor<64x32xbf16>
  ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [64, 32]>], concat_axis = 0 : i64} : tensor<64x32xbf16>
  // CHECK: ds.weight @qkv {sources = [#ds.source<name = "q", file = "a.safetensors", dtype = bf16, shape = [32, 32]>, #ds.source<name = "kv", file = "a.safetensors", dtype = bf16, shape = [64, 32], slice_axis = 0, slice_start = 16, slice_size = 32>]} : tensor<64x32xbf16>
  ds.weight @qkv {sources = [#ds.source<name = "q", file = "a.safetensors", dtype = bf16, shape = [32, 32]>,
                             #ds.source<name = "kv", file = "a.safetensors", dtype = bf16, shape = [64, 32], slice_axis = 0, slice_start = 16, slice_size = 32>]} : tensor<64x32xbf16>
  ds.weight @qkv_bias {sources = [#ds.source<name = "b", file = "a.safetensors", dtype = bf16, shape = [64]>]} : tensor<64xbf16>
  // CHECK: ds.weight @cols {concat_axis = 1 : i64, sources = {{.*}}} : tensor<8x6xf32>
  ds.weight @cols {sources = [#ds.source<name = "c0", file = "a.safetensors", dtype = f32, shape = [8, 2]>,
                              #ds.source<name = "c1", file = "a.safetensors", dtype = f32, shape = [8, 4]>], concat_axis = 1 : i64} : tensor<8x6xf32>
  // Stacked on a new leading axis (MoE experts).
  // CHECK: ds.weight @experts
  ds.weight @experts {sources = [#ds.source<name = "e0", file = "a.safetensors", dtype = bf16, shape = [4, 2]>,
                                 #ds.source<name = "e1", file = "a.safetensors", dtype = bf16, shape = [4, 2]>]} : tensor<2x4x2xbf16>
  ds.weight @norm {sources = [#ds.source<name = "n", file = "a.safetensors", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "a.safetensors", dtype = bf16, shape = [32, 32]>]} : tensor<32x32xbf16>
  // CHECK: ds.kv_cache @kv {dtype = bf16, k_dim = 8 : i64, num_kv_heads = 2 : i64, num_layers = 1 : i64, v_dim = 8 : i64}
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 8 : i64, v_dim = 8 : i64, page_size = 16 : i64, dtype = bf16}

  // CHECK-LABEL: func.func @forward
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x64xf32> {
    // CHECK: %[[E:.*]] = ds.get_weight @embed : tensor<64x32xbf16>
    %e = ds.get_weight @embed : tensor<64x32xbf16>
    // CHECK: %[[X:.*]] = ds.embedding %{{.*}}, %[[E]] : (tensor<?xi32>, tensor<64x32xbf16>) -> tensor<?x32xf32>
    %x = ds.embedding %tokens, %e : (tensor<?xi32>, tensor<64x32xbf16>) -> tensor<?x32xf32>
    %nw = ds.get_weight @norm : tensor<32xbf16>
    // CHECK: ds.rms_norm %[[X]], %{{.*}} {eps = 9.9999999999999995E-7 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xf32>
    %h = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xf32>
    %w = ds.get_weight @qkv : tensor<64x32xbf16>
    %b = ds.get_weight @qkv_bias : tensor<64xbf16>
    // CHECK: ds.linear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x32xf32>, tensor<64x32xbf16>, tensor<64xbf16>) -> tensor<?x64xf32>
    %qkv = ds.linear %h, %w, %b : (tensor<?x32xf32>, tensor<64x32xbf16>, tensor<64xbf16>) -> tensor<?x64xf32>
    // CHECK: ds.slice %{{.*}} {offset = 0 : i64, size = 32 : i64} : tensor<?x64xf32> -> tensor<?x32xf32>
    %q = ds.slice %qkv {offset = 0 : i64, size = 32 : i64} : tensor<?x64xf32> -> tensor<?x32xf32>
    %k = ds.slice %qkv {offset = 32 : i64, size = 16 : i64} : tensor<?x64xf32> -> tensor<?x16xf32>
    %v = ds.slice %qkv {offset = 48 : i64, size = 16 : i64} : tensor<?x64xf32> -> tensor<?x16xf32>
    // CHECK: ds.rope %{{.*}}, %{{.*}} {head_dim = 8 : i64, num_heads = 4 : i64, rope = #ds.rope<theta = 1.000000e+06, rotary_dim = 8>} : tensor<?x32xf32>, tensor<?xi32>
    %qr = ds.rope %q, %positions {num_heads = 4 : i64, head_dim = 8 : i64, rope = #ds.rope<theta = 1000000.0, rotary_dim = 8>} : tensor<?x32xf32>, tensor<?xi32>
    // CHECK: #ds.rope<style = "interleaved", rotary_dim = 4, scaling = "yarn", factor = 4.000000e+01, original_max_position = 4096, mscale_all_dim = 1.000000e+00>
    %kr = ds.rope %k, %positions {num_heads = 2 : i64, head_dim = 8 : i64, rope = #ds.rope<theta = 10000.0, style = "interleaved", rotary_dim = 4, scaling = "yarn", factor = 40.0, original_max_position = 4096, mscale_all_dim = 1.0>} : tensor<?x16xf32>, tensor<?xi32>
    // CHECK: ds.kv_cache_write %{{.*}}, %{{.*}} {cache = @kv, layer = 0 : i64} : tensor<?x16xf32>, tensor<?x16xf32>
    ds.kv_cache_write %kr, %v {cache = @kv, layer = 0 : i64} : tensor<?x16xf32>, tensor<?x16xf32>
    // CHECK: ds.paged_attention %{{.*}} {cache = @kv, head_dim = 8 : i64, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 0.35355339059327379 : f64, v_head_dim = 8 : i64} : tensor<?x32xf32> -> tensor<?x32xf32>
    %a = ds.paged_attention %qr {cache = @kv, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x32xf32> -> tensor<?x32xf32>
    %ow = ds.get_weight @o : tensor<32x32xbf16>
    %o = ds.linear %a, %ow : (tensor<?x32xf32>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    // CHECK: %[[R:.*]] = ds.add %[[X]], %{{.*}} : tensor<?x32xf32>
    %r = ds.add %x, %o : tensor<?x32xf32>
    // CHECK: ds.silu %[[R]] : tensor<?x32xf32>
    %s = ds.silu %r : tensor<?x32xf32>
    // CHECK: ds.mul %{{.*}}, %[[R]] : tensor<?x32xf32>
    %m = ds.mul %s, %r : tensor<?x32xf32>
    // CHECK: %[[G:.*]]:2 = ds.fused_group(%[[R]], %{{.*}}, %{{.*}}) {ds.impl = "interp"} : (tensor<?x32xf32>, tensor<?x32xf32>, tensor<32xbf16>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
    // CHECK-NEXT: ^bb0(%[[A0:.*]]: tensor<?x32xf32>, %[[A1:.*]]: tensor<?x32xf32>, %[[A2:.*]]: tensor<32xbf16>):
    // CHECK-NEXT: %[[S:.*]] = ds.add %[[A0]], %[[A1]] : tensor<?x32xf32>
    // CHECK-NEXT: %[[N:.*]] = ds.rms_norm %[[S]], %[[A2]]
    // CHECK-NEXT: ds.yield %[[S]], %[[N]] : tensor<?x32xf32>, tensor<?x32xf32>
    // CHECK-NEXT: }
    %g:2 = ds.fused_group(%r, %m, %nw) {ds.impl = "interp"} : (tensor<?x32xf32>, tensor<?x32xf32>, tensor<32xbf16>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
    ^bb0(%a0: tensor<?x32xf32>, %a1: tensor<?x32xf32>, %a2: tensor<32xbf16>):
      %sum = ds.add %a0, %a1 : tensor<?x32xf32>
      %n = ds.rms_norm %sum, %a2 {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xf32>
      ds.yield %sum, %n : tensor<?x32xf32>, tensor<?x32xf32>
    }
    // CHECK: ds.logits %[[G]]#1, %[[E2:.*]], %{{.*}} : (tensor<?x32xf32>, tensor<64x32xbf16>, tensor<?xi32>) -> tensor<?x64xf32>
    %l = ds.logits %g#1, %e, %rows : (tensor<?x32xf32>, tensor<64x32xbf16>, tensor<?xi32>) -> tensor<?x64xf32>
    return %l : tensor<?x64xf32>
  }
}

// An f32 residual stream (dscc --residual-dtype f32 on a bf16 target): the add
// widens a bf16 layer output into the f32 residual (long form of its type),
// the norm writes the bf16 input of the next GEMM.
// CHECK-LABEL: func.func @f32_residual
func.func @f32_residual(%x: tensor<?x32xbf16>, %o: tensor<?x32xbf16>, %w: tensor<32xbf16>) -> (tensor<?x32xf32>, tensor<?x32xbf16>) {
  // CHECK: %[[R0:.*]] = ds.add %{{.*}}, %{{.*}} : tensor<?x32xbf16>, tensor<?x32xbf16> -> tensor<?x32xf32>
  %r0 = ds.add %x, %o : tensor<?x32xbf16>, tensor<?x32xbf16> -> tensor<?x32xf32>
  // CHECK: %[[R1:.*]] = ds.add %[[R0]], %{{.*}} : tensor<?x32xf32>, tensor<?x32xbf16> -> tensor<?x32xf32>
  %r1 = ds.add %r0, %o : tensor<?x32xf32>, tensor<?x32xbf16> -> tensor<?x32xf32>
  // CHECK: ds.rms_norm %[[R1]], %{{.*}} {eps = 9.9999999999999995E-7 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16>
  %h = ds.rms_norm %r1, %w {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16>
  return %r1, %h : tensor<?x32xf32>, tensor<?x32xbf16>
}

// A residual moved into the linear's epilogue (ds-fuse-residual-add), with
// and without a bias; its type is the result's. The GEMV prologue mark is a
// discardable attribute.
// CHECK-LABEL: func.func @linear_residual
func.func @linear_residual(%a: tensor<?x32xbf16>, %r: tensor<?x16xf32>, %w: tensor<16x32xbf16>, %b: tensor<16xbf16>) -> (tensor<?x16xf32>, tensor<?x16xf32>) {
  // CHECK: %[[H:.*]] = ds.linear %{{.*}}, %{{.*}} residual %{{.*}} : (tensor<?x32xbf16>, tensor<16x32xbf16>, tensor<?x16xf32>) -> tensor<?x16xf32>
  %h = ds.linear %a, %w residual %r : (tensor<?x32xbf16>, tensor<16x32xbf16>, tensor<?x16xf32>) -> tensor<?x16xf32>
  // CHECK: ds.linear %{{.*}}, %{{.*}}, %{{.*}} residual %[[H]] {ds.prologue = "rms_norm"} : (tensor<?x32xbf16>, tensor<16x32xbf16>, tensor<16xbf16>, tensor<?x16xf32>) -> tensor<?x16xf32>
  %h2 = ds.linear %a, %w, %b residual %h {ds.prologue = "rms_norm"} : (tensor<?x32xbf16>, tensor<16x32xbf16>, tensor<16xbf16>, tensor<?x16xf32>) -> tensor<?x16xf32>
  return %h, %h2 : tensor<?x16xf32>, tensor<?x16xf32>
}
