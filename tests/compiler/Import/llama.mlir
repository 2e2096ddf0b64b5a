// LlamaForCausalLM: no q/k/v bias unless attention_bias (which also adds an
// o_proj bias); an explicit head_dim different from hidden/heads; linear rope
// scaling.
// REQUIRES: dscc

// RUN: rm -rf %t && %python %inputs/make_checkpoint.py %t/m --arch LlamaForCausalLM --head-dim 32 --explicit-head-dim --rope-scaling linear
// RUN: %dscc compile %t/m --emit=mlir-import | FileCheck %s
// CHECK-NOT: bias
// CHECK: %[[Q:.*]] = ds.linear %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<128x64xbf16>) -> tensor<?x128xf32>
// CHECK: ds.linear %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<64x64xbf16>) -> tensor<?x64xf32>
// CHECK: ds.rope %[[Q]], %{{.*}} {head_dim = 32 : i64, num_heads = 4 : i64, rope = #ds.rope<rotary_dim = 32, scaling = "linear", factor = 2.000000e+00>}
// CHECK: ds.paged_attention %{{.*}} {cache = @kv, head_dim = 32 : i64, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 0.17677669529663687 : f64, v_head_dim = 32 : i64} : tensor<?x128xf32> -> tensor<?x128xf32>
// CHECK: ds.linear %{{.*}}, %{{.*}} : (tensor<?x128xf32>, tensor<64x128xbf16>) -> tensor<?x64xf32>

// RUN: %python %inputs/make_checkpoint.py %t/bias --arch LlamaForCausalLM --attention-bias
// RUN: %dscc compile %t/bias --emit=mlir-import | FileCheck %s --check-prefix=BIAS
// BIAS: %[[QB:.*]] = ds.get_weight @model.layers.0.self_attn.q_proj.bias
// BIAS: ds.linear %{{.*}}, %{{.*}}, %[[QB]]
// BIAS: %[[OB:.*]] = ds.get_weight @model.layers.0.self_attn.o_proj.bias : tensor<64xbf16>
// BIAS: ds.linear %{{.*}}, %{{.*}}, %[[OB]]
