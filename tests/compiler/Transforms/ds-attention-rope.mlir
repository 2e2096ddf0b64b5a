// RUN: ds-opt %s --ds-attention-rope | FileCheck %s
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' %s | ds-opt --ds-attention-rope | FileCheck %s --check-prefix=CPU
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "sm_1x"/' %s | not ds-opt --ds-attention-rope 2>&1 | FileCheck %s --check-prefix=BAD
// With ds-plan-buffers: the group's qkv input is live through the marked
// attention.
// RUN: ds-opt %s --ds-attention-rope --ds-plan-buffers | FileCheck %s --check-prefix=PLAN
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' %s | ds-opt --ds-attention-rope --ds-plan-buffers | FileCheck %s --check-prefix=PLANCPU

// CPU-NOT: ds.rope_prologue
// BAD: error: ds-attention-rope: unknown target "sm_1x"

// Two query heads, one KV head, head_dim 8: qkv rows are 16 + 8 + 8 wide.
module attributes {ds.target = "sm_90a"} {
  ds.weight @e {sources = [#ds.source<name = "e", file = "f", dtype = bf16, shape = [16, 16]>]} : tensor<16x16xbf16>
  ds.weight @qkv {sources = [#ds.source<name = "qkv", file = "f", dtype = bf16, shape = [32, 16]>]} : tensor<32x16xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "f", dtype = bf16, shape = [16, 16]>]} : tensor<16x16xbf16>
  ds.kv_cache @kv {num_layers = 2 : i64, num_kv_heads = 1 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}

  // The layer's rope + KV-write group read only by the attention of the
  // same layer: marked.
  // CHECK-LABEL: func.func @rope_group
  // CHECK: ds.fused_group
  // CHECK: ds.paged_attention {{.*}}ds.rope_prologue
  func.func @rope_group(%qkv: tensor<?x32xbf16>, %p: tensor<?xi32>) -> tensor<?x16xbf16> {
    %q = ds.fused_group(%qkv, %p) : (tensor<?x32xbf16>, tensor<?xi32>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>, %pos: tensor<?xi32>):
      %qs = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %ks = ds.slice %a {offset = 16 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %vs = ds.slice %a {offset = 24 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %qr = ds.rope %qs, %pos {head_dim = 8 : i64, num_heads = 2 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x16xbf16>, tensor<?xi32>
      %kr = ds.rope %ks, %pos {head_dim = 8 : i64, num_heads = 1 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x8xbf16>, tensor<?xi32>
      ds.kv_cache_write %kr, %vs {cache = @kv, layer = 0 : i64} : tensor<?x8xbf16>, tensor<?x8xbf16>
      ds.yield %qr : tensor<?x16xbf16>
    }
    %o = ds.paged_attention %q {cache = @kv, layer = 0 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x16xbf16> -> tensor<?x16xbf16>
    return %o : tensor<?x16xbf16>
  }

  // Another op order (the ropes first in the block's use order, v before k
  // in the row, a partial rotary_dim, layer 1): marked.
  // CHECK-LABEL: func.func @reordered
  // CHECK: ds.paged_attention {{.*}}ds.rope_prologue
  func.func @reordered(%qkv: tensor<?x32xbf16>, %p: tensor<?xi32>) -> tensor<?x16xbf16> {
    %q = ds.fused_group(%qkv, %p) : (tensor<?x32xbf16>, tensor<?xi32>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>, %pos: tensor<?xi32>):
      %ks = ds.slice %a {offset = 24 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %kr = ds.rope %ks, %pos {head_dim = 8 : i64, num_heads = 1 : i64, rope = #ds.rope<rotary_dim = 4>} : tensor<?x8xbf16>, tensor<?xi32>
      %vs = ds.slice %a {offset = 16 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      ds.kv_cache_write %kr, %vs {cache = @kv, layer = 1 : i64} : tensor<?x8xbf16>, tensor<?x8xbf16>
      %qs = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %qr = ds.rope %qs, %pos {head_dim = 8 : i64, num_heads = 2 : i64, rope = #ds.rope<rotary_dim = 4>} : tensor<?x16xbf16>, tensor<?xi32>
      ds.yield %qr : tensor<?x16xbf16>
    }
    %o = ds.paged_attention %q {cache = @kv, layer = 1 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x16xbf16> -> tensor<?x16xbf16>
    return %o : tensor<?x16xbf16>
  }

  // The roped q has a second reader: the group must run anyway.
  // CHECK-LABEL: func.func @two_uses
  // CHECK-NOT: ds.rope_prologue
  // CHECK: return
  func.func @two_uses(%qkv: tensor<?x32xbf16>, %p: tensor<?xi32>) -> (tensor<?x16xbf16>, tensor<?x16xbf16>) {
    %q = ds.fused_group(%qkv, %p) : (tensor<?x32xbf16>, tensor<?xi32>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>, %pos: tensor<?xi32>):
      %qs = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %ks = ds.slice %a {offset = 16 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %vs = ds.slice %a {offset = 24 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %qr = ds.rope %qs, %pos {head_dim = 8 : i64, num_heads = 2 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x16xbf16>, tensor<?xi32>
      %kr = ds.rope %ks, %pos {head_dim = 8 : i64, num_heads = 1 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x8xbf16>, tensor<?xi32>
      ds.kv_cache_write %kr, %vs {cache = @kv, layer = 0 : i64} : tensor<?x8xbf16>, tensor<?x8xbf16>
      ds.yield %qr : tensor<?x16xbf16>
    }
    %o = ds.paged_attention %q {cache = @kv, layer = 0 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x16xbf16> -> tensor<?x16xbf16>
    return %o, %q : tensor<?x16xbf16>, tensor<?x16xbf16>
  }

  // A seventh op in the group (a SiLU of v before the cache write): not
  // marked.
  // CHECK-LABEL: func.func @extra_op
  // CHECK-NOT: ds.rope_prologue
  // CHECK: return
  func.func @extra_op(%qkv: tensor<?x32xbf16>, %p: tensor<?xi32>) -> tensor<?x16xbf16> {
    %q = ds.fused_group(%qkv, %p) : (tensor<?x32xbf16>, tensor<?xi32>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>, %pos: tensor<?xi32>):
      %qs = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %ks = ds.slice %a {offset = 16 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %vs = ds.slice %a {offset = 24 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %qr = ds.rope %qs, %pos {head_dim = 8 : i64, num_heads = 2 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x16xbf16>, tensor<?xi32>
      %kr = ds.rope %ks, %pos {head_dim = 8 : i64, num_heads = 1 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x8xbf16>, tensor<?xi32>
      %vx = ds.silu %vs : tensor<?x8xbf16>
      ds.kv_cache_write %kr, %vx {cache = @kv, layer = 0 : i64} : tensor<?x8xbf16>, tensor<?x8xbf16>
      ds.yield %qr : tensor<?x16xbf16>
    }
    %o = ds.paged_attention %q {cache = @kv, layer = 0 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x16xbf16> -> tensor<?x16xbf16>
    return %o : tensor<?x16xbf16>
  }

  // The group writes the K/V of layer 1, the attention reads layer 0: not
  // marked.
  // CHECK-LABEL: func.func @other_layer
  // CHECK-NOT: ds.rope_prologue
  // CHECK: return
  func.func @other_layer(%qkv: tensor<?x32xbf16>, %p: tensor<?xi32>) -> tensor<?x16xbf16> {
    %q = ds.fused_group(%qkv, %p) : (tensor<?x32xbf16>, tensor<?xi32>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>, %pos: tensor<?xi32>):
      %qs = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %ks = ds.slice %a {offset = 16 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %vs = ds.slice %a {offset = 24 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %qr = ds.rope %qs, %pos {head_dim = 8 : i64, num_heads = 2 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x16xbf16>, tensor<?xi32>
      %kr = ds.rope %ks, %pos {head_dim = 8 : i64, num_heads = 1 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x8xbf16>, tensor<?xi32>
      ds.kv_cache_write %kr, %vs {cache = @kv, layer = 1 : i64} : tensor<?x8xbf16>, tensor<?x8xbf16>
      ds.yield %qr : tensor<?x16xbf16>
    }
    %o = ds.paged_attention %q {cache = @kv, layer = 0 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x16xbf16> -> tensor<?x16xbf16>
    return %o : tensor<?x16xbf16>
  }

  // The k rope has another rope attribute (theta) than the q rope: not
  // marked.
  // CHECK-LABEL: func.func @other_rope
  // CHECK-NOT: ds.rope_prologue
  // CHECK: return
  func.func @other_rope(%qkv: tensor<?x32xbf16>, %p: tensor<?xi32>) -> tensor<?x16xbf16> {
    %q = ds.fused_group(%qkv, %p) : (tensor<?x32xbf16>, tensor<?xi32>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>, %pos: tensor<?xi32>):
      %qs = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %ks = ds.slice %a {offset = 16 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %vs = ds.slice %a {offset = 24 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %qr = ds.rope %qs, %pos {head_dim = 8 : i64, num_heads = 2 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x16xbf16>, tensor<?xi32>
      %kr = ds.rope %ks, %pos {head_dim = 8 : i64, num_heads = 1 : i64, rope = #ds.rope<theta = 1000000.0, rotary_dim = 8>} : tensor<?x8xbf16>, tensor<?xi32>
      ds.kv_cache_write %kr, %vs {cache = @kv, layer = 0 : i64} : tensor<?x8xbf16>, tensor<?x8xbf16>
      ds.yield %qr : tensor<?x16xbf16>
    }
    %o = ds.paged_attention %q {cache = @kv, layer = 0 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x16xbf16> -> tensor<?x16xbf16>
    return %o : tensor<?x16xbf16>
  }

  // The ropes' positions are not the step positions (argument 1): not
  // marked.
  // CHECK-LABEL: func.func @other_positions
  // CHECK-NOT: ds.rope_prologue
  // CHECK: return
  func.func @other_positions(%p: tensor<?xi32>, %qkv: tensor<?x32xbf16>) -> tensor<?x16xbf16> {
    %q = ds.fused_group(%qkv, %p) : (tensor<?x32xbf16>, tensor<?xi32>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>, %pos: tensor<?xi32>):
      %qs = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %ks = ds.slice %a {offset = 16 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %vs = ds.slice %a {offset = 24 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %qr = ds.rope %qs, %pos {head_dim = 8 : i64, num_heads = 2 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x16xbf16>, tensor<?xi32>
      %kr = ds.rope %ks, %pos {head_dim = 8 : i64, num_heads = 1 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x8xbf16>, tensor<?xi32>
      ds.kv_cache_write %kr, %vs {cache = @kv, layer = 0 : i64} : tensor<?x8xbf16>, tensor<?x8xbf16>
      ds.yield %qr : tensor<?x16xbf16>
    }
    %o = ds.paged_attention %q {cache = @kv, layer = 0 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x16xbf16> -> tensor<?x16xbf16>
    return %o : tensor<?x16xbf16>
  }

  // Liveness. Bytes per token: %x 32 (ops 1..3), %qkv 64 (ops 3..4), %q 32
  // (ops 4..5), %o 32 (op 5, read by op 7); the logits are step output 0.
  // Without the mark %o reuses %qkv's offset 0 (%qkv is dead after the
  // group). With it %qkv is live through the attention: %o takes 96.
  // CHECK-LABEL: func.func @forward
  // CHECK: ds.paged_attention {{.*}}ds.rope_prologue
  // PLAN-LABEL: func.func @forward
  // PLAN: ds.embedding {{.*}}ds.offsets = array<i64: 64>, ds.sizes = array<i64: 32>
  // PLAN: ds.linear {{.*}} {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 64>}
  // PLAN: ds.fused_group({{.*}}) {ds.offsets = array<i64: 64>, ds.sizes = array<i64: 32>}
  // PLAN: ds.paged_attention {{.*}}ds.offsets = array<i64: 96>, ds.rope_prologue, ds.sizes = array<i64: 32>
  // PLANCPU-LABEL: func.func @forward
  // PLANCPU: ds.embedding {{.*}}ds.offsets = array<i64: 64>, ds.sizes = array<i64: 32>
  // PLANCPU: ds.linear {{.*}} {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 64>}
  // PLANCPU: ds.fused_group({{.*}}) {ds.offsets = array<i64: 64>, ds.sizes = array<i64: 32>}
  // PLANCPU: ds.paged_attention {{.*}}ds.offsets = array<i64: 0>, ds.sizes = array<i64: 32>
  func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x16xf32> {
    %e = ds.get_weight @e : tensor<16x16xbf16>
    %x = ds.embedding %t, %e : (tensor<?xi32>, tensor<16x16xbf16>) -> tensor<?x16xbf16>
    %w = ds.get_weight @qkv : tensor<32x16xbf16>
    %qkv = ds.linear %x, %w : (tensor<?x16xbf16>, tensor<32x16xbf16>) -> tensor<?x32xbf16>
    %q = ds.fused_group(%qkv, %p) : (tensor<?x32xbf16>, tensor<?xi32>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>, %pos: tensor<?xi32>):
      %qs = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %ks = ds.slice %a {offset = 16 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %vs = ds.slice %a {offset = 24 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %qr = ds.rope %qs, %pos {head_dim = 8 : i64, num_heads = 2 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x16xbf16>, tensor<?xi32>
      %kr = ds.rope %ks, %pos {head_dim = 8 : i64, num_heads = 1 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x8xbf16>, tensor<?xi32>
      ds.kv_cache_write %kr, %vs {cache = @kv, layer = 0 : i64} : tensor<?x8xbf16>, tensor<?x8xbf16>
      ds.yield %qr : tensor<?x16xbf16>
    }
    %o = ds.paged_attention %q {cache = @kv, layer = 0 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x16xbf16> -> tensor<?x16xbf16>
    %wo = ds.get_weight @o : tensor<16x16xbf16>
    %l = ds.logits %o, %wo, %rows : (tensor<?x16xbf16>, tensor<16x16xbf16>, tensor<?xi32>) -> tensor<?x16xf32>
    return %l : tensor<?x16xf32>
  }
}
