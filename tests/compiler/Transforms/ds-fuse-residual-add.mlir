// RUN: ds-opt %s --ds-fuse-residual-add | FileCheck %s
// RUN: ds-opt %s --ds-fuse-residual-add --mlir-print-debuginfo | FileCheck %s --check-prefix=LOC

// The producer (linear or all_reduce) takes the add's other operand as its
// residual and replaces the add, whichever side of the add it is on.

// CHECK-LABEL: func.func @linear_rhs
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[A:.*]]: tensor<?x16xf32>, %[[W:.*]]: tensor<32x16xbf16>)
// CHECK-NEXT: %[[H:.*]] = ds.linear %[[A]], %[[W]] residual %[[X]] : (tensor<?x16xf32>, tensor<32x16xbf16>, tensor<?x32xf32>) -> tensor<?x32xf32>
// CHECK-NEXT: return %[[H]]
// The fused op keeps both locations.
// LOC-LABEL: func.func @linear_rhs
// LOC: ds.linear {{.*}} loc(#[[FUSED:loc[0-9]+]])
// LOC: #[[OP:loc[0-9]+]] = loc("o_proj")
// LOC-NEXT: #[[ADD:loc[0-9]+]] = loc("attn_residual")
// LOC: #[[FUSED]] = loc(fused[#[[OP]], #[[ADD]]])
func.func @linear_rhs(%x: tensor<?x32xf32>, %a: tensor<?x16xf32>, %w: tensor<32x16xbf16>) -> tensor<?x32xf32> {
  %o = ds.linear %a, %w : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32> loc("o_proj")
  %h = ds.add %x, %o : tensor<?x32xf32> loc("attn_residual")
  return %h : tensor<?x32xf32>
}

// CHECK-LABEL: func.func @linear_lhs
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xbf16>, %[[A:.*]]: tensor<?x16xbf16>, %[[W:.*]]: tensor<32x16xbf16>)
// CHECK-NEXT: %[[H:.*]] = ds.linear %[[A]], %[[W]] residual %[[X]] : (tensor<?x16xbf16>, tensor<32x16xbf16>, tensor<?x32xbf16>) -> tensor<?x32xbf16>
// CHECK-NEXT: return %[[H]]
func.func @linear_lhs(%x: tensor<?x32xbf16>, %a: tensor<?x16xbf16>, %w: tensor<32x16xbf16>) -> tensor<?x32xbf16> {
  %o = ds.linear %a, %w : (tensor<?x16xbf16>, tensor<32x16xbf16>) -> tensor<?x32xbf16>
  %h = ds.add %o, %x : tensor<?x32xbf16>
  return %h : tensor<?x32xbf16>
}

// A bf16 GEMM writing f32 into the f32 residual stream (--proj-out-dtype f32).
// CHECK-LABEL: func.func @linear_bias
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[A:.*]]: tensor<?x16xbf16>, %[[W:.*]]: tensor<32x16xbf16>, %[[B:.*]]: tensor<32xbf16>)
// CHECK-NEXT: %[[H:.*]] = ds.linear %[[A]], %[[W]], %[[B]] residual %[[X]] : (tensor<?x16xbf16>, tensor<32x16xbf16>, tensor<32xbf16>, tensor<?x32xf32>) -> tensor<?x32xf32>
// CHECK-NEXT: return %[[H]]
func.func @linear_bias(%x: tensor<?x32xf32>, %a: tensor<?x16xbf16>, %w: tensor<32x16xbf16>, %b: tensor<32xbf16>) -> tensor<?x32xf32> {
  %o = ds.linear %a, %w, %b : (tensor<?x16xbf16>, tensor<32x16xbf16>, tensor<32xbf16>) -> tensor<?x32xf32>
  %h = ds.add %x, %o : tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// Tensor parallelism: the add after a row-parallel linear's all-reduce moves
// into the all-reduce; the linear stays as it is.
// CHECK-LABEL: func.func @all_reduce
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[A:.*]]: tensor<?x16xf32>, %[[W:.*]]: tensor<32x16xbf16>)
// CHECK-NEXT: %[[P:.*]] = ds.linear %[[A]], %[[W]] : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
// CHECK-NEXT: %[[H:.*]] = ds.all_reduce %[[P]] residual %[[X]] : tensor<?x32xf32>
// CHECK-NEXT: return %[[H]]
func.func @all_reduce(%x: tensor<?x32xf32>, %a: tensor<?x16xf32>, %w: tensor<32x16xbf16>) -> tensor<?x32xf32> {
  %p = ds.linear %a, %w : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
  %s = ds.all_reduce %p : tensor<?x32xf32>
  %h = ds.add %x, %s : tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// A layer: the attention residual's result (now the o_proj linear's) is the
// residual of the MLP's down projection.
// CHECK-LABEL: func.func @chain
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[A:.*]]: tensor<?x16xf32>, %[[W:.*]]: tensor<32x16xbf16>, %[[D:.*]]: tensor<32x32xbf16>)
// CHECK-NEXT: %[[H:.*]] = ds.linear %[[A]], %[[W]] residual %[[X]]
// CHECK-NEXT: %[[M:.*]] = ds.silu %[[H]]
// CHECK-NEXT: %[[H2:.*]] = ds.linear %[[M]], %[[D]] residual %[[H]]
// CHECK-NEXT: return %[[H2]]
func.func @chain(%x: tensor<?x32xf32>, %a: tensor<?x16xf32>, %w: tensor<32x16xbf16>, %dw: tensor<32x32xbf16>) -> tensor<?x32xf32> {
  %o = ds.linear %a, %w : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
  %h = ds.add %x, %o : tensor<?x32xf32>
  %m = ds.silu %h : tensor<?x32xf32>
  %d = ds.linear %m, %dw : (tensor<?x32xf32>, tensor<32x32xbf16>) -> tensor<?x32xf32>
  %h2 = ds.add %h, %d : tensor<?x32xf32>
  return %h2 : tensor<?x32xf32>
}

