// RUN: ds-opt %s --canonicalize --split-input-file | FileCheck %s

// A slice covering the whole row folds to its input.
// CHECK-LABEL: func.func @full_slice
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>)
// CHECK-NOT: ds.slice
// CHECK: return %[[X]]
func.func @full_slice(%x: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %y = ds.slice %x {offset = 0 : i64, size = 32 : i64} : tensor<?x32xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// A partial slice stays; a slice of a slice becomes one slice.
// CHECK-LABEL: func.func @slice_of_slice
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>)
// CHECK-NEXT: %[[A:.*]] = ds.slice %[[X]] {offset = 0 : i64, size = 16 : i64}
// CHECK-NEXT: %[[B:.*]] = ds.slice %[[X]] {offset = 40 : i64, size = 8 : i64} : tensor<?x64xf32> -> tensor<?x8xf32>
// CHECK-NEXT: return %[[A]], %[[B]]
func.func @slice_of_slice(%x: tensor<?x64xf32>) -> (tensor<?x16xf32>, tensor<?x8xf32>) {
  %a = ds.slice %x {offset = 0 : i64, size = 16 : i64} : tensor<?x64xf32> -> tensor<?x16xf32>
  %b = ds.slice %x {offset = 32 : i64, size = 32 : i64} : tensor<?x64xf32> -> tensor<?x32xf32>
  %c = ds.slice %b {offset = 8 : i64, size = 8 : i64} : tensor<?x32xf32> -> tensor<?x8xf32>
  return %a, %c : tensor<?x16xf32>, tensor<?x8xf32>
}

// -----

// Unused elementwise ops and weights are dead; the KV-cache write is not.
ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 1 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}
// CHECK-LABEL: func.func @dead
// CHECK-NOT: ds.add
// CHECK: ds.kv_cache_write
// CHECK-NEXT: return
func.func @dead(%x: tensor<?x8xf32>) {
  %a = ds.add %x, %x : tensor<?x8xf32>
  ds.kv_cache_write %x, %x {cache = @kv, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x8xf32>
  return
}

// -----

// Fused groups: unused results and inputs are dropped, duplicate inputs
// merged, a result that yields an input is forwarded, a repeated result is
// shared.
// CHECK-LABEL: func.func @group
// CHECK-SAME: (%[[X:.*]]: tensor<?x8xf32>, %[[Y:.*]]: tensor<?x8xf32>, %[[Z:.*]]: tensor<?x8xf32>)
// CHECK: %[[G:.*]] = ds.fused_group(%[[X]]) {ds.impl = "interp"} : (tensor<?x8xf32>) -> tensor<?x8xf32> {
// CHECK-NEXT: ^bb0(%[[A:.*]]: tensor<?x8xf32>):
// CHECK-NEXT:   %[[S:.*]] = ds.silu %[[A]]
// CHECK-NEXT:   %[[M:.*]] = ds.mul %[[S]], %[[A]]
// CHECK-NEXT:   ds.yield %[[M]] : tensor<?x8xf32>
// CHECK-NEXT: }
// CHECK-NEXT: return %[[G]], %[[Y]], %[[G]]
func.func @group(%x: tensor<?x8xf32>, %y: tensor<?x8xf32>, %z: tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) {
  %g:4 = ds.fused_group(%x, %y, %z, %x) {ds.impl = "interp"} : (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) {
  ^bb0(%a: tensor<?x8xf32>, %b: tensor<?x8xf32>, %c: tensor<?x8xf32>, %d: tensor<?x8xf32>):
    %s = ds.silu %a : tensor<?x8xf32>
    %m = ds.mul %s, %d : tensor<?x8xf32>
    %unused = ds.add %c, %c : tensor<?x8xf32>
    ds.yield %m, %b, %m, %unused : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>
  }
  return %g#0, %g#1, %g#2 : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>
}

// -----

// A group whose results are all unused and that writes nothing is erased;
// one with a KV-cache write stays.
ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 1 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}
// CHECK-LABEL: func.func @dead_group
// CHECK: ds.fused_group(%{{.*}}) : (tensor<?x8xf32>) -> () {
// CHECK: ds.kv_cache_write
// CHECK-NOT: ds.fused_group
// CHECK: return
func.func @dead_group(%x: tensor<?x8xf32>) {
  ds.fused_group(%x) : (tensor<?x8xf32>) -> () {
  ^bb0(%a: tensor<?x8xf32>):
    %s = ds.silu %a : tensor<?x8xf32>
    ds.kv_cache_write %s, %a {cache = @kv, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x8xf32>
    ds.yield
  }
  %g = ds.fused_group(%x) : (tensor<?x8xf32>) -> tensor<?x8xf32> {
  ^bb0(%a: tensor<?x8xf32>):
    %s = ds.silu %a : tensor<?x8xf32>
    ds.yield %s : tensor<?x8xf32>
  }
  return
}
