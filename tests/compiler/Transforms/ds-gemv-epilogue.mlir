// RUN: ds-opt %s --ds-gemv-epilogue | FileCheck %s
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' %s | ds-opt --ds-gemv-epilogue | FileCheck %s --check-prefix=CPU
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "sm_1x"/' %s | not ds-opt --ds-gemv-epilogue 2>&1 | FileCheck %s --check-prefix=BAD
// With ds-plan-buffers: the group's result is live from the marked linear on.
// RUN: ds-opt %s --ds-gemv-epilogue --ds-plan-buffers | FileCheck %s --check-prefix=PLAN
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' %s | ds-opt --ds-gemv-epilogue --ds-plan-buffers | FileCheck %s --check-prefix=PLANCPU

// CPU-NOT: ds.epilogue
// BAD: error: ds-gemv-epilogue: unknown target "sm_1x"

module attributes {ds.target = "sm_90a"} {
  ds.weight @e {sources = [#ds.source<name = "e", file = "f", dtype = bf16, shape = [16, 32]>]} : tensor<16x32xbf16>
  ds.weight @gu {sources = [#ds.source<name = "gu", file = "f", dtype = bf16, shape = [32, 32]>]} : tensor<32x32xbf16>
  ds.weight @o {sources = [#ds.source<name = "o", file = "f", dtype = bf16, shape = [16, 16]>]} : tensor<16x16xbf16>

  // gate_up (I = 16) read only by a SiLU*mul group: marked.
  // CHECK-LABEL: func.func @gate_up
  // CHECK: ds.linear {{.*}} {ds.epilogue = "swiglu"}
  // CHECK-NEXT: ds.fused_group
  func.func @gate_up(%x: tensor<?x32xbf16>, %w: tensor<32x32xbf16>) -> tensor<?x16xbf16> {
    %y = ds.linear %x, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xbf16>
    %m = ds.fused_group(%y) : (tensor<?x32xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>):
      %g = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %u = ds.slice %a {offset = 16 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %s = ds.silu %g : tensor<?x16xbf16>
      %r = ds.mul %s, %u : tensor<?x16xbf16>
      ds.yield %r : tensor<?x16xbf16>
    }
    return %m : tensor<?x16xbf16>
  }

  // Another op order, the product as (up, silu) and a bias (from any
  // activation or weight type of x): marked.
  // CHECK-LABEL: func.func @bias_swapped
  // CHECK: ds.linear {{.*}} {ds.epilogue = "swiglu"}
  func.func @bias_swapped(%x: tensor<?x32xf32>, %w: tensor<32x32xbf16>, %b: tensor<32xbf16>) -> tensor<?x16xbf16> {
    %y = ds.linear %x, %w, %b : (tensor<?x32xf32>, tensor<32x32xbf16>, tensor<32xbf16>) -> tensor<?x32xbf16>
    %m = ds.fused_group(%y) : (tensor<?x32xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>):
      %u = ds.slice %a {offset = 16 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %g = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %s = ds.silu %g : tensor<?x16xbf16>
      %r = ds.mul %u, %s : tensor<?x16xbf16>
      ds.yield %r : tensor<?x16xbf16>
    }
    return %m : tensor<?x16xbf16>
  }

  // The gate_up result has a second reader: the linear must write it anyway.
  // CHECK-LABEL: func.func @two_uses
  // CHECK-NOT: ds.epilogue
  // CHECK: return
  func.func @two_uses(%x: tensor<?x32xbf16>, %w: tensor<32x32xbf16>) -> (tensor<?x16xbf16>, tensor<?x32xbf16>) {
    %y = ds.linear %x, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xbf16>
    %m = ds.fused_group(%y) : (tensor<?x32xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>):
      %g = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %u = ds.slice %a {offset = 16 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %s = ds.silu %g : tensor<?x16xbf16>
      %r = ds.mul %s, %u : tensor<?x16xbf16>
      ds.yield %r : tensor<?x16xbf16>
    }
    %t = ds.silu %y : tensor<?x32xbf16>
    return %m, %t : tensor<?x16xbf16>, tensor<?x32xbf16>
  }

  // Other bodies: SiLU of the up half (halves swapped), a slice that is not
  // a half, an extra op: not marked.
  // CHECK-LABEL: func.func @other_bodies
  // CHECK-NOT: ds.epilogue
  // CHECK: return
  func.func @other_bodies(%x: tensor<?x32xbf16>, %w: tensor<32x32xbf16>) -> (tensor<?x16xbf16>, tensor<?x8xbf16>, tensor<?x16xbf16>) {
    %y1 = ds.linear %x, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xbf16>
    %m1 = ds.fused_group(%y1) : (tensor<?x32xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>):
      %g = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %u = ds.slice %a {offset = 16 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %s = ds.silu %u : tensor<?x16xbf16>
      %r = ds.mul %s, %g : tensor<?x16xbf16>
      ds.yield %r : tensor<?x16xbf16>
    }
    %y2 = ds.linear %x, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xbf16>
    %m2 = ds.fused_group(%y2) : (tensor<?x32xbf16>) -> tensor<?x8xbf16> {
    ^bb0(%a: tensor<?x32xbf16>):
      %g = ds.slice %a {offset = 0 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %u = ds.slice %a {offset = 8 : i64, size = 8 : i64} : tensor<?x32xbf16> -> tensor<?x8xbf16>
      %s = ds.silu %g : tensor<?x8xbf16>
      %r = ds.mul %s, %u : tensor<?x8xbf16>
      ds.yield %r : tensor<?x8xbf16>
    }
    %y3 = ds.linear %x, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xbf16>
    %m3 = ds.fused_group(%y3) : (tensor<?x32xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>):
      %g = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %u = ds.slice %a {offset = 16 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %s = ds.silu %g : tensor<?x16xbf16>
      %r = ds.mul %s, %u : tensor<?x16xbf16>
      %r2 = ds.mul %r, %u : tensor<?x16xbf16>
      ds.yield %r2 : tensor<?x16xbf16>
    }
    return %m1, %m2, %m3 : tensor<?x16xbf16>, tensor<?x8xbf16>, tensor<?x16xbf16>
  }

  // A group with two results (the product and the gate): not marked.
  // CHECK-LABEL: func.func @two_results
  // CHECK-NOT: ds.epilogue
  // CHECK: return
  func.func @two_results(%x: tensor<?x32xbf16>, %w: tensor<32x32xbf16>) -> (tensor<?x16xbf16>, tensor<?x16xbf16>) {
    %y = ds.linear %x, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xbf16>
    %m, %gate = ds.fused_group(%y) : (tensor<?x32xbf16>) -> (tensor<?x16xbf16>, tensor<?x16xbf16>) {
    ^bb0(%a: tensor<?x32xbf16>):
      %g = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %u = ds.slice %a {offset = 16 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %s = ds.silu %g : tensor<?x16xbf16>
      %r = ds.mul %s, %u : tensor<?x16xbf16>
      ds.yield %r, %s : tensor<?x16xbf16>, tensor<?x16xbf16>
    }
    return %m, %gate : tensor<?x16xbf16>, tensor<?x16xbf16>
  }

  // An f32 gate_up result (the GEMV epilogue writes bf16) and a linear with a
  // residual (no residual with the epilogue): not marked.
  // CHECK-LABEL: func.func @f32_or_residual
  // CHECK-NOT: ds.epilogue
  // CHECK: return
  func.func @f32_or_residual(%x: tensor<?x32xbf16>, %w: tensor<32x32xbf16>, %res: tensor<?x32xbf16>) -> (tensor<?x16xf32>, tensor<?x16xbf16>) {
    %y1 = ds.linear %x, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    %m1 = ds.fused_group(%y1) : (tensor<?x32xf32>) -> tensor<?x16xf32> {
    ^bb0(%a: tensor<?x32xf32>):
      %g = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xf32> -> tensor<?x16xf32>
      %u = ds.slice %a {offset = 16 : i64, size = 16 : i64} : tensor<?x32xf32> -> tensor<?x16xf32>
      %s = ds.silu %g : tensor<?x16xf32>
      %r = ds.mul %s, %u : tensor<?x16xf32>
      ds.yield %r : tensor<?x16xf32>
    }
    %y2 = ds.linear %x, %w residual %res : (tensor<?x32xbf16>, tensor<32x32xbf16>, tensor<?x32xbf16>) -> tensor<?x32xbf16>
    %m2 = ds.fused_group(%y2) : (tensor<?x32xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>):
      %g = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %u = ds.slice %a {offset = 16 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %s = ds.silu %g : tensor<?x16xbf16>
      %r = ds.mul %s, %u : tensor<?x16xbf16>
      ds.yield %r : tensor<?x16xbf16>
    }
    return %m1, %m2 : tensor<?x16xf32>, tensor<?x16xbf16>
  }

  // Liveness. Bytes per token: %x 64 (ops 1..2), %y 64 (ops 2..4), %m 32
  // (op 4, read by op 6); the logits are step output 0. Without the mark %m
  // reuses %x's offset 0 (%x is dead after the linear). With it %m is live
  // from the linear on, where %x and %y are live: %m takes 128.
  // CHECK-LABEL: func.func @forward
  // CHECK: ds.linear {{.*}} {ds.epilogue = "swiglu"}
  // PLAN-LABEL: func.func @forward
  // PLAN: ds.embedding {{.*}}ds.offsets = array<i64: 0>, ds.sizes = array<i64: 64>
  // PLAN: ds.linear {{.*}} {ds.epilogue = "swiglu", ds.offsets = array<i64: 64>, ds.sizes = array<i64: 64>}
  // PLAN: ds.fused_group({{.*}}) {ds.offsets = array<i64: 128>, ds.sizes = array<i64: 32>}
  // PLANCPU-LABEL: func.func @forward
  // PLANCPU: ds.embedding {{.*}}ds.offsets = array<i64: 0>, ds.sizes = array<i64: 64>
  // PLANCPU: ds.linear {{.*}} {ds.offsets = array<i64: 64>, ds.sizes = array<i64: 64>}
  // PLANCPU: ds.fused_group({{.*}}) {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 32>}
  func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x16xf32> {
    %e = ds.get_weight @e : tensor<16x32xbf16>
    %x = ds.embedding %t, %e : (tensor<?xi32>, tensor<16x32xbf16>) -> tensor<?x32xbf16>
    %w = ds.get_weight @gu : tensor<32x32xbf16>
    %y = ds.linear %x, %w : (tensor<?x32xbf16>, tensor<32x32xbf16>) -> tensor<?x32xbf16>
    %m = ds.fused_group(%y) : (tensor<?x32xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x32xbf16>):
      %g = ds.slice %a {offset = 0 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %u = ds.slice %a {offset = 16 : i64, size = 16 : i64} : tensor<?x32xbf16> -> tensor<?x16xbf16>
      %s = ds.silu %g : tensor<?x16xbf16>
      %r = ds.mul %s, %u : tensor<?x16xbf16>
      ds.yield %r : tensor<?x16xbf16>
    }
    %wo = ds.get_weight @o : tensor<16x16xbf16>
    %l = ds.logits %m, %wo, %rows : (tensor<?x16xbf16>, tensor<16x16xbf16>, tensor<?xi32>) -> tensor<?x16xf32>
    return %l : tensor<?x16xf32>
  }
}
