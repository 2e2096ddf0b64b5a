// RUN: ds-opt %s --ds-fuse-weights --split-input-file | FileCheck %s

// q/k/v with biases and gate/up without: one linear each, sliced; the
// original weights are gone, o_proj (different input) is untouched.
// CHECK-LABEL: module
// CHECK-NOT: ds.weight @model.layers.0.self_attn.q_proj
// CHECK: ds.weight @model.layers.0.self_attn.qkv_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.q_proj.weight", file = "model.safetensors", dtype = bf16, shape = [32, 32]>, #ds.source<name = "model.layers.0.self_attn.k_proj.weight", file = "model.safetensors", dtype = bf16, shape = [16, 32]>, #ds.source<name = "model.layers.0.self_attn.v_proj.weight", file = "model-2.safetensors", dtype = bf16, shape = [32, 32], slice_axis = 0, slice_start = 16, slice_size = 16>]} : tensor<64x32xbf16>
// CHECK: ds.weight @model.layers.0.self_attn.qkv_proj.bias {sources = [#ds.source<name = "model.layers.0.self_attn.q_proj.bias", {{.*}}>, #ds.source<name = "model.layers.0.self_attn.k_proj.bias", {{.*}}>, #ds.source<name = "model.layers.0.self_attn.v_proj.bias", {{.*}}>]} : tensor<64xbf16>
// CHECK-NOT: k_proj.weight {
// CHECK: ds.weight @model.layers.0.self_attn.o_proj.weight
// CHECK: ds.weight @model.layers.0.mlp.gate_up_proj.weight {sources = [#ds.source<name = "model.layers.0.mlp.gate_proj.weight", {{.*}}>, #ds.source<name = "model.layers.0.mlp.up_proj.weight", {{.*}}>]} : tensor<128x32xbf16>
// CHECK-NOT: ds.weight
// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>)
// CHECK-NEXT: %[[W:.*]] = ds.get_weight @model.layers.0.self_attn.qkv_proj.weight : tensor<64x32xbf16>
// CHECK-NEXT: %[[B:.*]] = ds.get_weight @model.layers.0.self_attn.qkv_proj.bias : tensor<64xbf16>
// CHECK-NEXT: %[[QKV:.*]] = ds.linear %[[X]], %[[W]], %[[B]] : (tensor<?x32xf32>, tensor<64x32xbf16>, tensor<64xbf16>) -> tensor<?x64xf32>
// CHECK-NEXT: %[[Q:.*]] = ds.slice %[[QKV]] {offset = 0 : i64, size = 32 : i64} : tensor<?x64xf32> -> tensor<?x32xf32>
// CHECK-NEXT: %[[K:.*]] = ds.slice %[[QKV]] {offset = 32 : i64, size = 16 : i64} : tensor<?x64xf32> -> tensor<?x16xf32>
// CHECK-NEXT: %[[V:.*]] = ds.slice %[[QKV]] {offset = 48 : i64, size = 16 : i64} : tensor<?x64xf32> -> tensor<?x16xf32>
// CHECK-NEXT: %[[OW:.*]] = ds.get_weight @model.layers.0.self_attn.o_proj.weight
// CHECK-NEXT: %[[O:.*]] = ds.linear %[[Q]], %[[OW]]
// CHECK-NEXT: %[[GUW:.*]] = ds.get_weight @model.layers.0.mlp.gate_up_proj.weight : tensor<128x32xbf16>
// CHECK-NEXT: %[[GU:.*]] = ds.linear %[[O]], %[[GUW]] : (tensor<?x32xf32>, tensor<128x32xbf16>) -> tensor<?x128xf32>
// CHECK-NEXT: %[[G:.*]] = ds.slice %[[GU]] {offset = 0 : i64, size = 64 : i64}
// CHECK-NEXT: %[[U:.*]] = ds.slice %[[GU]] {offset = 64 : i64, size = 64 : i64}
// CHECK-NEXT: return %[[K]], %[[V]], %[[G]], %[[U]]
module {
  ds.weight @model.layers.0.self_attn.q_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.q_proj.weight", file = "model.safetensors", dtype = bf16, shape = [32, 32]>]} : tensor<32x32xbf16>
  ds.weight @model.layers.0.self_attn.q_proj.bias {sources = [#ds.source<name = "model.layers.0.self_attn.q_proj.bias", file = "model.safetensors", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
  ds.weight @model.layers.0.self_attn.k_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.k_proj.weight", file = "model.safetensors", dtype = bf16, shape = [16, 32]>]} : tensor<16x32xbf16>
  ds.weight @model.layers.0.self_attn.k_proj.bias {sources = [#ds.source<name = "model.layers.0.self_attn.k_proj.bias", file = "model.safetensors", dtype = bf16, shape = [16]>]} : tensor<16xbf16>
  ds.weight @model.layers.0.self_attn.v_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.v_proj.weight", file = "model-2.safetensors", dtype = bf16, shape = [32, 32], slice_axis = 0, slice_start = 16, slice_size = 16>]} : tensor<16x32xbf16>
  ds.weight @model.layers.0.self_attn.v_proj.bias {sources = [#ds.source<name = "model.layers.0.self_attn.v_proj.bias", file = "model.safetensors", dtype = bf16, shape = [16]>]} : tensor<16xbf16>
  ds.weight @model.layers.0.self_attn.o_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.o_proj.weight", file = "model.safetensors", dtype = bf16, shape = [32, 32]>]} : tensor<32x32xbf16>
  ds.weight @model.layers.0.mlp.gate_proj.weight {sources = [#ds.source<name = "model.layers.0.mlp.gate_proj.weight", file = "model.safetensors", dtype = bf16, shape = [64, 32]>]} : tensor<64x32xbf16>
  ds.weight @model.layers.0.mlp.up_proj.weight {sources = [#ds.source<name = "model.layers.0.mlp.up_proj.weight", file = "model.safetensors", dtype = bf16, shape = [64, 32]>]} : tensor<64x32xbf16>
  func.func @forward(%x: tensor<?x32xf32>) -> (tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x64xf32>, tensor<?x64xf32>) {
    %qw = ds.get_weight @model.layers.0.self_attn.q_proj.weight : tensor<32x32xbf16>
    %qb = ds.get_weight @model.layers.0.self_attn.q_proj.bias : tensor<32xbf16>
    %q = ds.linear %x, %qw, %qb : (tensor<?x32xf32>, tensor<32x32xbf16>, tensor<32xbf16>) -> tensor<?x32xf32>
    %kw = ds.get_weight @model.layers.0.self_attn.k_proj.weight : tensor<16x32xbf16>
    %kb = ds.get_weight @model.layers.0.self_attn.k_proj.bias : tensor<16xbf16>
    %k = ds.linear %x, %kw, %kb : (tensor<?x32xf32>, tensor<16x32xbf16>, tensor<16xbf16>) -> tensor<?x16xf32>
    %vw = ds.get_weight @model.layers.0.self_attn.v_proj.weight : tensor<16x32xbf16>
    %vb = ds.get_weight @model.layers.0.self_attn.v_proj.bias : tensor<16xbf16>
    %v = ds.linear %x, %vw, %vb : (tensor<?x32xf32>, tensor<16x32xbf16>, tensor<16xbf16>) -> tensor<?x16xf32>
    %ow = ds.get_weight @model.layers.0.self_attn.o_proj.weight : tensor<32x32xbf16>
    %o = ds.linear %q, %ow : (tensor<?x32xf32>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    %gw = ds.get_weight @model.layers.0.mlp.gate_proj.weight : tensor<64x32xbf16>
    %g = ds.linear %o, %gw : (tensor<?x32xf32>, tensor<64x32xbf16>) -> tensor<?x64xf32>
    %uw = ds.get_weight @model.layers.0.mlp.up_proj.weight : tensor<64x32xbf16>
    %u = ds.linear %o, %uw : (tensor<?x32xf32>, tensor<64x32xbf16>) -> tensor<?x64xf32>
    return %k, %v, %g, %u : tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x64xf32>, tensor<?x64xf32>
  }
}

// -----

// Not merged: different weight dtypes, bias on one side only, a weight that
// is not a ds.get_weight, a weight concatenated on axis 1.
// CHECK-LABEL: func.func @no_fuse
// CHECK-COUNT-2: ds.linear %arg0, %{{.*}} : (tensor<?x8xf32>, tensor<8x8x{{.*}}>) -> tensor<?x8xf32>
// CHECK-NOT: ds.slice
// CHECK: ds.linear %arg0, %{{.*}}, %{{.*}} :
// CHECK-NEXT: ds.linear %arg0, %arg1 :
// CHECK-NEXT: ds.get_weight @d
// CHECK-NEXT: ds.linear
// CHECK-NOT: ds.slice
// CHECK: return
module {
  ds.weight @a {sources = [#ds.source<name = "a", file = "f", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @b {sources = [#ds.source<name = "b", file = "f", dtype = f32, shape = [8, 8]>]} : tensor<8x8xf32>
  ds.weight @c {sources = [#ds.source<name = "c", file = "f", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @cb {sources = [#ds.source<name = "cb", file = "f", dtype = bf16, shape = [8]>]} : tensor<8xbf16>
  ds.weight @d {sources = [#ds.source<name = "d0", file = "f", dtype = bf16, shape = [8, 4]>, #ds.source<name = "d1", file = "f", dtype = bf16, shape = [8, 4]>], concat_axis = 1 : i64} : tensor<8x8xbf16>
  func.func @no_fuse(%x: tensor<?x8xf32>, %e: tensor<8x8xbf16>) -> (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) {
    %a = ds.get_weight @a : tensor<8x8xbf16>
    %ya = ds.linear %x, %a : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    %b = ds.get_weight @b : tensor<8x8xf32>
    %yb = ds.linear %x, %b : (tensor<?x8xf32>, tensor<8x8xf32>) -> tensor<?x8xf32>
    %c = ds.get_weight @c : tensor<8x8xbf16>
    %cb = ds.get_weight @cb : tensor<8xbf16>
    %yc = ds.linear %x, %c, %cb : (tensor<?x8xf32>, tensor<8x8xbf16>, tensor<8xbf16>) -> tensor<?x8xf32>
    %ye = ds.linear %x, %e : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    %d = ds.get_weight @d : tensor<8x8xbf16>
    %yd = ds.linear %x, %d : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    return %ya, %yb, %yc, %ye, %yd : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>
  }
}

// -----

// A linear with a fused residual keeps it: it is not merged with its sibling.
// CHECK-LABEL: func.func @residual
// CHECK: ds.linear %arg0, %{{.*}} : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
// CHECK: ds.linear %arg0, %{{.*}} residual %arg1 :
// CHECK-NOT: ds.slice
// CHECK: return
module {
  ds.weight @a {sources = [#ds.source<name = "a", file = "f", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.weight @b {sources = [#ds.source<name = "b", file = "f", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  func.func @residual(%x: tensor<?x8xf32>, %r: tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
    %a = ds.get_weight @a : tensor<8x8xbf16>
    %ya = ds.linear %x, %a : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    %b = ds.get_weight @b : tensor<8x8xbf16>
    %yb = ds.linear %x, %b residual %r : (tensor<?x8xf32>, tensor<8x8xbf16>, tensor<?x8xf32>) -> tensor<?x8xf32>
    return %ya, %yb : tensor<?x8xf32>, tensor<?x8xf32>
  }
}
