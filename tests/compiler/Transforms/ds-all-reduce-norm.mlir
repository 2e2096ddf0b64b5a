// RUN: ds-opt %s --ds-all-reduce-norm | FileCheck %s
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' %s | ds-opt --ds-all-reduce-norm | FileCheck %s --check-prefix=CPU
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "sm_1x"/' %s | not ds-opt --ds-all-reduce-norm 2>&1 | FileCheck %s --check-prefix=BAD
// With ds-plan-buffers: the norm group's result is live from the marked
// all-reduce on.
// RUN: ds-opt %s --ds-all-reduce-norm --ds-plan-buffers | FileCheck %s --check-prefix=PLAN
// RUN: sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' %s | ds-opt --ds-all-reduce-norm --ds-plan-buffers | FileCheck %s --check-prefix=PLANCPU

// CPU-NOT: ds.norm_epilogue
// PLAN: module attributes {ds.arena_alignment = 16 : i64, ds.arena_bytes_per_token = 224 : i64
// PLANCPU: module attributes {ds.arena_alignment = 16 : i64, ds.arena_bytes_per_token = 192 : i64
// BAD: error: ds-all-reduce-norm: unknown target "sm_1x"

module attributes {ds.target = "sm_90a", ds.tp_size = 2 : i64} {
  ds.weight @e {sources = [#ds.source<name = "e", file = "f", dtype = bf16, shape = [16, 16]>]} : tensor<16x16xbf16>
  ds.weight @w {sources = [#ds.source<name = "w", file = "f", dtype = bf16, shape = [16, 16]>]} : tensor<16x16xbf16>
  ds.weight @w2 {sources = [#ds.source<name = "w2", file = "f", dtype = bf16, shape = [16, 16]>]} : tensor<16x16xbf16>
  ds.weight @nw {sources = [#ds.source<name = "nw", file = "f", dtype = bf16, shape = [16]>]} : tensor<16xbf16>
  ds.weight @nw32 {sources = [#ds.source<name = "nw32", file = "f", dtype = f32, shape = [16]>]} : tensor<16xf32>

  // The residual all-reduce of an f32 stream, read by one pure-RMSNorm
  // group (bf16 result) and by the next residual add (returned): marked.
  // CHECK-LABEL: func.func @marked
  // CHECK: ds.all_reduce %{{.*}} residual %{{.*}} {ds.norm_epilogue} : tensor<?x16xf32>
  // CHECK: ds.fused_group
  func.func @marked(%p: tensor<?x16xf32>, %r: tensor<?x16xf32>) -> (tensor<?x16xbf16>, tensor<?x16xf32>) {
    %h = ds.all_reduce %p residual %r : tensor<?x16xf32>
    %nw = ds.get_weight @nw : tensor<16xbf16>
    %n = ds.fused_group(%h, %nw) : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x16xf32>, %g: tensor<16xbf16>):
      %y = ds.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16>
      ds.yield %y : tensor<?x16xbf16>
    }
    return %n, %h : tensor<?x16xbf16>, tensor<?x16xf32>
  }

  // A bf16 stream: marked.
  // CHECK-LABEL: func.func @bf16
  // CHECK: ds.all_reduce {{.*}}{ds.norm_epilogue} : tensor<?x16xbf16>
  func.func @bf16(%p: tensor<?x16xbf16>, %r: tensor<?x16xbf16>) -> tensor<?x16xbf16> {
    %h = ds.all_reduce %p residual %r : tensor<?x16xbf16>
    %nw = ds.get_weight @nw : tensor<16xbf16>
    %n = ds.fused_group(%h, %nw) : (tensor<?x16xbf16>, tensor<16xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x16xbf16>, %g: tensor<16xbf16>):
      %y = ds.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x16xbf16>, tensor<16xbf16>) -> tensor<?x16xbf16>
      ds.yield %y : tensor<?x16xbf16>
    }
    return %n : tensor<?x16xbf16>
  }

  // No residual (the embedding's all-reduce, or one whose residual add
  // stayed in the group): not marked.
  // CHECK-LABEL: func.func @no_residual
  // CHECK-NOT: ds.norm_epilogue
  // CHECK: return
  func.func @no_residual(%p: tensor<?x16xf32>) -> tensor<?x16xbf16> {
    %h = ds.all_reduce %p : tensor<?x16xf32>
    %nw = ds.get_weight @nw : tensor<16xbf16>
    %n = ds.fused_group(%h, %nw) : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x16xf32>, %g: tensor<16xbf16>):
      %y = ds.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16>
      ds.yield %y : tensor<?x16xbf16>
    }
    return %n : tensor<?x16xbf16>
  }

  // A second op in the group (a SiLU after the norm): not marked.
  // CHECK-LABEL: func.func @extra_op
  // CHECK-NOT: ds.norm_epilogue
  // CHECK: return
  func.func @extra_op(%p: tensor<?x16xf32>, %r: tensor<?x16xf32>) -> tensor<?x16xbf16> {
    %h = ds.all_reduce %p residual %r : tensor<?x16xf32>
    %nw = ds.get_weight @nw : tensor<16xbf16>
    %n = ds.fused_group(%h, %nw) : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x16xf32>, %g: tensor<16xbf16>):
      %y = ds.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16>
      %s = ds.silu %y : tensor<?x16xbf16>
      ds.yield %s : tensor<?x16xbf16>
    }
    return %n : tensor<?x16xbf16>
  }

  // The group yields two values: not marked.
  // CHECK-LABEL: func.func @two_results
  // CHECK-NOT: ds.norm_epilogue
  // CHECK: return
  func.func @two_results(%p: tensor<?x16xf32>, %r: tensor<?x16xf32>) -> (tensor<?x16xbf16>, tensor<?x16xbf16>) {
    %h = ds.all_reduce %p residual %r : tensor<?x16xf32>
    %nw = ds.get_weight @nw : tensor<16xbf16>
    %n:2 = ds.fused_group(%h, %nw) : (tensor<?x16xf32>, tensor<16xbf16>) -> (tensor<?x16xbf16>, tensor<?x16xbf16>) {
    ^bb0(%a: tensor<?x16xf32>, %g: tensor<16xbf16>):
      %y = ds.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16>
      ds.yield %y, %y : tensor<?x16xbf16>, tensor<?x16xbf16>
    }
    return %n#0, %n#1 : tensor<?x16xbf16>, tensor<?x16xbf16>
  }

  // Two norm groups read the all-reduce result: the kernel could write only
  // one of them, not marked.
  // CHECK-LABEL: func.func @two_norms
  // CHECK-NOT: ds.norm_epilogue
  // CHECK: return
  func.func @two_norms(%p: tensor<?x16xf32>, %r: tensor<?x16xf32>) -> (tensor<?x16xbf16>, tensor<?x16xbf16>) {
    %h = ds.all_reduce %p residual %r : tensor<?x16xf32>
    %nw = ds.get_weight @nw : tensor<16xbf16>
    %n = ds.fused_group(%h, %nw) : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x16xf32>, %g: tensor<16xbf16>):
      %y = ds.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16>
      ds.yield %y : tensor<?x16xbf16>
    }
    %m = ds.fused_group(%h, %nw) : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x16xf32>, %g: tensor<16xbf16>):
      %y = ds.rms_norm %a, %g {eps = 1.0e-06 : f64} : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16>
      ds.yield %y : tensor<?x16xbf16>
    }
    return %n, %m : tensor<?x16xbf16>, tensor<?x16xbf16>
  }

  // The norm's result is f32, not the bf16 input of a GEMM: not marked.
  // CHECK-LABEL: func.func @f32_norm
  // CHECK-NOT: ds.norm_epilogue
  // CHECK: return
  func.func @f32_norm(%p: tensor<?x16xf32>, %r: tensor<?x16xf32>) -> tensor<?x16xf32> {
    %h = ds.all_reduce %p residual %r : tensor<?x16xf32>
    %nw = ds.get_weight @nw : tensor<16xbf16>
    %n = ds.fused_group(%h, %nw) : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xf32> {
    ^bb0(%a: tensor<?x16xf32>, %g: tensor<16xbf16>):
      %y = ds.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xf32>
      ds.yield %y : tensor<?x16xf32>
    }
    return %n : tensor<?x16xf32>
  }

  // An f32 norm weight: not marked.
  // CHECK-LABEL: func.func @f32_weight
  // CHECK-NOT: ds.norm_epilogue
  // CHECK: return
  func.func @f32_weight(%p: tensor<?x16xf32>, %r: tensor<?x16xf32>) -> tensor<?x16xbf16> {
    %h = ds.all_reduce %p residual %r : tensor<?x16xf32>
    %nw = ds.get_weight @nw32 : tensor<16xf32>
    %n = ds.fused_group(%h, %nw) : (tensor<?x16xf32>, tensor<16xf32>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x16xf32>, %g: tensor<16xf32>):
      %y = ds.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x16xf32>, tensor<16xf32>) -> tensor<?x16xbf16>
      ds.yield %y : tensor<?x16xbf16>
    }
    return %n : tensor<?x16xbf16>
  }

  // Liveness. Bytes per token: %x 64 (ops 1..4), %part 64 (ops 3..4), %h 64
  // (ops 4..8), %n 32 (ops 6..8), %y 64 (ops 8..10); the logits are step
  // output 0. Largest first: %x 0, %part 64, %h 128, %y 0 (%x and %part are
  // dead by op 8). Without the mark %n takes 64, the all-reduce input
  // %part's offset (%part is dead after op 4). With it %n is live from the
  // all-reduce (op 4) on, where %x, %part and %h are live: it takes 192.
  // CHECK-LABEL: func.func @forward
  // CHECK: ds.all_reduce {{.*}}ds.norm_epilogue
  // PLAN-LABEL: func.func @forward
  // PLAN: ds.embedding {{.*}}ds.offsets = array<i64: 0>, ds.sizes = array<i64: 64>
  // PLAN: ds.linear {{.*}} {ds.offsets = array<i64: 64>, ds.sizes = array<i64: 64>}
  // PLAN: ds.all_reduce {{.*}} {ds.norm_epilogue, ds.offsets = array<i64: 128>, ds.sizes = array<i64: 64>}
  // PLAN: ds.fused_group({{.*}}) {ds.offsets = array<i64: 192>, ds.sizes = array<i64: 32>}
  // PLAN: ds.linear {{.*}} residual {{.*}} {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 64>}
  // PLANCPU-LABEL: func.func @forward
  // PLANCPU: ds.embedding {{.*}}ds.offsets = array<i64: 0>, ds.sizes = array<i64: 64>
  // PLANCPU: ds.linear {{.*}} {ds.offsets = array<i64: 64>, ds.sizes = array<i64: 64>}
  // PLANCPU: ds.all_reduce {{.*}} {ds.offsets = array<i64: 128>, ds.sizes = array<i64: 64>}
  // PLANCPU: ds.fused_group({{.*}}) {ds.offsets = array<i64: 64>, ds.sizes = array<i64: 32>}
  // PLANCPU: ds.linear {{.*}} residual {{.*}} {ds.offsets = array<i64: 0>, ds.sizes = array<i64: 64>}
  func.func @forward(%t: tensor<?xi32>, %pos: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x16xf32> {
    %e = ds.get_weight @e : tensor<16x16xbf16>
    %x = ds.embedding %t, %e : (tensor<?xi32>, tensor<16x16xbf16>) -> tensor<?x16xf32>
    %w = ds.get_weight @w : tensor<16x16xbf16>
    %part = ds.linear %x, %w : (tensor<?x16xf32>, tensor<16x16xbf16>) -> tensor<?x16xf32>
    %h = ds.all_reduce %part residual %x : tensor<?x16xf32>
    %nw = ds.get_weight @nw : tensor<16xbf16>
    %n = ds.fused_group(%h, %nw) : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16> {
    ^bb0(%a: tensor<?x16xf32>, %g: tensor<16xbf16>):
      %yn = ds.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x16xf32>, tensor<16xbf16>) -> tensor<?x16xbf16>
      ds.yield %yn : tensor<?x16xbf16>
    }
    %w2 = ds.get_weight @w2 : tensor<16x16xbf16>
    %y = ds.linear %n, %w2 residual %h : (tensor<?x16xbf16>, tensor<16x16xbf16>, tensor<?x16xf32>) -> tensor<?x16xf32>
    %wo = ds.get_weight @e : tensor<16x16xbf16>
    %l = ds.logits %y, %wo, %rows : (tensor<?x16xf32>, tensor<16x16xbf16>, tensor<?xi32>) -> tensor<?x16xf32>
    return %l : tensor<?x16xf32>
  }
}
