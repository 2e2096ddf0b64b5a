// The SwiGLU GEMV-epilogue mark in the plan: the gate_up linears of a GPU
// import carry attr epilogue = "swiglu" and the SiLU*mul group's result is
// live from the linear's instruction (first_instr), where a decode GEMV may
// write it. The sm_90a IR is exported with ds.target set back to "cpu" (no
// NVRTC needed; dsrt inspect only reads the plan).
// Then a CPU plan whose gate_up linears carry the mark (added with sed: the
// pass marks bf16 results only, CPU activations are f32) still matches the
// float64 reference: the CPU executor ignores `epilogue` and runs the group.
// With NVRTC, the full sm_90a pipeline (dscc compile) marks the same linears.
// REQUIRES: dscc

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %inputs/make_checkpoint.py %t/qwen2 --layers 2
// RUN: %dscc compile %t/qwen2 --target sm_90a --emit=mlir-import --mlir-print-debuginfo -o %t/gpu.import.mlir
// RUN: ds-opt %t/gpu.import.mlir --mlir-print-debuginfo --canonicalize --ds-fuse-weights --ds-fuse-residual-add \
// RUN:     --ds-fuse-elementwise --canonicalize --ds-select-kernels --ds-gemv-prologue --ds-gemv-epilogue --ds-plan-buffers \
// RUN:   | sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' > %t/gpu.mlir
// RUN: FileCheck %s --check-prefix=IR --input-file=%t/gpu.mlir
// RUN: %dscc export %t/gpu.mlir --model %t/qwen2 -o %t/gpu.dsplan
// RUN: %if dsrt %{ %dsrt inspect %t/gpu.dsplan | FileCheck %s --check-prefix=INSPECT %}
// RUN: %if nvrtc %{ %dscc compile %t/qwen2 --target sm_90a --emit=mlir | FileCheck %s --check-prefix=PIPE %}

// RUN: %dscc compile %t/qwen2 --emit=mlir-import --mlir-print-debuginfo -o %t/cpu.import.mlir
// RUN: sed -e 's/ds.target = "cpu"/ds.target = "sm_90a"/' %t/cpu.import.mlir \
// RUN:   | ds-opt --mlir-print-debuginfo --canonicalize --ds-fuse-weights --ds-fuse-residual-add --ds-fuse-elementwise \
// RUN:       --canonicalize --ds-select-kernels=target=cpu \
// RUN:   | sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' \
// RUN:         -e '/-> tensor<?x256xf32>/s/{ds.impl = "ref.linear"/{ds.epilogue = "swiglu", ds.impl = "ref.linear"/' \
// RUN:   | ds-opt --mlir-print-debuginfo --ds-plan-buffers > %t/cpu.mlir
// RUN: %dscc export %t/cpu.mlir --model %t/qwen2 -o %t/cpu.dsplan
// RUN: %if dsrt %{ %dsrt inspect %t/cpu.dsplan | FileCheck %s --check-prefix=CPU %}
// RUN: %if dsrt %{ %dsrt score %t/cpu.dsplan --ids 1,2,3,40,50,60 --top-k 4 --json | %python %inputs/reference_forward.py %t/qwen2 --ids 1,2,3,40,50,60 | FileCheck %s --check-prefix=REF %}

// Both layers' gate_up linears are marked (layer 1's also has the RMSNorm
// prologue), nothing else is.
// IR: ds.linear {{.*}}ds.epilogue = "swiglu"{{.*}} -> tensor<?x256xbf16>
// IR-NEXT: ds.fused_group
// IR-NEXT: ^bb0
// IR-NEXT: ds.slice {{.*}}offset = 0 : i64, size = 128 : i64
// IR-NEXT: ds.slice {{.*}}offset = 128 : i64, size = 128 : i64
// IR-NEXT: ds.silu
// IR-NEXT: ds.mul
// IR: ds.linear {{.*}}ds.epilogue = "swiglu"{{.*}}ds.prologue = "rms_norm"{{.*}} -> tensor<?x256xbf16>
// IR-NOT: ds.epilogue
// PIPE-COUNT-2: ds.linear {{.*}}ds.epilogue = "swiglu"{{.*}} -> tensor<?x256xbf16>
// PIPE-NOT: ds.epilogue

// INSPECT: [8] l0.gate_proj+l0.up_proj: bf16[256] at {{[0-9]+}}+512 per token, live [7, 8]
// INSPECT-NEXT: [9] l0.mlp_mul: bf16[128] at {{[0-9]+}}+256 per token, live [7, 9]
// INSPECT: [17] l1.gate_proj+l1.up_proj: bf16[256] at {{[0-9]+}}+512 per token, live [16, 17]
// INSPECT-NEXT: [18] l1.mlp_mul: bf16[128] at {{[0-9]+}}+256 per token, live [16, 18]
// INSPECT: l0.gate_proj+l0.up_proj: builtin impl cublaslt.gemm op linear {epilogue="swiglu", quant="none"}
// INSPECT: l1.gate_proj+l1.up_proj: builtin impl cublaslt.gemm op linear {epilogue="swiglu", prologue="rms_norm", quant="none"}
// INSPECT: 7: %l0.gate_proj+l0.up_proj = l0.gate_proj+l0.up_proj(%l0.post_attn_norm, @model.layers.0.mlp.gate_up_proj.weight)
// INSPECT-NEXT: 8: %l0.mlp_mul = {{.*}}(%l0.gate_proj+l0.up_proj)

// CPU: l0.mlp_mul: f32[128] at {{[0-9]+}}+512 per token, live [7, 9]
// CPU: op linear {epilogue="swiglu", quant="none"}
// REF-NOT: MISMATCH
// REF: reference match
