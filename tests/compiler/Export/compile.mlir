// dscc compile end to end: the pipeline's IR (--emit=mlir), per-pass dumps,
// the plan read back by dsrt, metadata variants (chat_template.jinja, no
// generation_config.json), sm_90a plans with generated CUDA, and atomic
// output (a failed compile leaves an existing plan untouched).
// REQUIRES: dscc

// RUN: rm -rf %t && mkdir -p %t && %python %inputs/make_checkpoint.py %t/m
// RUN: %dscc compile %t/m --emit=mlir | FileCheck %s --check-prefix=IR
// IR: module attributes {ds.activation_dtype = f32, ds.arena_alignment = 16 : i64, ds.arena_bytes_per_token = {{[0-9]+}} : i64, ds.max_model_len = 256 : i64, ds.target = "cpu"}
// IR: ds.embedding {{.*}}ds.impl = "ref.embedding", ds.offsets = array<i64: {{[0-9]+}}>, ds.sizes = array<i64: 256>
// IR: ds.fused_group
// IR: ds.logits {{.*}}ds.impl = "ref.logits"

// RUN: %dscc compile %t/m --emit=mlir --mlir-print-debuginfo --print-ir-after-all -o %t/final.mlir 2>&1 | FileCheck %s --check-prefix=DUMP
// DUMP: IR Dump After DsFuseWeights (ds-fuse-weights)
// DUMP: IR Dump After DsPlanBuffers (ds-plan-buffers)
// RUN: FileCheck %s --check-prefix=IR < %t/final.mlir

// The plan of the compiled IR (printed with its locations, which name the
// buffers and kernels) equals the plan of a direct compile.
// RUN: %dscc compile %t/m -o %t/plan.dsplan
// RUN: %dscc export %t/final.mlir --model %t/m -o %t/plan2.dsplan
// RUN: cmp %t/plan.dsplan %t/plan2.dsplan
// Compiles are deterministic.
// RUN: %dscc compile %t/m -o %t/plan3.dsplan
// RUN: cmp %t/plan.dsplan %t/plan3.dsplan

// RUN: %if dsrt %{ %dsrt inspect %t/plan.dsplan | FileCheck %s --check-prefix=CPU %}
// CPU: target cpu, activation dtype f32
// CPU: tokenizer.json {{.*}}, chat template yes
// CPU: bos -1, eos [258], pad 256
// CPU: generation defaults: do_sample true, temperature 0.7, top_p 0.8, top_k 20, min_p 0, repetition_penalty 1.05, eos [258,256]
// CPU: kv cache: f32, page_size 16, layout NHD, 2 layers
// CPU: kernels:
// CPU: impl ref.linear op linear {quant="none"}
// CPU: fused impl interp
// CPU: kv_cache_write
// CPU: program:
// CPU: kv[0] =
// CPU: (%{{.*}}, kv[0])
// CPU: kv[1] =
// CPU: out.logits = logits(%final_norm, @lm_head.weight, in.logit_rows)
// RUN: %if dsrt %{ %dsrt generate %t/plan.dsplan --prompt-ids 5,6,7 --max-new-tokens 3 --temperature 0 --ignore-eos --json | FileCheck %s --check-prefix=GEN %}
// GEN: "output_ids":[{{[0-9]+}},{{[0-9]+}},{{[0-9]+}}]

// Metadata: the chat template from chat_template.jinja; without
// generation_config.json the defaults apply and eos comes from config.json.
// RUN: %python %inputs/make_checkpoint.py %t/meta --tied --chat-template-file --no-generation-config
// RUN: %dscc compile %t/meta -o %t/meta.dsplan
// RUN: %if flatc %{ flatc --json --strict-json --raw-binary -o %t %plan_fbs -- %t/meta.dsplan %}
// RUN: %if flatc %{ FileCheck %s --check-prefix=META --input-file=%t/meta.json %}
// META:      "tie_word_embeddings": true,
// META:      "chat_template": "{% for message in messages %}{{.*}}<|im_start|>assistant\\n' }}{% endif %}",
// META:      "generation": {
// META-NEXT:   "eos_token_ids": [
// META-NEXT:     258
// META-NEXT:   ],
// META-NEXT:   "generation_config_json": ""
// META-NEXT: },
// META-NOT: lm_head

// A failed compile does not touch an existing plan.
// RUN: cp %t/plan.dsplan %t/keep.dsplan
// RUN: rm %t/meta/tokenizer.json
// RUN: not %dscc compile %t/meta -o %t/keep.dsplan
// RUN: cmp %t/plan.dsplan %t/keep.dsplan

// GPU targets: bf16 activations, cuBLASLt/CUDA kernels, NVRTC-compiled groups.
// RUN: %if nvrtc %{ %dscc compile %t/m --target sm_90a -o %t/sm90.dsplan %}
// RUN: %if nvrtc && dsrt %{ %dsrt inspect %t/sm90.dsplan | FileCheck %s --check-prefix=SM90 %}
// SM90: target sm_90a, activation dtype bf16
// SM90: kv cache: bf16
// SM90: impl cublaslt.gemm op linear
// SM90: fused impl nvrtc
// SM90: generated: entry {{.*}}, arch sm_90a, source {{[0-9]+}} chars, binary {{[1-9][0-9]*}} bytes
// SM90: mlir: {{[0-9]+}} chars
