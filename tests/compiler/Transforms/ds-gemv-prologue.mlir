// RUN: ds-opt %s --ds-gemv-prologue | FileCheck %s
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' %s | ds-opt --ds-gemv-prologue | FileCheck %s --check-prefix=CPU
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "sm_1x"/' %s | not ds-opt --ds-gemv-prologue 2>&1 | FileCheck %s --check-prefix=BAD
// With ds-plan-buffers: the group's input stays live through the marked linear.
// RUN: ds-opt %s --ds-gemv-prologue --ds-plan-buffers | FileCheck %s --check-prefix=PLAN
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' %s | ds-opt --ds-gemv-prologue --ds-plan-buffers | FileCheck %s --check-prefix=PLANCPU

// CPU-NOT: ds.prologue
// BAD: error: ds-gemv-prologue: unknown target "sm_1x"

module attributes {ds.target = "sm_90a"} {
  ds.weight @e {sources = [#ds.source<name = "e", file = "f", dtype = bf16, shape = [16, 32]>]} : tensor<16x32xbf16>
  ds.weight @n {sources = [#ds.source<name = "n", file = "f", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
  ds.weight @w {sources = [#ds.source<name = "w", file = "f", dtype = bf16, shape = [32, 32]>]} : tensor<32x32xbf16>

  // A pure-RMSNorm group whose only reader is the linear: marked.
  // CHECK-LABEL: func.func @norm_linear
  // CHECK: ds.fused_group
  // CHECK: ds.linear {{.*}} {ds.prologue = "rms_norm"}
  func.func @norm_linear(%x: tensor<?x32xf32>, %nw: tensor<32xbf16>, %w: tensor<32x32xbf16>) -> tensor<?x32xf32> {
    %n = ds.fused_group(%x, %nw) : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16> {
    ^bb0(%a: tensor<?x32xf32>, %b: tensor<32xbf16>):
      %r = ds.rms_norm %a, %b {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16>
      ds.yield %r : tensor<?x32xbf16>
    }
    %y = ds.linear %n, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    return %y : tensor<?x32xf32>
  }

  // An add + rms_norm group (the residual add was not fused): not marked.
  // CHECK-LABEL: func.func @add_norm
  // CHECK-NOT: ds.prologue
  // CHECK: return
  func.func @add_norm(%x: tensor<?x32xf32>, %o: tensor<?x32xf32>, %nw: tensor<32xbf16>, %w: tensor<32x32xbf16>) -> tensor<?x32xf32> {
    %n = ds.fused_group(%x, %o, %nw) : (tensor<?x32xf32>, tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16> {
    ^bb0(%a: tensor<?x32xf32>, %c: tensor<?x32xf32>, %b: tensor<32xbf16>):
      %s = ds.add %a, %c : tensor<?x32xf32>
      %r = ds.rms_norm %s, %b {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16>
      ds.yield %r : tensor<?x32xbf16>
    }
    %y = ds.linear %n, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    return %y : tensor<?x32xf32>
  }

  // The normalized value has a second reader: the group must run anyway.
  // CHECK-LABEL: func.func @two_uses
  // CHECK-NOT: ds.prologue
  // CHECK: return
  func.func @two_uses(%x: tensor<?x32xf32>, %nw: tensor<32xbf16>, %w: tensor<32x32xbf16>) -> (tensor<?x32xf32>, tensor<?x32xbf16>) {
    %n = ds.fused_group(%x, %nw) : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16> {
    ^bb0(%a: tensor<?x32xf32>, %b: tensor<32xbf16>):
      %r = ds.rms_norm %a, %b {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16>
      ds.yield %r : tensor<?x32xbf16>
    }
    %y = ds.linear %n, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    %s = ds.silu %n : tensor<?x32xbf16>
    return %y, %s : tensor<?x32xf32>, tensor<?x32xbf16>
  }

  // A group with two results (the norm and another value): not marked.
  // CHECK-LABEL: func.func @two_results
  // CHECK-NOT: ds.prologue
  // CHECK: return
  func.func @two_results(%x: tensor<?x32xf32>, %nw: tensor<32xbf16>, %w: tensor<32x32xbf16>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
    %n, %t = ds.fused_group(%x, %nw) : (tensor<?x32xf32>, tensor<32xbf16>) -> (tensor<?x32xbf16>, tensor<?x32xf32>) {
    ^bb0(%a: tensor<?x32xf32>, %b: tensor<32xbf16>):
      %r = ds.rms_norm %a, %b {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16>
      %s = ds.silu %a : tensor<?x32xf32>
      ds.yield %r, %s : tensor<?x32xbf16>, tensor<?x32xf32>
    }
    %y = ds.linear %n, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    return %y, %t : tensor<?x32xf32>, tensor<?x32xf32>
  }

  // The norm does not read the group's first input as x: not marked.
  // CHECK-LABEL: func.func @swapped_inputs
  // CHECK-NOT: ds.prologue
  // CHECK: return
  func.func @swapped_inputs(%x: tensor<?x32xf32>, %nw: tensor<32xbf16>, %w: tensor<32x32xbf16>) -> tensor<?x32xf32> {
    %n = ds.fused_group(%nw, %x) : (tensor<32xbf16>, tensor<?x32xf32>) -> tensor<?x32xbf16> {
    ^bb0(%b: tensor<32xbf16>, %a: tensor<?x32xf32>):
      %r = ds.rms_norm %a, %b {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16>
      ds.yield %r : tensor<?x32xbf16>
    }
    %y = ds.linear %n, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    return %y : tensor<?x32xf32>
  }

  // Liveness. Bytes per token: %x 128 (ops 0..1), %n 64 (op 1), %y 128
  // (op 2); the logits are step output 0. Without the mark %y reuses %x's
  // offset 0 (%x is dead after the group), %n goes to 128. With it %x stays
  // live through the linear: %y takes 128 and %n 256.
  // CHECK-LABEL: func.func @forward
  // CHECK: ds.linear {{.*}} {ds.prologue = "rms_norm"}
  // PLAN-LABEL: func.func @forward
  // PLAN: ds.embedding {{.*}}ds.offsets = array<i64: 0>, ds.sizes = array<i64: 128>
  // PLAN: ds.fused_group({{.*}}) {ds.offsets = array<i64: 256>, ds.sizes = array<i64: 64>}
  // PLAN: ds.linear {{.*}} {ds.offsets = array<i64: 128>, ds.prologue = "rms_norm", ds.sizes = array<i64: 128>}
  // PLANCPU-LABEL: func.func @forward
  // PLANCPU: ds.embedding {{.*}}ds.offsets = array<i64: 0>, ds.sizes = array<i64: 128>
  // PLANCPU: ds.fused_group({{.*}}) {ds.offsets = array<i64: 128>, ds.sizes = array<i64: 64>}
  // PLANCPU: ds.linear {{.*}} {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 128>}
  func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x16xf32> {
    %e = ds.get_weight @e : tensor<16x32xbf16>
    %x = ds.embedding %t, %e : (tensor<?xi32>, tensor<16x32xbf16>) -> tensor<?x32xf32>
    %nw = ds.get_weight @n : tensor<32xbf16>
    %n = ds.fused_group(%x, %nw) : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16> {
    ^bb0(%a: tensor<?x32xf32>, %b: tensor<32xbf16>):
      %r = ds.rms_norm %a, %b {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<32xbf16>) -> tensor<?x32xbf16>
      ds.yield %r : tensor<?x32xbf16>
    }
    %w = ds.get_weight @w : tensor<32x32xbf16>
    %y = ds.linear %n, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    %l = ds.logits %y, %e, %rows : (tensor<?x32xf32>, tensor<16x32xbf16>, tensor<?xi32>) -> tensor<?x16xf32>
    return %l : tensor<?x16xf32>
  }
}
