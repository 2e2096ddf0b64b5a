// --target sm_* imports bf16 activations (weights stay in the checkpoint
// dtype); --max-model-len overrides max_position_embeddings.
// REQUIRES: dscc

// RUN: rm -rf %t && %python %inputs/make_checkpoint.py %t/m --layers 1 --dtype F32
// RUN: %dscc compile %t/m --emit=mlir-import --target sm_90a --max-model-len 128 | FileCheck %s
// CHECK: module attributes {ds.activation_dtype = bf16, ds.max_model_len = 128 : i64, ds.target = "sm_90a"}
// CHECK: ds.kv_cache @kv {dtype = bf16
// CHECK: ds.weight @model.embed_tokens.weight {{.*}}dtype = f32{{.*}} : tensor<320x64xf32>
// CHECK: ds.embedding %{{.*}}, %{{.*}} : (tensor<?xi32>, tensor<320x64xf32>) -> tensor<?x64xbf16>
// CHECK: ds.logits {{.*}} -> tensor<?x320xf32>

// A context longer than max_position_embeddings (without rope scaling) is
// allowed with a warning.
// RUN: %dscc compile %t/m --emit=mlir-import --max-model-len 512 2>&1 >/dev/null | FileCheck %s --check-prefix=LONG
// LONG: dscc: warning: --max-model-len 512 exceeds max_position_embeddings 256
// RUN: %dscc compile --help | FileCheck %s --check-prefix=HELP
// HELP: --target
// HELP: --max-model-len
// HELP: --emit
