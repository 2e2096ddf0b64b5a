// RUN: ds-opt %s --ds-fuse-elementwise | FileCheck %s
// RUN: ds-opt %s --ds-fuse-elementwise=min-ops=1 | FileCheck %s --check-prefix=ONE
// RUN: sed -e "s/^module {/module attributes {ds.target = \"sm_90a\"} {/" %s | ds-opt --ds-fuse-elementwise | FileCheck %s --check-prefix=CUDA

// With min-ops=1 (the default for CUDA targets) lone row-wise ops become
// groups too; the groups of several ops are the same.
// ONE-LABEL: func.func @layer
// ONE: ds.fused_group(%{{.*}}, %{{.*}}) : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xf32> {
// ONE: ds.rms_norm
// ONE: ds.linear
// ONE-COUNT-2: ds.fused_group
// ONE: ds.paged_attention
// ONE: ds.fused_group
// ONE: ds.fused_group
// ONE: ds.linear
// ONE-NEXT: ds.fused_group
// ONE-NEXT: ^bb0
// ONE-NEXT: ds.add
// ONE-NEXT: ds.yield
// ONE-NEXT: }
// ONE-NEXT: return

// CUDA targets (min-ops 1) also join the components that read the same row
// from outside the run: the q rope and the k rope + KV write slice the same
// qkv projection and become one group (one launch); the rest is as ONE.
// CUDA-LABEL: func.func @layer
// CUDA: ds.fused_group(%{{.*}}, %{{.*}}) : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xf32> {
// CUDA: ds.rms_norm
// CUDA: %[[CQKV:[0-9]+]] = ds.linear
// CUDA-NEXT: %[[CQR:[0-9]+]] = ds.fused_group(%[[CQKV]], %{{.*}}) : (tensor<?x64xf32>, tensor<?xi32>) -> tensor<?x32xf32> {
// CUDA-NEXT: ^bb0
// CUDA-NEXT: ds.slice %{{.*}} {offset = 0 : i64, size = 32 : i64}
// CUDA-NEXT: ds.slice %{{.*}} {offset = 32 : i64, size = 16 : i64}
// CUDA-NEXT: ds.slice %{{.*}} {offset = 48 : i64, size = 16 : i64}
// CUDA-NEXT: = ds.rope %
// CUDA-NEXT: = ds.rope %
// CUDA-NEXT: ds.kv_cache_write
// CUDA-NEXT: ds.yield %{{.*}} : tensor<?x32xf32>
// CUDA-NEXT: }
// CUDA-NEXT: ds.paged_attention %[[CQR]]
// CUDA: ds.fused_group
// CUDA: ds.fused_group
// CUDA: ds.linear
// CUDA-NEXT: ds.fused_group
// CUDA-NEXT: ^bb0
// CUDA-NEXT: ds.add
// CUDA-NEXT: ds.yield
// CUDA-NEXT: }
// CUDA-NEXT: return

