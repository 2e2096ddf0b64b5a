// RUN: ds-opt %s --ds-select-kernels --split-input-file -verify-diagnostics | FileCheck %s --check-prefix=CPU
// RUN: ds-opt %s --ds-select-kernels=target=sm_90a --split-input-file | FileCheck %s --check-prefix=SM90
// RUN: not ds-opt %s --ds-select-kernels=target=sm_x --split-input-file 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: ds-select-kernels: unknown target "sm_x" (expected "cpu" or "sm_<NN>[a]")

// CPU-LABEL: func.func @forward
// CPU: ds.get_weight @e : tensor<16x8xbf16>
// CPU-NEXT: ds.embedding {{.*}} {ds.impl = "ref.embedding"}
// CPU: ds.linear {{.*}} {ds.impl = "ref.linear"}
// CPU-NEXT: ds.fused_group({{.*}}) {ds.impl = "interp"}
// CPU-NOT: ds.impl
// CPU: ds.paged_attention {{.*}}ds.impl = "ref.paged_attention"
// CPU-NEXT: ds.add {{.*}} {ds.impl = "ref.add"}
// CPU-NEXT: ds.logits {{.*}} {ds.impl = "ref.logits"}

// SM90-LABEL: func.func @forward
// SM90: ds.embedding {{.*}} {ds.impl = "cuda.embedding"}
// SM90: ds.linear {{.*}} {ds.impl = "cublaslt.gemm"}
// SM90-NEXT: ds.fused_group({{.*}}) {ds.impl = "nvrtc"}
// SM90-NOT: ds.impl
// SM90: ds.paged_attention {{.*}}ds.impl = "cuda.paged_attention"
// SM90-NEXT: ds.add {{.*}} {ds.impl = "cuda.add"}
// SM90-NEXT: ds.logits {{.*}} {ds.impl = "cublaslt.gemm"}
module attributes {ds.target = "cpu"} {
  ds.weight @e {sources = [#ds.source<name = "e", file = "f", dtype = bf16, shape = [16, 8]>]} : tensor<16x8xbf16>
  ds.weight @w {sources = [#ds.source<name = "w", file = "f", dtype = bf16, shape = [8, 8]>]} : tensor<8x8xbf16>
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 1 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}
  func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>, %r: tensor<?xi32>) -> tensor<?x16xf32> {
    %e = ds.get_weight @e : tensor<16x8xbf16>
    %x = ds.embedding %t, %e : (tensor<?xi32>, tensor<16x8xbf16>) -> tensor<?x8xf32>
    %w = ds.get_weight @w : tensor<8x8xbf16>
    %y = ds.linear %x, %w : (tensor<?x8xf32>, tensor<8x8xbf16>) -> tensor<?x8xf32>
    %g = ds.fused_group(%y, %p) : (tensor<?x8xf32>, tensor<?xi32>) -> tensor<?x8xf32> {
    ^bb0(%a: tensor<?x8xf32>, %b: tensor<?xi32>):
      %s = ds.silu %a : tensor<?x8xf32>
      %q = ds.rope %s, %b {num_heads = 1 : i64, head_dim = 8 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x8xf32>, tensor<?xi32>
      ds.kv_cache_write %q, %q {cache = @kv, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x8xf32>
      ds.yield %q : tensor<?x8xf32>
    }
    %o = ds.paged_attention %g {cache = @kv, layer = 0 : i64, num_heads = 1 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.35 : f64} : tensor<?x8xf32> -> tensor<?x8xf32>
    %h = ds.add %o, %x : tensor<?x8xf32>
    %l = ds.logits %h, %e, %r : (tensor<?x8xf32>, tensor<16x8xbf16>, tensor<?xi32>) -> tensor<?x16xf32>
    return %l : tensor<?x16xf32>
  }
}

// -----

// Collectives: reference kernels on the CPU, NCCL on GPUs.
// CPU-LABEL: func.func @collectives
// CPU: ds.all_reduce {{.*}} {ds.impl = "ref.all_reduce"}
// CPU: ds.all_gather {{.*}} {ds.impl = "ref.all_gather"}
// SM90-LABEL: func.func @collectives
// SM90: ds.all_reduce {{.*}} {ds.impl = "nccl.all_reduce"}
// SM90: ds.all_gather {{.*}} {ds.impl = "nccl.all_gather"}
module attributes {ds.target = "cpu", ds.tp_size = 2 : i64} {
  func.func @collectives(%x: tensor<?x8xf32>) -> tensor<?x16xf32> {
    %s = ds.all_reduce %x : tensor<?x8xf32>
    %g = ds.all_gather %s : tensor<?x8xf32> -> tensor<?x16xf32>
    return %g : tensor<?x16xf32>
  }
}

// -----

// expected-error @+1 {{ds-select-kernels: unknown target "tpu"}}
module attributes {ds.target = "tpu"} {
}

// -----

// expected-error @+1 {{ds-select-kernels: no target}}
module {
}
