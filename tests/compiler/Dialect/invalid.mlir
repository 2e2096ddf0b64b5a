// RUN: ds-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{sources add up to 48 along axis 0 but the weight has 64}}
ds.weight @w {sources = [#ds.source<name = "a", file = "f", dtype = bf16, shape = [32, 8]>, #ds.source<name = "b", file = "f", dtype = bf16, shape = [16, 8]>]} : tensor<64x8xbf16>

// -----

// expected-error @+1 {{source 'b' of shape [16, 4] does not match [48, 8] outside concat_axis 0}}
ds.weight @w {sources = [#ds.source<name = "a", file = "f", dtype = bf16, shape = [32, 8]>, #ds.source<name = "b", file = "f", dtype = bf16, shape = [16, 4]>]} : tensor<48x8xbf16>

// -----

// expected-error @+1 {{concat_axis 2 out of range for rank 2}}
ds.weight @w {sources = [#ds.source<name = "a", file = "f", dtype = bf16, shape = [32, 8]>], concat_axis = 2 : i64} : tensor<32x8xbf16>

// -----

// expected-error @+1 {{slice [16, 48) exceeds dimension 32}}
ds.weight @w {sources = [#ds.source<name = "a", file = "f", dtype = bf16, shape = [32, 8], slice_axis = 0, slice_start = 16, slice_size = 32>]} : tensor<32x8xbf16>

// -----

// expected-error @+1 {{#ds.rope: style must be "neox" or "interleaved", got "gptj"}}
func.func private @f() attributes {r = #ds.rope<theta = 10000.0, style = "gptj", rotary_dim = 64>}

// -----

ds.weight @w {sources = [#ds.source<name = "a", file = "f", dtype = bf16, shape = [32, 8]>]} : tensor<32x8xbf16>
func.func @f() {
  // expected-error @+1 {{result type 'tensor<8x32xbf16>' does not match the type of ds.weight @w: 'tensor<32x8xbf16>'}}
  %w = ds.get_weight @w : tensor<8x32xbf16>
  return
}

// -----

func.func @f() {
  // expected-error @+1 {{'@missing' does not reference a ds.weight}}
  %w = ds.get_weight @missing : tensor<8xbf16>
  return
}

// -----

func.func @f(%x: tensor<?x16xf32>, %w: tensor<32x8xbf16>) {
  // expected-error @+1 {{input row size K = 16 does not match the weight [N, K] = [32, 8]}}
  %y = ds.linear %x, %w : (tensor<?x16xf32>, tensor<32x8xbf16>) -> tensor<?x32xf32>
  return
}

// -----

func.func @f(%x: tensor<?x8xf32>, %w: tensor<32x8xbf16>, %b: tensor<16xbf16>) {
  // expected-error @+1 {{expects a bias of shape [32], got [16]}}
  %y = ds.linear %x, %w, %b : (tensor<?x8xf32>, tensor<32x8xbf16>, tensor<16xbf16>) -> tensor<?x32xf32>
  return
}

// -----

// A residual must have the result's element type (no mixed-type epilogue add) ...
func.func @f(%x: tensor<?x8xbf16>, %w: tensor<32x8xbf16>, %r: tensor<?x32xbf16>) {
  // expected-error @+1 {{expects a residual of the result type 'tensor<?x32xf32>', got 'tensor<?x32xbf16>'}}
  %y = ds.linear %x, %w residual %r : (tensor<?x8xbf16>, tensor<32x8xbf16>, tensor<?x32xbf16>) -> tensor<?x32xf32>
  return
}

// -----

// ... and its shape.
func.func @f(%x: tensor<?x8xf32>, %w: tensor<32x8xbf16>, %b: tensor<32xbf16>, %r: tensor<?x16xf32>) {
  // expected-error @+1 {{expects a residual of the result type 'tensor<?x32xf32>', got 'tensor<?x16xf32>'}}
  %y = ds.linear %x, %w, %b residual %r : (tensor<?x8xf32>, tensor<32x8xbf16>, tensor<32xbf16>, tensor<?x16xf32>) -> tensor<?x32xf32>
  return
}

// -----

func.func @f(%x: tensor<?x8xf32>, %w: tensor<32x8xbf16>) {
  // expected-error @+1 {{unsupported quant "int4"}}
  %y = ds.linear %x, %w {quant = "int4"} : (tensor<?x8xf32>, tensor<32x8xbf16>) -> tensor<?x32xf32>
  return
}

// -----

func.func @f(%x: tensor<?x32xf32>) {
  // expected-error @+1 {{slice [24, 40) exceeds the row size 32}}
  %y = ds.slice %x {offset = 24 : i64, size = 16 : i64} : tensor<?x32xf32> -> tensor<?x16xf32>
  return
}

// -----

func.func @f(%x: tensor<?x32xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{num_heads * head_dim = 3 * 8 does not match the row size 32}}
  %y = ds.rope %x, %p {num_heads = 3 : i64, head_dim = 8 : i64, rope = #ds.rope<rotary_dim = 8>} : tensor<?x32xf32>, tensor<?xi32>
  return
}

// -----

func.func @f(%x: tensor<?x32xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{rotary_dim 16 exceeds head_dim 8}}
  %y = ds.rope %x, %p {num_heads = 4 : i64, head_dim = 8 : i64, rope = #ds.rope<rotary_dim = 16>} : tensor<?x32xf32>, tensor<?xi32>
  return
}

// -----

ds.kv_cache @kv {num_layers = 2 : i64, num_kv_heads = 2 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}
func.func @f(%q: tensor<?x24xf32>) {
  // expected-error @+1 {{num_heads 3 is not a multiple of num_kv_heads 2}}
  %o = ds.paged_attention %q {cache = @kv, layer = 0 : i64, num_heads = 3 : i64, num_kv_heads = 2 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.5 : f64} : tensor<?x24xf32> -> tensor<?x24xf32>
  return
}

// -----

ds.kv_cache @kv {num_layers = 2 : i64, num_kv_heads = 2 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}
func.func @f(%q: tensor<?x64xf32>) {
  // expected-error @+1 {{num_kv_heads/head_dim/v_head_dim = 4/8/8 do not match @kv (2/8/8)}}
  %o = ds.paged_attention %q {cache = @kv, layer = 1 : i64, num_heads = 8 : i64, num_kv_heads = 4 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.5 : f64} : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

ds.kv_cache @kv {num_layers = 2 : i64, num_kv_heads = 2 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}
func.func @f(%k: tensor<?x16xf32>, %v: tensor<?x16xf32>) {
  // expected-error @+1 {{layer 2 out of range: @kv has 2 layers}}
  ds.kv_cache_write %k, %v {cache = @kv, layer = 2 : i64} : tensor<?x16xf32>, tensor<?x16xf32>
  return
}

// -----

ds.kv_cache @kv {num_layers = 2 : i64, num_kv_heads = 2 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}
func.func @f(%k: tensor<?x16xf32>, %v: tensor<?x8xf32>) {
  // expected-error @+1 {{v row size 8 does not match num_kv_heads * v_dim = 16}}
  ds.kv_cache_write %k, %v {cache = @kv, layer = 0 : i64} : tensor<?x16xf32>, tensor<?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x32xf32>, %w: tensor<100x32xbf16>, %rows: tensor<?xi32>) {
  // expected-error @+1 {{result row size 64 does not match the vocab size 100}}
  %l = ds.logits %x, %w, %rows : (tensor<?x32xf32>, tensor<100x32xbf16>, tensor<?xi32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x32xf32>, %w: tensor<32x32xbf16>) {
  // expected-error @+1 {{operand 0 of type 'tensor<?x32xf32>' does not match block argument type 'tensor<?x16xf32>'}}
  %g = ds.fused_group(%x) : (tensor<?x32xf32>) -> (tensor<?x16xf32>) {
  ^bb0(%a: tensor<?x16xf32>):
    ds.yield %a : tensor<?x16xf32>
  }
  return
}

// -----

func.func @f(%x: tensor<?x32xf32>, %w: tensor<32x32xbf16>) {
  %g = ds.fused_group(%x, %w) : (tensor<?x32xf32>, tensor<32x32xbf16>) -> (tensor<?x32xf32>) {
  ^bb0(%a: tensor<?x32xf32>, %b: tensor<32x32xbf16>):
    // expected-error @+1 {{is not allowed inside ds.fused_group}}
    %y = ds.linear %a, %b : (tensor<?x32xf32>, tensor<32x32xbf16>) -> tensor<?x32xf32>
    ds.yield %y : tensor<?x32xf32>
  }
  return
}

// -----

func.func @f(%x: tensor<?x32xf32>) {
  // expected-error @+1 {{ds.yield types do not match the result types}}
  %g = ds.fused_group(%x) : (tensor<?x32xf32>) -> (tensor<?x16xf32>) {
  ^bb0(%a: tensor<?x32xf32>):
    ds.yield %a : tensor<?x32xf32>
  }
  return
}

// -----

func.func @f(%x: tensor<?x32xf32>, %w: tensor<16xbf16>) {
  // expected-error @+1 {{expects a weight of shape [32], got [16]}}
  %y = ds.rms_norm %x, %w {eps = 1.0e-06 : f64} : (tensor<?x32xf32>, tensor<16xbf16>) -> tensor<?x32xf32>
  return
}

// -----

func.func @f(%ids: tensor<?xi32>, %t: tensor<100x32xbf16>) {
  // expected-error @+1 {{result row size 16 does not match the table row size 32}}
  %y = ds.embedding %ids, %t : (tensor<?xi32>, tensor<100x32xbf16>) -> tensor<?x16xf32>
  return
}

// -----

// expected-error @+1 {{expects positive num_layers, got 0}}
ds.kv_cache @kv {num_layers = 0 : i64, num_kv_heads = 2 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}

// -----

// expected-error @+1 {{source 'e1' of shape [4, 3] cannot be stacked into [2, 4, 2]}}
ds.weight @experts {sources = [#ds.source<name = "e0", file = "f", dtype = bf16, shape = [4, 2]>, #ds.source<name = "e1", file = "f", dtype = bf16, shape = [4, 3]>]} : tensor<2x4x2xbf16>

// -----

ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 1 : i64, k_dim = 8 : i64, v_dim = 8 : i64, dtype = bf16}
func.func @f(%x: tensor<?x8xf32>) {
  %g = ds.fused_group(%x) : (tensor<?x8xf32>) -> (tensor<?x8xf32>) {
  ^bb0(%a: tensor<?x8xf32>):
    // expected-error @+1 {{is not allowed inside ds.fused_group}}
    %o = ds.paged_attention %a {cache = @kv, layer = 0 : i64, num_heads = 1 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, v_head_dim = 8 : i64, scale = 0.5 : f64} : tensor<?x8xf32> -> tensor<?x8xf32>
    ds.yield %o : tensor<?x8xf32>
  }
  return
}

// -----

// expected-error @+1 {{slice_rank_divisor must be at least 1, got 0}}
ds.weight @w {sources = [#ds.source<name = "a", file = "f", dtype = bf16, shape = [32, 8], slice_axis = 0, slice_size = 16, slice_rank_stride = 16, slice_rank_divisor = 0>]} : tensor<16x8xbf16>

// -----

func.func @f(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{unknown communicator group "dp" (expected "tp")}}
  %s = ds.all_reduce %x {group = "dp"} : tensor<?x8xf32>
  return %s : tensor<?x8xf32>
}

// -----

func.func @f(%x: tensor<?x8xf32>) -> tensor<?x8xbf16> {
  // expected-error @+1 {{failed to verify that all of {x, result} have same type}}
  %s = "ds.all_reduce"(%x) {group = "tp"} : (tensor<?x8xf32>) -> tensor<?x8xbf16>
  return %s : tensor<?x8xbf16>
}

// -----

// The residual of an all-reduce has the type of x and the result (element type).
func.func @f(%x: tensor<?x8xf32>, %r: tensor<?x8xbf16>) -> tensor<?x8xf32> {
  // expected-error @+1 {{failed to verify that residual has the type of x and the result}}
  %s = "ds.all_reduce"(%x, %r) {group = "tp"} : (tensor<?x8xf32>, tensor<?x8xbf16>) -> tensor<?x8xf32>
  return %s : tensor<?x8xf32>
}

// -----

// ... and shape.
func.func @f(%x: tensor<?x8xf32>, %r: tensor<?x16xf32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{failed to verify that residual has the type of x and the result}}
  %s = "ds.all_reduce"(%x, %r) {group = "tp"} : (tensor<?x8xf32>, tensor<?x16xf32>) -> tensor<?x8xf32>
  return %s : tensor<?x8xf32>
}

// -----

func.func @f(%x: tensor<?x8xf32>) -> tensor<?x12xf32> {
  // expected-error @+1 {{result row size 12 is not a multiple of the input row size 8}}
  %g = ds.all_gather %x : tensor<?x8xf32> -> tensor<?x12xf32>
  return %g : tensor<?x12xf32>
}

// -----

func.func @f(%x: tensor<?x8xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{only gathers along the last axis (-1), got axis 0}}
  %g = ds.all_gather %x {axis = 0 : i64} : tensor<?x8xf32> -> tensor<?x16xf32>
  return %g : tensor<?x16xf32>
}

// -----

module attributes {ds.tp_size = 4 : i64} {
  func.func @f(%x: tensor<?x8xf32>) -> tensor<?x16xf32> {
    // expected-error @+1 {{result row size 16 is not ds.tp_size (4) times the input row size 8}}
    %g = ds.all_gather %x : tensor<?x8xf32> -> tensor<?x16xf32>
    return %g : tensor<?x16xf32>
  }
}

// -----

func.func @f(%x: tensor<?x8xf32>, %o: tensor<?x16xbf16>) -> tensor<?x8xf32> {
  // expected-error @+1 {{all non-scalar operands/results must have the same shape and base type}}
  %r = ds.add %x, %o : tensor<?x8xf32>, tensor<?x16xbf16> -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}

// -----

func.func @f(%x: tensor<?x8xf32>, %o: tensor<?x8xi32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{operand #1 must be ranked tensor of floating-point values}}
  %r = ds.add %x, %o : tensor<?x8xf32>, tensor<?x8xi32> -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}

// -----

func.func @f(%x: tensor<?x8xf32>, %w: tensor<8xbf16>) -> tensor<?x16xbf16> {
  // expected-error @+1 {{expects the result shape to equal the input shape [?, 8], got [?, 16]}}
  %y = ds.rms_norm %x, %w {eps = 1.0e-06 : f64} : (tensor<?x8xf32>, tensor<8xbf16>) -> tensor<?x16xbf16>
  return %y : tensor<?x16xbf16>
}
