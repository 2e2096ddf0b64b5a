// Import of an untied Qwen2 checkpoint (2 layers, GQA 4:2, head_dim 16):
// weights keep their checkpoint dtype, activations are f32 on the cpu target,
// one layer is rms_norm, q/k/v linears with bias, rope, kv_cache_write before
// paged_attention, o_proj without bias, residual adds and the SiLU-gated MLP.
// REQUIRES: dscc

// RUN: rm -rf %t && %python %inputs/make_checkpoint.py %t/m
// RUN: %dscc compile %t/m --emit=mlir-import | FileCheck %s

// CHECK: module attributes {ds.activation_dtype = f32, ds.max_model_len = 256 : i64, ds.target = "cpu"}
// CHECK-DAG: ds.kv_cache @kv {dtype = f32, k_dim = 16 : i64, num_kv_heads = 2 : i64, num_layers = 2 : i64, v_dim = 16 : i64}
// CHECK-DAG: ds.weight @model.embed_tokens.weight {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
// CHECK-DAG: ds.weight @model.layers.1.self_attn.k_proj.bias {sources = [#ds.source<name = "model.layers.1.self_attn.k_proj.bias", file = "model.safetensors", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
// CHECK-DAG: ds.weight @model.layers.1.mlp.down_proj.weight {{.*}} : tensor<64x128xbf16>
// CHECK-DAG: ds.weight @lm_head.weight {sources = [#ds.source<name = "lm_head.weight", {{.*}}shape = [320, 64]>]} : tensor<320x64xbf16>
// CHECK-NOT: ds.weight @model.layers.0.self_attn.o_proj.bias

// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[TOK:[a-z0-9]+]]: tensor<?xi32>, %[[POS:[a-z0-9]+]]: tensor<?xi32>, %[[ROWS:[a-z0-9]+]]: tensor<?xi32>) -> tensor<?x320xf32>
// CHECK: %[[EMB_W:.*]] = ds.get_weight @model.embed_tokens.weight : tensor<320x64xbf16>
// CHECK: %[[X0:.*]] = ds.embedding %[[TOK]], %[[EMB_W]] : (tensor<?xi32>, tensor<320x64xbf16>) -> tensor<?x64xf32>
// CHECK: %[[LN:.*]] = ds.get_weight @model.layers.0.input_layernorm.weight
// CHECK: %[[H:.*]] = ds.rms_norm %[[X0]], %[[LN]] {eps = 9.9999999999999995E-7 : f64}
// CHECK: %[[QW:.*]] = ds.get_weight @model.layers.0.self_attn.q_proj.weight : tensor<64x64xbf16>
// CHECK: %[[QB:.*]] = ds.get_weight @model.layers.0.self_attn.q_proj.bias : tensor<64xbf16>
// CHECK: %[[Q:.*]] = ds.linear %[[H]], %[[QW]], %[[QB]] : {{.*}} -> tensor<?x64xf32>
// CHECK: %[[K:.*]] = ds.linear %[[H]], %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<32x64xbf16>, tensor<32xbf16>) -> tensor<?x32xf32>
// CHECK: %[[V:.*]] = ds.linear %[[H]], %{{.*}}, %{{.*}} : {{.*}} -> tensor<?x32xf32>
// CHECK: %[[QR:.*]] = ds.rope %[[Q]], %[[POS]] {head_dim = 16 : i64, num_heads = 4 : i64, rope = #ds.rope<rotary_dim = 16>}
// CHECK: %[[KR:.*]] = ds.rope %[[K]], %[[POS]] {head_dim = 16 : i64, num_heads = 2 : i64, rope = #ds.rope<rotary_dim = 16>}
// CHECK: ds.kv_cache_write %[[KR]], %[[V]] {cache = @kv, layer = 0 : i64}
// CHECK: %[[A:.*]] = ds.paged_attention %[[QR]] {cache = @kv, head_dim = 16 : i64, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 2.500000e-01 : f64, v_head_dim = 16 : i64} : tensor<?x64xf32> -> tensor<?x64xf32>
// CHECK: %[[OW:.*]] = ds.get_weight @model.layers.0.self_attn.o_proj.weight
// CHECK: %[[O:.*]] = ds.linear %[[A]], %[[OW]] : (tensor<?x64xf32>, tensor<64x64xbf16>) -> tensor<?x64xf32>
// CHECK: %[[X1:.*]] = ds.add %[[X0]], %[[O]] : tensor<?x64xf32>
// CHECK: %[[H2:.*]] = ds.rms_norm %[[X1]], %{{.*}}
// CHECK: %[[G:.*]] = ds.linear %[[H2]], %{{.*}} : (tensor<?x64xf32>, tensor<128x64xbf16>) -> tensor<?x128xf32>
// CHECK: %[[U:.*]] = ds.linear %[[H2]], %{{.*}} : (tensor<?x64xf32>, tensor<128x64xbf16>) -> tensor<?x128xf32>
// CHECK: %[[S:.*]] = ds.silu %[[G]] : tensor<?x128xf32>
// CHECK: %[[M:.*]] = ds.mul %[[S]], %[[U]] : tensor<?x128xf32>
// CHECK: %[[D:.*]] = ds.linear %[[M]], %{{.*}} : (tensor<?x128xf32>, tensor<64x128xbf16>) -> tensor<?x64xf32>
// CHECK: %[[X2:.*]] = ds.add %[[X1]], %[[D]] : tensor<?x64xf32>
// CHECK: ds.rms_norm %[[X2]], %{{.*}}
// CHECK: ds.kv_cache_write %{{.*}}, %{{.*}} {cache = @kv, layer = 1 : i64}
// CHECK: ds.paged_attention %{{.*}} {cache = @kv, {{.*}}layer = 1 : i64
// CHECK: %[[NW:.*]] = ds.get_weight @model.norm.weight
// CHECK: %[[XF:.*]] = ds.rms_norm %{{.*}}, %[[NW]]
// CHECK: %[[LM:.*]] = ds.get_weight @lm_head.weight : tensor<320x64xbf16>
// CHECK: %[[LOGITS:.*]] = ds.logits %[[XF]], %[[LM]], %[[ROWS]] : (tensor<?x64xf32>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32>
// CHECK: return %[[LOGITS]] : tensor<?x320xf32>