// Both operands are linears: the later one takes the earlier one's result
// (the earlier one cannot take a residual defined after it).
// CHECK-LABEL: func.func @two_linears
// CHECK-NEXT: %[[L1:.*]] = ds.linear %{{.*}}, %{{.*}} : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
// CHECK-NEXT: %[[L2:.*]] = ds.linear %{{.*}}, %{{.*}} residual %[[L1]]
// CHECK-NEXT: return %[[L2]]
func.func @two_linears(%a: tensor<?x16xf32>, %w: tensor<32x16xbf16>) -> tensor<?x32xf32> {
  %l1 = ds.linear %a, %w : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
  %l2 = ds.linear %a, %w : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
  %h = ds.add %l1, %l2 : tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// Negative cases: the add stays.

// The linear's result has a second use.
// CHECK-LABEL: func.func @two_uses
// CHECK-NEXT: %[[O:.*]] = ds.linear %{{.*}}, %{{.*}} : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
// CHECK-NEXT: ds.add %{{.*}}, %[[O]]
// CHECK-NEXT: ds.silu %[[O]]
func.func @two_uses(%x: tensor<?x32xf32>, %a: tensor<?x16xf32>, %w: tensor<32x16xbf16>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
  %o = ds.linear %a, %w : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
  %h = ds.add %x, %o : tensor<?x32xf32>
  %s = ds.silu %o : tensor<?x32xf32>
  return %h, %s : tensor<?x32xf32>, tensor<?x32xf32>
}

// Mixed types: a bf16 linear output added into the f32 residual stream
// (--proj-out-dtype bf16); the epilogue add has one type.
// CHECK-LABEL: func.func @mixed_types
// CHECK-NEXT: %[[O:.*]] = ds.linear %{{.*}}, %{{.*}} : (tensor<?x16xbf16>, tensor<32x16xbf16>) -> tensor<?x32xbf16>
// CHECK-NEXT: ds.add %{{.*}}, %[[O]] : tensor<?x32xf32>, tensor<?x32xbf16> -> tensor<?x32xf32>
func.func @mixed_types(%x: tensor<?x32xf32>, %a: tensor<?x16xbf16>, %w: tensor<32x16xbf16>) -> tensor<?x32xf32> {
  %o = ds.linear %a, %w : (tensor<?x16xbf16>, tensor<32x16xbf16>) -> tensor<?x32xbf16>
  %h = ds.add %x, %o : tensor<?x32xf32>, tensor<?x32xbf16> -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// The other operand's type differs from the result's (a static token count).
// CHECK-LABEL: func.func @other_shape
// CHECK: ds.add %{{.*}}, %{{.*}} : tensor<4x32xf32>, tensor<?x32xf32> -> tensor<?x32xf32>
func.func @other_shape(%x: tensor<4x32xf32>, %a: tensor<?x16xf32>, %w: tensor<32x16xbf16>) -> tensor<?x32xf32> {
  %o = ds.linear %a, %w : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
  %h = ds.add %x, %o : tensor<4x32xf32>, tensor<?x32xf32> -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// The producer already has a residual (and so has the all-reduce).
// CHECK-LABEL: func.func @has_residual
// CHECK-NEXT: %[[O:.*]] = ds.linear %{{.*}}, %{{.*}} residual %{{.*}} :
// CHECK-NEXT: ds.add %{{.*}}, %[[O]] : tensor<?x32xf32>
// CHECK-NEXT: %[[S:.*]] = ds.all_reduce %{{.*}} residual %{{.*}} : tensor<?x32xf32>
// CHECK-NEXT: ds.add %[[S]], %{{.*}} : tensor<?x32xf32>
func.func @has_residual(%x: tensor<?x32xf32>, %a: tensor<?x16xf32>, %w: tensor<32x16xbf16>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
  %o = ds.linear %a, %w residual %x : (tensor<?x16xf32>, tensor<32x16xbf16>, tensor<?x32xf32>) -> tensor<?x32xf32>
  %h = ds.add %x, %o : tensor<?x32xf32>
  %s = ds.all_reduce %x residual %h : tensor<?x32xf32>
  %h2 = ds.add %s, %x : tensor<?x32xf32>
  return %h, %h2 : tensor<?x32xf32>, tensor<?x32xf32>
}

// The other operand is computed after the linear (nothing is moved).
// CHECK-LABEL: func.func @defined_after
// CHECK-NEXT: %[[O:.*]] = ds.linear %{{.*}}, %{{.*}} : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
// CHECK-NEXT: %[[R:.*]] = ds.silu
// CHECK-NEXT: ds.add %[[R]], %[[O]]
func.func @defined_after(%x: tensor<?x32xf32>, %a: tensor<?x16xf32>, %w: tensor<32x16xbf16>) -> tensor<?x32xf32> {
  %o = ds.linear %a, %w : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
  %r = ds.silu %x : tensor<?x32xf32>
  %h = ds.add %r, %o : tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// An add of two values that no linear / all-reduce produces.
// CHECK-LABEL: func.func @no_producer
// CHECK-NEXT: ds.silu
// CHECK-NEXT: ds.add
func.func @no_producer(%x: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %s = ds.silu %x : tensor<?x32xf32>
  %h = ds.add %x, %s : tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}
