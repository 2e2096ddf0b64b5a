// dscc --load-format dummy: a model directory with config.json (and
// optionally tokenizer files) but no safetensors compiles into the same plan
// that the real checkpoint gives: every tensor header (name, HF shape, dtype
// from torch_dtype / dtype, bf16 by default, file model.safetensors) is
// synthesized from the config, q/k/v biases for Qwen2, no lm_head when tied.
// Without the flag a missing checkpoint is an error that suggests it.
// REQUIRES: dscc

// Untied Qwen2 (q/k/v biases): the plan equals the checkpoint's, byte for byte.
// RUN: rm -rf %t && mkdir -p %t/w
// RUN: %python %inputs/make_checkpoint.py %t/q
// RUN: %dscc compile %t/q -o %t/q-real.dsplan
// RUN: %dscc compile %t/q --emit=mlir-import -o %t/q-real.mlir
// RUN: mv %t/q/model.safetensors %t/w/
// RUN: not %dscc compile %t/q -o %t/none.dsplan 2>&1 | FileCheck %s --check-prefix=NOCKPT
// NOCKPT: dscc: error: checkpoint directory {{.*}}.tmp/{{[qn]}} has neither model.safetensors.index.json nor model.safetensors (to compile from config.json alone, with random weights at run time, pass --load-format dummy)
// RUN: test ! -e %t/none.dsplan
// RUN: %dscc compile %t/q --load-format dummy -o %t/q-dummy.dsplan
// RUN: cmp %t/q-real.dsplan %t/q-dummy.dsplan
// RUN: %dscc compile %t/q --load-format dummy --emit=mlir-import -o %t/q-dummy.mlir
// RUN: diff %t/q-real.mlir %t/q-dummy.mlir
// RUN: FileCheck %s --check-prefix=QWEN < %t/q-dummy.mlir
// QWEN-DAG: ds.weight @model.embed_tokens.weight {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
// QWEN-DAG: ds.weight @model.layers.1.self_attn.v_proj.bias {sources = [#ds.source<name = "model.layers.1.self_attn.v_proj.bias", file = "model.safetensors", dtype = bf16, shape = [32]>]} : tensor<32xbf16>
// QWEN-DAG: ds.weight @lm_head.weight {sources = [#ds.source<name = "lm_head.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]}
// QWEN-NOT: o_proj.bias

// The dummy plan runs on the real weights through dsrt --model-path.
// RUN: %if dsrt %{ %dsrt score %t/q-real.dsplan --model-path %t/w --ids 1,2,3,4 --top-k 3 --json > %t/real.json %}
// RUN: %if dsrt %{ %dsrt score %t/q-dummy.dsplan --model-path %t/w --ids 1,2,3,4 --top-k 3 --json > %t/dummy.json %}
// RUN: %if dsrt %{ diff %t/real.json %t/dummy.json %}
// dsrt score --logits-out writes every position's full logits (f32 .npy) and
// leaves the JSON as it was.
// RUN: %if dsrt %{ %dsrt score %t/q-dummy.dsplan --model-path %t/w --ids 1,2,3,4 --top-k 3 --json --logits-out %t/logits.npy > %t/with-logits.json %}
// RUN: %if dsrt %{ diff %t/real.json %t/with-logits.json %}
// RUN: %if dsrt %{ %python %S/Inputs/check_logits_npy.py %t/logits.npy %t/real.json | FileCheck %s --check-prefix=NPY %}
// NPY: ok: 4 x 320 logits agree with the score JSON
// RUN: %if dsrt %{ not %dsrt score %t/q-dummy.dsplan --model-path %t/w --ids 1,2 --logits-out %t/no/such/dir/l.npy 2>&1 | FileCheck %s --check-prefix=NPYERR %}
// NPYERR: --logits-out {{.*}}no/such/dir/l.npy

// --load-format dummy ignores a checkpoint that is present.
// RUN: cp %t/w/model.safetensors %t/q/
// RUN: %dscc compile %t/q --load-format dummy -o %t/q-dummy2.dsplan
// RUN: cmp %t/q-real.dsplan %t/q-dummy2.dsplan

