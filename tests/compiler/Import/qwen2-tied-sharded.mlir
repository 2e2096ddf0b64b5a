// Tied embeddings: the logits read model.embed_tokens.weight; a stray
// lm_head.weight in the checkpoint is ignored with a warning. Sharded
// checkpoints: each source names the shard that holds the tensor.
// REQUIRES: dscc

// RUN: rm -rf %t && %python %inputs/make_checkpoint.py %t/m --tied --sharded
// RUN: %dscc compile %t/m --emit=mlir-import -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=QUIET --allow-empty
// RUN: FileCheck %s < %t/out.mlir
// QUIET-NOT: warning

// CHECK-DAG: ds.weight @model.embed_tokens.weight {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model-00001-of-00002.safetensors", dtype = bf16, shape = [320, 64]>]}
// CHECK-DAG: ds.weight @model.norm.weight {sources = [#ds.source<name = "model.norm.weight", file = "model-00002-of-00002.safetensors", dtype = bf16, shape = [64]>]}
// CHECK-NOT: lm_head
// CHECK: %[[EMB:.*]] = ds.get_weight @model.embed_tokens.weight
// CHECK: ds.embedding %{{.*}}, %[[EMB]]
// CHECK: %[[LM:.*]] = ds.get_weight @model.embed_tokens.weight
// CHECK: ds.logits %{{.*}}, %[[LM]], %{{.*}} : (tensor<?x64xf32>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32>

// RUN: %python %inputs/make_checkpoint.py %t/extra --tied --lm-head-when-tied --extra model.rotary_emb.inv_freq --extra model.vision.proj
// RUN: %dscc compile %t/extra --emit=mlir-import -o %t/extra.mlir 2>&1 | FileCheck %s --check-prefix=WARN
// WARN-DAG: dscc: warning: ignoring unused checkpoint tensor 'lm_head.weight'
// WARN-DAG: dscc: warning: ignoring unused checkpoint tensor 'model.vision.proj'
// WARN-NOT: inv_freq
