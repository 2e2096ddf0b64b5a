// The attention rope-prologue mark in the plan: the paged attentions of a GPU
// import carry attr rope_prologue = 1 and the qkv row their rope group reads
// is live through the attention's instruction (last_instr), where a decode
// attention kernel may read it instead of the group. The sm_90a IR is
// exported with ds.target set back to "cpu" (no NVRTC needed; dsrt inspect
// only reads the plan). Without the mark (removed with sed) the qkv row dies
// at the group. With NVRTC, the full sm_90a pipeline (dscc compile) marks
// the same attentions.
// REQUIRES: dscc

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %inputs/make_checkpoint.py %t/qwen2 --layers 2
// RUN: %dscc compile %t/qwen2 --target sm_90a --emit=mlir-import --mlir-print-debuginfo -o %t/gpu.import.mlir
// RUN: ds-opt %t/gpu.import.mlir --mlir-print-debuginfo --canonicalize --ds-fuse-weights --ds-fuse-residual-add \
// RUN:     --ds-fuse-elementwise --canonicalize --ds-select-kernels --ds-gemv-prologue --ds-gemv-epilogue \
// RUN:     --ds-attention-rope --ds-plan-buffers \
// RUN:   | sed -e 's/ds.target = "sm_90a"/ds.target = "cpu"/' > %t/gpu.mlir
// RUN: FileCheck %s --check-prefix=IR --input-file=%t/gpu.mlir
// RUN: %dscc export %t/gpu.mlir --model %t/qwen2 -o %t/gpu.dsplan
// RUN: %if dsrt %{ %dsrt inspect %t/gpu.dsplan | FileCheck %s --check-prefix=INSPECT %}
// RUN: sed -e 's/, ds.rope_prologue//' %t/gpu.mlir > %t/nomark.mlir
// RUN: %dscc export %t/nomark.mlir --model %t/qwen2 -o %t/nomark.dsplan
// RUN: %if dsrt %{ %dsrt inspect %t/nomark.dsplan | FileCheck %s --check-prefix=NOMARK %}
// RUN: %if nvrtc %{ %dscc compile %t/qwen2 --target sm_90a --emit=mlir | FileCheck %s --check-prefix=PIPE %}

// Both layers' attentions are marked, each after its rope + KV-write group.
// IR: ds.fused_group({{.*}} : (tensor<?x128xbf16>, tensor<?xi32>) -> tensor<?x64xbf16> {
// IR-NEXT: ^bb0
// IR-NEXT: ds.slice {{.*}}offset = 0 : i64, size = 64 : i64
// IR-NEXT: ds.slice {{.*}}offset = 64 : i64, size = 32 : i64
// IR-NEXT: ds.slice {{.*}}offset = 96 : i64, size = 32 : i64
// IR-NEXT: ds.rope {{.*}}num_heads = 4 : i64
// IR-NEXT: ds.rope {{.*}}num_heads = 2 : i64
// IR-NEXT: ds.kv_cache_write {{.*}}layer = 0 : i64
// IR: ds.paged_attention {{.*}}ds.rope_prologue{{.*}}layer = 0 : i64
// IR: ds.paged_attention {{.*}}ds.rope_prologue{{.*}}layer = 1 : i64
// PIPE-COUNT-2: ds.paged_attention {{.*}}ds.rope_prologue
// PIPE-NOT: ds.rope_prologue

// INSPECT: [2] l0.q_proj+l0.k_proj+l0.v_proj: bf16[128] at {{[0-9]+}}+256 per token, live [2, 4]
// INSPECT-NEXT: [3] l0.q_rope: bf16[64] at {{[0-9]+}}+128 per token, live [3, 4]
// INSPECT: [12] l1.q_proj+l1.k_proj+l1.v_proj: bf16[128] at {{[0-9]+}}+256 per token, live [11, 13]
// INSPECT-NEXT: [13] l1.q_rope: bf16[64] at {{[0-9]+}}+128 per token, live [12, 13]
// INSPECT: l0.attn: builtin impl cuda.paged_attention op paged_attention {{{.*}}rope_prologue=1{{.*}}}
// INSPECT: l1.attn: builtin impl cuda.paged_attention op paged_attention {{{.*}}rope_prologue=1{{.*}}}
// INSPECT: 3: %l0.q_rope, kv[0] = {{.*}}(%l0.q_proj+l0.k_proj+l0.v_proj, in.positions)
// INSPECT-NEXT: 4: %l0.attn = l0.attn(%l0.q_rope, kv[0])

// NOMARK: [2] l0.q_proj+l0.k_proj+l0.v_proj: bf16[128] at {{[0-9]+}}+256 per token, live [2, 3]
// NOMARK: [12] l1.q_proj+l1.k_proj+l1.v_proj: bf16[128] at {{[0-9]+}}+256 per token, live [11, 12]
// NOMARK-NOT: rope_prologue
