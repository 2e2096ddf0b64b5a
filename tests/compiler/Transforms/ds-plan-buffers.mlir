// RUN: ds-opt %s --ds-plan-buffers --split-input-file -verify-diagnostics | FileCheck %s

// Liveness + greedy-by-size placement. Sizes (bytes per token, f32):
// %x 128, %y 256, %g 128+128, %o 128. %y (largest, ops 2..3) takes 0;
// %x (ops 1..3) cannot overlap it -> 256; %g#0/%g#1 (ops 3..4/3..5)
// overlap %x and %y -> 384, 512; %o (op 4) overlaps %g and is an op of
// its own -> reuses 0 (%y is dead after op 3).
// CHECK: module attributes {ds.arena_alignment = 16 : i64, ds.arena_bytes_per_token = 640 : i64}
// CHECK: ds.get_weight @e : tensor<16x32xbf16>
// CHECK-NOT: ds.offsets
// CHECK: ds.embedding {{.*}} {ds.offsets = array<i64: 256>, ds.sizes = array<i64: 128>}
// CHECK: ds.linear {{.*}} {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 256>}
// CHECK: ds.fused_group({{.*}}) {ds.offsets = array<i64: 384, 512>, ds.sizes = array<i64: 128, 128>}
// CHECK: ds.linear {{.*}} {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 128>}
// CHECK: ds.add {{.*}} {ds.offsets = array<i64: 128>, ds.sizes = array<i64: 128>}
// CHECK: ds.logits
// CHECK-NOT: ds.offsets
// CHECK: return
module {
  ds.weight @e {sources = [#ds.source<name = "e", file = "f", dtype = bf16, shape = [16, 32]>]} : tensor<16x32xbf16>
  ds.weight @w {sources = [#ds.source<name = "w", file = "f", dtype = bf16, shape = [64, 32]>]} : tensor<64x32xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "f", dtype = bf16, shape = [32, 32]>]} : tensor<32x32xbf16>
  func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>, %r: tensor<?xi32>) -> tensor<?x16xf32> {
    %e = ds.get_weight @e : tensor<16x32xbf16>
    %x = ds.embedding %t, %e : (tensor<?xi32>, tensor<16x32xbf16>) -> tensor<?x32xf32>
    %w = ds.get_weight @w : tensor<64x32xbf16>
    %y = ds.linear %x, %w : (tensor<?x32xf32>, tensor<64x32xbf16>) -> tensor<?x64xf32>
    %g:2 = ds.fused_group(%y, %x) : (tensor<?x64xf32>, tensor<?x32xf32>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
    ^bb0(%a: tensor<?x64xf32>, %b: tensor<?x32xf32>):
      %s0 = ds.slice %a {offset = 0 : i64, size = 32 : i64} : tensor<?x64xf32> -> tensor<?x32xf32>
      %s1 = ds.slice %a {offset = 32 : i64, size = 32 : i64} : tensor<?x64xf32> -> tensor<?x32xf32>
      %m = ds.mul %s0, %b : tensor<?x32xf32>
      ds.yield %m, %s1 : tensor<?x32xf32>, tensor<?x32xf32>
    }
    %ow = ds.get_weight @o : tensor<32x32xbf16>
    %o = ds.linear %g#0, %ow : (tensor<?x32xf32>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    %h = ds.add %o, %g#1 : tensor<?x32xf32>
    %l = ds.logits %h, %e, %r : (tensor<?x32xf32>, tensor<16x32xbf16>, tensor<?xi32>) -> tensor<?x16xf32>
    return %l : tensor<?x16xf32>
  }
}

// -----

// Tensor parallelism: the gathered ds.logits result (8 f32 = 32 bytes per
// row) lives in the arena (reusing the embedding's space); the returned
// ds.all_gather (step output 0) does not.
// CHECK-LABEL: module attributes {ds.arena_alignment = 16 : i64, ds.arena_bytes_per_token = 256 : i64, ds.tp_size = 2 : i64}
// CHECK: ds.embedding {{.*}} {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 128>, vocab_parallel}
// CHECK: ds.all_reduce {{.*}} {ds.offsets = array<i64: 128>, ds.sizes = array<i64: 128>}
// CHECK: ds.logits {{.*}} {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 32>}
// CHECK-NEXT: ds.all_gather
// CHECK-NOT: ds.offsets
// CHECK: return
module attributes {ds.tp_size = 2 : i64} {
  ds.weight @e {sources = [#ds.source<name = "e", file = "f", dtype = bf16, shape = [16, 32], slice_axis = 0, slice_size = 8, slice_rank_stride = 8>]} : tensor<8x32xbf16>
  func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>, %r: tensor<?xi32>) -> tensor<?x16xf32> {
    %e = ds.get_weight @e : tensor<8x32xbf16>
    %x = ds.embedding %t, %e {vocab_parallel} : (tensor<?xi32>, tensor<8x32xbf16>) -> tensor<?x32xf32>
    %s = ds.all_reduce %x : tensor<?x32xf32>
    %l = ds.logits %s, %e, %r : (tensor<?x32xf32>, tensor<8x32xbf16>, tensor<?xi32>) -> tensor<?x8xf32>
    %g = ds.all_gather %l : tensor<?x8xf32> -> tensor<?x16xf32>
    return %g : tensor<?x16xf32>
  }
}

// -----

// bf16 rows round up to the 16-byte alignment: 9 * 2 = 18 -> 32.
// CHECK-LABEL: module attributes {ds.arena_alignment = 16 : i64, ds.arena_bytes_per_token = 32 : i64}
// CHECK: ds.silu {{.*}} {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 32>}
module {
  func.func @forward(%x: tensor<?x9xbf16>) -> tensor<?x9xbf16> {
    %y = ds.silu %x : tensor<?x9xbf16>
    return %y : tensor<?x9xbf16>
  }
}

// -----

module {
  func.func @forward(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
    // expected-error @+1 {{ds-plan-buffers: result type 'tensor<4x8xf32>' must have a dynamic leading (token) dimension}}
    %y = ds.silu %x : tensor<4x8xf32>
    return %y : tensor<4x8xf32>
  }
}

// -----

module {
  func.func @forward(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
    // expected-error @+1 {{ds-plan-buffers: result type 'tensor<?x?xf32>' must have a static row shape}}
    %y = ds.silu %x : tensor<?x?xf32>
    return %y : tensor<?x?xf32>
  }
}

// -----

// ds.prologue (ds-gemv-prologue) needs the group whose inputs it keeps live.
module {
  func.func @forward(%x: tensor<?x8xf32>, %w: tensor<8x8xbf16>) -> tensor<?x8xf32> {
    %s = ds.silu %x : tensor<?x8xf32>
    // expected-error @+1 {{ds-plan-buffers: has ds.prologue but its input is not the result of a ds.fused_group}}
    %y = ds.linear %s, %w {ds.prologue = "rms_norm"} : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    return %y : tensor<?x8xf32>
  }
}

// -----

// ds.epilogue (ds-gemv-epilogue) needs the one group whose results it writes.
module {
  func.func @forward(%x: tensor<?x8xf32>, %w: tensor<8x8xbf16>) -> tensor<?x8xbf16> {
    // expected-error @+1 {{ds-plan-buffers: has ds.epilogue but its result is not read by exactly one ds.fused_group}}
    %y = ds.linear %x, %w {ds.epilogue = "swiglu"} : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xbf16>
    %s = ds.silu %y : tensor<?x8xbf16>
    return %s : tensor<?x8xbf16>
  }
}

// -----

// ds.rope_prologue (ds-attention-rope) needs the group whose inputs it keeps
// live.
module {
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 1 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}
  func.func @forward(%x: tensor<?x16xbf16>) -> tensor<?x16xbf16> {
    %q = ds.silu %x : tensor<?x16xbf16>
    // expected-error @+1 {{ds-plan-buffers: has ds.rope_prologue but its q is not the result of a ds.fused_group}}
    %o = ds.paged_attention %q {cache = @kv, ds.rope_prologue, layer = 0 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x16xbf16> -> tensor<?x16xbf16>
    return %o : tensor<?x16xbf16>
  }
}

// -----

// expected-error @+1 {{ds-plan-buffers: expects a func.func @forward}}
module {
  func.func @main() {
    return
  }
}