// Tied Qwen2 (no lm_head tensor) and Llama: same IR as the real checkpoint's.
// RUN: %python %inputs/make_checkpoint.py %t/t --tied
// RUN: %dscc compile %t/t --emit=mlir-import -o %t/t-real.mlir
// RUN: rm %t/t/model.safetensors
// RUN: %dscc compile %t/t --load-format dummy --emit=mlir-import -o %t/t-dummy.mlir
// RUN: diff %t/t-real.mlir %t/t-dummy.mlir
// RUN: FileCheck %s --check-prefix=TIED < %t/t-dummy.mlir
// TIED-NOT: lm_head
// RUN: %python %inputs/make_checkpoint.py %t/l --arch LlamaForCausalLM --sharded
// RUN: %dscc compile %t/l --emit=mlir-import -o %t/l-real.mlir
// RUN: rm %t/l/*.safetensors %t/l/model.safetensors.index.json
// RUN: %dscc compile %t/l --load-format dummy --emit=mlir-import | FileCheck %s --check-prefix=LLAMA
// LLAMA: ds.weight @model.layers.0.self_attn.k_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.k_proj.weight", file = "model.safetensors", dtype = bf16, shape = [32, 64]>]}
// LLAMA-NOT: _proj.bias

// The weight dtype comes from torch_dtype, or transformers 5's dtype; bf16
// when neither is given; anything but a float type is an error.
// RUN: %python %inputs/edit_json.py %t/t/config.json torch_dtype=float16
// RUN: %dscc compile %t/t --load-format dummy --emit=mlir-import | FileCheck %s --check-prefix=F16
// F16: ds.weight @model.embed_tokens.weight {{.*}}dtype = f16, shape = [320, 64]>]} : tensor<320x64xf16>
// RUN: %python %inputs/edit_json.py %t/t/config.json dtype=float32
// RUN: %dscc compile %t/t --load-format dummy --emit=mlir-import | FileCheck %s --check-prefix=F32
// F32: ds.weight @model.norm.weight {{.*}}dtype = f32, shape = [64]>]} : tensor<64xf32>
// RUN: %python %inputs/edit_json.py %t/t/config.json -dtype -torch_dtype
// RUN: %dscc compile %t/t --load-format dummy --emit=mlir-import | FileCheck %s --check-prefix=BF16
// BF16: ds.weight @model.norm.weight {{.*}}dtype = bf16, shape = [64]>]} : tensor<64xbf16>
// RUN: %python %inputs/edit_json.py %t/t/config.json torch_dtype=int8
// RUN: not %dscc compile %t/t --load-format dummy --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=BADDTYPE
// BADDTYPE: dscc: error: {{.*}}t/config.json: field 'torch_dtype': 'int8' is not a supported weight dtype (bfloat16, float16 or float32)
// RUN: not %dscc compile %t/t --load-format pt --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=BADFORMAT
// BADFORMAT: dscc: error: --load-format must be auto or dummy, not 'pt'

// Tokenizer files are optional in this mode: without them the plan has no
// tokenizer (eos ids from config.json) and dsrt takes token ids only. One
// file without the other is still an error.
// RUN: %python %inputs/make_checkpoint.py %t/n --tied --no-generation-config
// RUN: rm %t/n/model.safetensors %t/n/tokenizer.json %t/n/tokenizer_config.json
// RUN: not %dscc compile %t/n -o %t/n.dsplan 2>&1 | FileCheck %s --check-prefix=NOCKPT
// RUN: %dscc compile %t/n --load-format dummy -o %t/n.dsplan 2>&1 | FileCheck %s --check-prefix=NOTOK
// NOTOK: dscc: warning: {{.*}}n has no tokenizer files: the plan has no tokenizer (dsrt then takes token-id prompts only, e.g. --prompt-ids)
// RUN: %if dsrt %{ %dsrt inspect %t/n.dsplan | FileCheck %s --check-prefix=INSPECT %}
// INSPECT: tokenizer.json 0 B
// INSPECT: eos [258]
// RUN: %if dsrt %{ %dsrt generate %t/n.dsplan --load-format dummy --prompt-ids 1,2,3 --max-new-tokens 4 --ignore-eos --json | FileCheck %s --check-prefix=GEN %}
// GEN: {"output_ids":[{{[0-9]+}},{{[0-9]+}},{{[0-9]+}},{{[0-9]+}}],"text":""
// RUN: %if dsrt %{ not %dsrt generate %t/n.dsplan --load-format dummy --prompt hi --max-new-tokens 1 2>&1 | FileCheck %s --check-prefix=NOPROMPT %}
// NOPROMPT: has no tokenizer
// dsrt serve needs a tokenizer: a clear error, not a server without one.
// RUN: %if dsrt %{ not timeout 120 %dsrt serve %t/n.dsplan --load-format dummy --port 0 2>&1 | FileCheck %s --check-prefix=NOSERVE %}
// NOSERVE: dsrt: error: {{.*}}n.dsplan: the plan has no tokenizer
// RUN: cp %t/q/tokenizer.json %t/n/
// RUN: not %dscc compile %t/n --load-format dummy -o %t/n.dsplan 2>&1 | FileCheck %s --check-prefix=HALF
// HALF: dscc: error: {{.*}}n/tokenizer_config.json: missing tokenizer file