module {
  ds.weight @n1 {sources = [#ds.source<name = "n1", file = "f", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
  ds.weight @n2 {sources = [#ds.source<name = "n2", file = "f", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
  ds.weight @qkv {sources = [#ds.source<name = "qkv", file = "f", dtype = bf16, shape = [64, 32]>]} : tensor<64x32xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "f", dtype = bf16, shape = [32, 32]>]} : tensor<32x32xbf16>
  ds.weight @gu {sources = [#ds.source<name = "gu", file = "f", dtype = bf16, shape = [128, 32]>]} : tensor<128x32xbf16>
  ds.weight @down {sources = [#ds.source<name = "down", file = "f", dtype = bf16, shape = [32, 64]>]} : tensor<32x64xbf16>
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}

  // CHECK-LABEL: func.func @layer
  // CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[POS:.*]]: tensor<?xi32>)
  func.func @layer(%x: tensor<?x32xf32>, %pos: tensor<?xi32>) -> tensor<?x32xf32> {
    // A lone rms_norm stays unfused.
    // CHECK: %[[N1:.*]] = ds.rms_norm %[[X]]
    %n1w = ds.get_weight @n1 : tensor<32xbf16>
    %n1 = ds.rms_norm %x, %n1w {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xf32>
    // CHECK: %[[QKV:.*]] = ds.linear %[[N1]]
    %w = ds.get_weight @qkv : tensor<64x32xbf16>
    %qkv = ds.linear %n1, %w : (tensor<?x32xf32>, tensor<64x32xbf16>) -> tensor<?x64xf32>
    // q: slice + rope.
    // CHECK: %[[QR:.*]] = ds.fused_group(%[[QKV]], %[[POS]]) : (tensor<?x64xf32>, tensor<?xi32>) -> tensor<?x32xf32> {
    // CHECK-NEXT: ^bb0(%[[A0:.*]]: tensor<?x64xf32>, %[[A1:.*]]: tensor<?xi32>):
    // CHECK-NEXT:   %[[Q:.*]] = ds.slice %[[A0]] {offset = 0 : i64, size = 32 : i64}
    // CHECK-NEXT:   %[[R:.*]] = ds.rope %[[Q]], %[[A1]]
    // CHECK-NEXT:   ds.yield %[[R]] : tensor<?x32xf32>
    // CHECK-NEXT: }
    // k, v: slices + rope + cache write, no results.
    // CHECK-NEXT: ds.fused_group(%[[QKV]], %[[POS]]) : (tensor<?x64xf32>, tensor<?xi32>) -> () {
    // CHECK-NEXT: ^bb0(%[[B0:.*]]: tensor<?x64xf32>, %[[B1:.*]]: tensor<?xi32>):
    // CHECK-NEXT:   %[[K:.*]] = ds.slice %[[B0]] {offset = 32 : i64, size = 16 : i64}
    // CHECK-NEXT:   %[[V:.*]] = ds.slice %[[B0]] {offset = 48 : i64, size = 16 : i64}
    // CHECK-NEXT:   %[[KR:.*]] = ds.rope %[[K]], %[[B1]]
    // CHECK-NEXT:   ds.kv_cache_write %[[KR]], %[[V]] {cache = @kv, layer = 0 : i64}
    // CHECK-NEXT:   ds.yield
    // CHECK-NEXT: }
    %q = ds.slice %qkv {offset = 0 : i64, size = 32 : i64} : tensor<?x64xf32> -> tensor<?x32xf32>
    %k = ds.slice %qkv {offset = 32 : i64, size = 16 : i64} : tensor<?x64xf32> -> tensor<?x16xf32>
    %v = ds.slice %qkv {offset = 48 : i64, size = 16 : i64} : tensor<?x64xf32> -> tensor<?x16xf32>
    %qr = ds.rope %q, %pos {num_heads = 4 : i64, head_dim = 8 : i64, rope = #ds.rope<theta = 1000000.0, rotary_dim = 8>} : tensor<?x32xf32>, tensor<?xi32>
    %kr = ds.rope %k, %pos {num_heads = 2 : i64, head_dim = 8 : i64, rope = #ds.rope<theta = 1000000.0, rotary_dim = 8>} : tensor<?x16xf32>, tensor<?xi32>
    ds.kv_cache_write %kr, %v {cache = @kv, layer = 0 : i64} : tensor<?x16xf32>, tensor<?x16xf32>
    // CHECK-NEXT: %[[ATT:.*]] = ds.paged_attention %[[QR]]
    %a = ds.paged_attention %qr {cache = @kv, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35355339059327379 : f64} : tensor<?x32xf32> -> tensor<?x32xf32>
    %ow = ds.get_weight @o : tensor<32x32xbf16>
    %o = ds.linear %a, %ow : (tensor<?x32xf32>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    // Residual add + rms_norm: both results escape; the weight (defined
    // between the two ops) comes in as an operand.
    // CHECK: %[[O:.*]] = ds.linear %[[ATT]]
    // CHECK-NEXT: %[[N2W:.*]] = ds.get_weight @n2
    // CHECK-NEXT: %[[H:.*]]:2 = ds.fused_group(%[[X]], %[[O]], %[[N2W]]) : (tensor<?x32xf32>, tensor<?x32xf32>, tensor<32xbf16>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
    // CHECK:        %[[S:.*]] = ds.add
    // CHECK-NEXT:   %[[N:.*]] = ds.rms_norm %[[S]]
    // CHECK-NEXT:   ds.yield %[[S]], %[[N]] : tensor<?x32xf32>, tensor<?x32xf32>
    %h = ds.add %x, %o : tensor<?x32xf32>
    %n2w = ds.get_weight @n2 : tensor<32xbf16>
    %n2 = ds.rms_norm %h, %n2w {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xf32>
    // CHECK: %[[GU:.*]] = ds.linear %[[H]]#1
    %guw = ds.get_weight @gu : tensor<128x32xbf16>
    %gu = ds.linear %n2, %guw : (tensor<?x32xf32>, tensor<128x32xbf16>) -> tensor<?x128xf32>
    // SiLU-gated MLP.
    // CHECK-NEXT: %[[M:.*]] = ds.fused_group(%[[GU]]) : (tensor<?x128xf32>) -> tensor<?x64xf32> {
    // CHECK:        ds.slice
    // CHECK-NEXT:   ds.slice
    // CHECK-NEXT:   ds.silu
    // CHECK-NEXT:   ds.mul
    // CHECK-NEXT:   ds.yield
    %g = ds.slice %gu {offset = 0 : i64, size = 64 : i64} : tensor<?x128xf32> -> tensor<?x64xf32>
    %u = ds.slice %gu {offset = 64 : i64, size = 64 : i64} : tensor<?x128xf32> -> tensor<?x64xf32>
    %s = ds.silu %g : tensor<?x64xf32>
    %m = ds.mul %s, %u : tensor<?x64xf32>
    // CHECK: %[[D:.*]] = ds.linear %[[M]]
    %dw = ds.get_weight @down : tensor<32x64xbf16>
    %d = ds.linear %m, %dw : (tensor<?x64xf32>, tensor<32x64xbf16>) -> tensor<?x32xf32>
    // Last residual add alone: unfused.
    // CHECK-NEXT: %[[OUT:.*]] = ds.add %[[H]]#0, %[[D]]
    // CHECK-NEXT: return %[[OUT]]
    %h2 = ds.add %h, %d : tensor<?x32xf32>
    return %h2 : tensor<?x32xf32>
  }

  // Collectives end a run: nothing is fused across a ds.all_reduce (every
  // rank must issue it between the producer and the consumer).
  // CHECK-LABEL: func.func @collectives
  // CHECK: %[[G1:.*]] = ds.fused_group
  // CHECK-NEXT: ^bb0
  // CHECK-NEXT: ds.silu
  // CHECK-NEXT: ds.mul
  // CHECK-NEXT: ds.yield
  // CHECK-NEXT: }
  // CHECK-NEXT: %[[R:.*]] = ds.all_reduce %[[G1]]
  // CHECK-NEXT: %[[G2:.*]] = ds.fused_group(%[[R]], %{{.*}})
  // CHECK-NEXT: ^bb0
  // CHECK-NEXT: ds.add
  // CHECK-NEXT: ds.mul
  // CHECK-NEXT: ds.yield
  // CHECK-NEXT: }
  // CHECK-NEXT: return %[[G2]]
  func.func @collectives(%x: tensor<?x32xf32>) -> tensor<?x32xf32> {
    %a = ds.silu %x : tensor<?x32xf32>
    %b = ds.mul %a, %x : tensor<?x32xf32>
    %r = ds.all_reduce %b {group = "tp"} : tensor<?x32xf32>
    %c = ds.add %r, %x : tensor<?x32xf32>
    %d = ds.mul %c, %x : tensor<?x32xf32>
    return %d : tensor<?x32xf32>
  }
}
