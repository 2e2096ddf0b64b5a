// The all-reduce norm-epilogue mark in the plan: under tensor parallelism
// the residual all-reduces of a GPU import whose result feeds a pure-RMSNorm
// group carry attr norm_epilogue = 1, and the group's result is live from the
// all-reduce's instruction (first_instr), where the all-reduce kernel may
// write it. The sm_90a IR is exported with ds.target set back to "cpu" (no
// NVRTC needed; dsrt inspect only reads the plan). Without the mark (removed
// with sed) the norm results are live from their groups.
// Then a CPU plan whose residual all-reduces carry the mark (added with sed:
// the pass wants a bf16 norm result, CPU activations are f32; min-ops=1 makes
// the norms groups) still matches the float64 reference: the CPU executor
// ignores `norm_epilogue` and runs every group.
// With NVRTC, the full sm_90a pipeline (dscc compile) marks the same
// all-reduces.
// REQUIRES: dscc

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %inputs/make_checkpoint.py %t/qwen2 --layers 2
// RUN: %dscc compile %t/qwen2 --target sm_90a --emit=mlir-import --mlir-print-debuginfo -o %t/gpu.import.mlir
// RUN: ds-opt %t/gpu.import.mlir --mlir-print-debuginfo --canonicalize --ds-shard=tp=2 --ds-fuse-weights \
// RUN:     --ds-fuse-residual-add --ds-fuse-elementwise --canonicalize --ds-select-kernels --ds-gemv-prologue \
// RUN:     --ds-gemv-epilogue --ds-attention-rope --ds-all-reduce-norm --ds-plan-buffers \
// RUN:   | sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' > %t/gpu.mlir
// RUN: FileCheck %s --check-prefix=IR --input-file=%t/gpu.mlir
// RUN: %dscc export %t/gpu.mlir --model %t/qwen2 -o %t/gpu.dsplan
// RUN: %if dsrt %{ %dsrt inspect %t/gpu.dsplan | FileCheck %s --check-prefix=INSPECT %}
// RUN: sed -e 's/, ds.norm_epilogue//' %t/gpu.mlir > %t/nomark.mlir
// RUN: %dscc export %t/nomark.mlir --model %t/qwen2 -o %t/nomark.dsplan
// RUN: %if dsrt %{ %dsrt inspect %t/nomark.dsplan | FileCheck %s --check-prefix=NOMARK %}
// RUN: %if nvrtc %{ %dscc compile %t/qwen2 --target sm_90a --tp 2 --emit=mlir | FileCheck %s --check-prefix=PIPE %}

// RUN: %dscc compile %t/qwen2 --emit=mlir-import --mlir-print-debuginfo -o %t/cpu.import.mlir
// RUN: ds-opt %t/cpu.import.mlir --mlir-print-debuginfo --canonicalize --ds-shard=tp=2 --ds-fuse-weights \
// RUN:     --ds-fuse-residual-add --ds-fuse-elementwise=min-ops=1 --canonicalize --ds-select-kernels=target=cpu \
// RUN:   | sed -e '/ residual /s/{ds.impl = "ref.all_reduce"}/{ds.impl = "ref.all_reduce", ds.norm_epilogue}/' \
// RUN:   | ds-opt --mlir-print-debuginfo --ds-plan-buffers > %t/cpu.mlir
// RUN: %dscc export %t/cpu.mlir --model %t/qwen2 -o %t/cpu.dsplan
// RUN: %if dsrt %{ %dsrt inspect %t/cpu.dsplan | FileCheck %s --check-prefix=CPU %}
// RUN: %if dsrt %{ %dsrt score %t/cpu.dsplan --tp 2 --ids 1,2,3,40,50,60 --top-k 4 --json | %python %inputs/reference_forward.py %t/qwen2 --ids 1,2,3,40,50,60 | FileCheck %s --check-prefix=REF %}

