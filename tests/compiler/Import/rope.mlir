// rope: YaRN parameters, from transformers-4 "rope_scaling" and from the
// transformers-5 "rope_parameters" spelling (rope_theta inside), import to the
// same #ds.rope.
// REQUIRES: dscc

// RUN: rm -rf %t && %python %inputs/make_checkpoint.py %t/v4 --rope-scaling yarn --max-pos 1024
// RUN: %dscc compile %t/v4 --emit=mlir-import | FileCheck %s
// RUN: %python %inputs/make_checkpoint.py %t/v5 --rope-scaling yarn --max-pos 1024 --rope-parameters
// RUN: %dscc compile %t/v5 --emit=mlir-import | FileCheck %s
// CHECK: ds.max_model_len = 1024 : i64
// CHECK: ds.rope {{.*}}rope = #ds.rope<rotary_dim = 16, scaling = "yarn", factor = 4.000000e+00, original_max_position = 256>}

// RUN: sed -i 's/"rope_theta": 10000.0/"rope_theta": 1000000.0/' %t/v5/config.json
// RUN: %dscc compile %t/v5 --emit=mlir-import | FileCheck %s --check-prefix=THETA
// THETA: #ds.rope<theta = 1.000000e+06, rotary_dim = 16, scaling = "yarn"