// The embedding's all-reduce and layer 0's o_proj all-reduce have no
// residual (the bf16 embedding row is added to the f32 sum in the group after
// it): not marked. The three residual all-reduces are, each before its norm
// group.
// IR: ds.all_reduce %{{[0-9]+}} {ds.impl = "nccl.all_reduce", ds.offsets = {{.*}} : tensor<?x64xbf16>
// IR: ds.all_reduce %{{[0-9]+}} {ds.impl = "nccl.all_reduce", ds.offsets = {{.*}} : tensor<?x64xf32>
// IR: %[[H0:[0-9]+]] = ds.all_reduce %{{[0-9]+}} residual %{{.*}}ds.norm_epilogue{{.*}} : tensor<?x64xf32>
// IR-NEXT: ds.get_weight @model.layers.1.input_layernorm.weight
// IR-NEXT: ds.fused_group(%[[H0]], %{{[0-9]+}}) {{.*}} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xbf16> {
// IR-NEXT: ^bb0
// IR-NEXT: ds.rms_norm
// IR: %[[H1:[0-9]+]] = ds.all_reduce %{{[0-9]+}} residual %[[H0]] {{.*}}ds.norm_epilogue
// IR-NEXT: ds.get_weight @model.layers.1.post_attention_layernorm.weight
// IR-NEXT: ds.fused_group(%[[H1]],
// IR: %[[H2:[0-9]+]] = ds.all_reduce %{{[0-9]+}} residual %[[H1]] {{.*}}ds.norm_epilogue
// IR-NEXT: ds.get_weight @model.norm.weight
// IR-NEXT: ds.fused_group(%[[H2]],
// IR-NOT: ds.norm_epilogue
// PIPE-COUNT-3: ds.all_reduce {{.*}} residual {{.*}}ds.norm_epilogue
// PIPE-NOT: ds.norm_epilogue

// INSPECT: [13] l0.down_proj.all_reduce+l0.mlp_residual: f32[64] at {{[0-9]+}}+256 per token, live [12, 18]
// INSPECT-NEXT: [14] l1.input_norm: bf16[64] at {{[0-9]+}}+128 per token, live [12, 14]
// INSPECT: [19] l1.o_proj.all_reduce+l1.attn_residual: f32[64] at {{[0-9]+}}+256 per token, live [18, 23]
// INSPECT-NEXT: [20] l1.post_attn_norm: bf16[64] at {{[0-9]+}}+128 per token, live [18, 20]
// INSPECT: [24] l1.down_proj.all_reduce+l1.mlp_residual: f32[64] at {{[0-9]+}}+256 per token, live [23, 24]
// INSPECT-NEXT: [25] final_norm: bf16[64] at {{[0-9]+}}+128 per token, live [23, 25]
// INSPECT: [1] all_reduce: builtin impl nccl.all_reduce op all_reduce {group="tp"}
// INSPECT: [[AR:all_reduce.[0-9]+]]: builtin impl nccl.all_reduce op all_reduce {group="tp", norm_epilogue=1, residual=1}
// INSPECT: 7: %l0.o_proj.all_reduce = all_reduce(%l0.o_proj)
// INSPECT: 12: %l0.down_proj.all_reduce+l0.mlp_residual = [[AR]](%l0.down_proj, %l0.attn_residual)
// INSPECT-NEXT: 13: %l1.input_norm = {{.*}}(%l0.down_proj.all_reduce+l0.mlp_residual, @model.layers.1.input_layernorm.weight)
// INSPECT: 18: %l1.o_proj.all_reduce+l1.attn_residual = [[AR]](%l1.o_proj, %l0.down_proj.all_reduce+l0.mlp_residual)
// INSPECT: 23: %l1.down_proj.all_reduce+l1.mlp_residual = [[AR]](%l1.down_proj, %l1.o_proj.all_reduce+l1.attn_residual)
// INSPECT-NEXT: 24: %final_norm = {{.*}}(%l1.down_proj.all_reduce+l1.mlp_residual, @model.norm.weight)

// NOMARK: [14] l1.input_norm: bf16[64] at {{[0-9]+}}+128 per token, live [13, 14]
// NOMARK: [20] l1.post_attn_norm: bf16[64] at {{[0-9]+}}+128 per token, live [19, 20]
// NOMARK: [25] final_norm: bf16[64] at {{[0-9]+}}+128 per token, live [24, 25]
// NOMARK-NOT: norm_epilogue

// CPU: l0.post_attn_norm: f32[64] at {{[0-9]+}}+256 per token, live [8, 10]
// CPU: op all_reduce {group="tp", norm_epilogue=1, residual=1}
// REF-NOT: MISMATCH
// REF: reference match
