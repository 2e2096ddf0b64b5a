// Every bad model directory is reported on stderr as "dscc: error: ..." naming
// the file and the tensor or field, with exit status 1 (`not` checks it).
// REQUIRES: dscc

// Missing tensor.
// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %inputs/make_checkpoint.py %t/missing --drop model.layers.1.mlp.up_proj.weight
// RUN: not %dscc compile %t/missing --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: dscc: error: checkpoint {{.*}}missing: missing tensor 'model.layers.1.mlp.up_proj.weight' (expected shape [128, 64])

// Wrong shape.
// RUN: %python %inputs/make_checkpoint.py %t/shape --reshape model.layers.0.self_attn.k_proj.weight=16x64
// RUN: not %dscc compile %t/shape --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=SHAPE
// SHAPE: dscc: error: {{.*}}shape/model.safetensors: tensor 'model.layers.0.self_attn.k_proj.weight' has shape [16, 64], expected [32, 64]

// Wrong dtype.
// RUN: %python %inputs/make_checkpoint.py %t/dtype --retype model.norm.weight=I32
// RUN: not %dscc compile %t/dtype --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=DTYPE
// DTYPE: dscc: error: {{.*}}dtype/model.safetensors: tensor 'model.norm.weight' has dtype i32; only f32, f16 and bf16 weights are supported

// Truncated safetensors file (header cut off).
// RUN: %python %inputs/make_checkpoint.py %t/trunc
// RUN: truncate -s 100 %t/trunc/model.safetensors
// RUN: not %dscc compile %t/trunc --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=TRUNC
// TRUNC: dscc: error: {{.*}}trunc/model.safetensors{{.*}}truncated

// Malformed safetensors header JSON.
// RUN: %python %inputs/make_checkpoint.py %t/badheader
// RUN: printf '\020\000\000\000\000\000\000\000{"a": [1, 2,,]}' > %t/badheader/model.safetensors
// RUN: not %dscc compile %t/badheader --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=BADHEADER
// BADHEADER: dscc: error: {{.*}}badheader/model.safetensors

// Sharded checkpoint whose index names a missing shard.
// RUN: %python %inputs/make_checkpoint.py %t/noshard --sharded
// RUN: rm %t/noshard/model-00002-of-00002.safetensors
// RUN: not %dscc compile %t/noshard --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=NOSHARD
// NOSHARD: dscc: error: {{.*}}model-00002-of-00002.safetensors

// No weights at all; a malformed index.
// RUN: %python %inputs/make_checkpoint.py %t/noweights
// RUN: rm %t/noweights/model.safetensors
// RUN: not %dscc compile %t/noweights --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=NOWEIGHTS
// NOWEIGHTS: dscc: error: {{.*}}noweights has neither model.safetensors.index.json nor model.safetensors
// RUN: %python %inputs/make_checkpoint.py %t/badindex --sharded
// RUN: echo '{"weight_map": 5}' > %t/badindex/model.safetensors.index.json
// RUN: not %dscc compile %t/badindex --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=BADINDEX
// BADINDEX: dscc: error: {{.*}}badindex/model.safetensors.index.json

// Malformed config.json.
// RUN: %python %inputs/make_checkpoint.py %t/badjson
// RUN: echo '{"architectures": ["Qwen2ForCausalLM"],' > %t/badjson/config.json
// RUN: not %dscc compile %t/badjson --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=BADJSON
// BADJSON: dscc: error: {{.*}}badjson/config.json: malformed JSON: {{.*}}parse error

// Missing and mistyped config fields.
// RUN: %python %inputs/make_checkpoint.py %t/nofield
// RUN: sed -i '/"num_hidden_layers"/d' %t/nofield/config.json
// RUN: not %dscc compile %t/nofield --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=NOFIELD
// NOFIELD: dscc: error: {{.*}}nofield/config.json: field 'num_hidden_layers': is missing
// RUN: sed -i 's/"hidden_size": 64/"hidden_size": "64"/' %t/dtype/config.json
// RUN: not %dscc compile %t/dtype --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=BADFIELD
// BADFIELD: dscc: error: {{.*}}config.json: field 'hidden_size': must be a positive integer, got "64"

// Unknown architecture.
// RUN: %python %inputs/make_checkpoint.py %t/arch --arch MixtralForCausalLM
// RUN: not %dscc compile %t/arch --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=ARCH
// ARCH: dscc: error: {{.*}}arch/config.json: field 'architectures': unsupported architecture 'MixtralForCausalLM' (supported: Qwen2ForCausalLM, LlamaForCausalLM)

// Unsupported rope scaling.
// RUN: %python %inputs/make_checkpoint.py %t/llama3 --arch LlamaForCausalLM --rope-scaling llama3
// RUN: not %dscc compile %t/llama3 --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=LLAMA3
// LLAMA3: dscc: error: {{.*}}config.json: rope_scaling: field 'rope_type': rope scaling type 'llama3' is not supported

// Missing tokenizer files.
// RUN: %python %inputs/make_checkpoint.py %t/notok
// RUN: rm %t/notok/tokenizer.json
// RUN: not %dscc compile %t/notok --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=NOTOK
// NOTOK: dscc: error: {{.*}}notok/tokenizer.json: missing tokenizer file
// RUN: %python %inputs/make_checkpoint.py %t/notokcfg
// RUN: rm %t/notokcfg/tokenizer_config.json
// RUN: not %dscc compile %t/notokcfg --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=NOTOKCFG
// NOTOKCFG: dscc: error: {{.*}}notokcfg/tokenizer_config.json: missing tokenizer file

// A special token that the tokenizer does not know.
// RUN: %python %inputs/make_checkpoint.py %t/badeos
// RUN: sed -i 's/"eos_token": "<|im_end|>"/"eos_token": "<eos>"/' %t/badeos/tokenizer_config.json
// RUN: not %dscc compile %t/badeos --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=BADEOS
// BADEOS: dscc: error: {{.*}}tokenizer_config.json: field 'eos_token': names token '<eos>' which is not in {{.*}}tokenizer.json

// Not a directory; bad command lines.
// RUN: not %dscc compile %t/nowhere --emit=mlir-import 2>&1 | FileCheck %s --check-prefix=NODIR
// NODIR: dscc: error: {{.*}}nowhere: not a model directory
// RUN: not %dscc compile %t/arch --tp 0 -o %t/x.dsplan 2>&1 | FileCheck %s --check-prefix=TP
// TP: dscc: error: --tp must be at least 1, got 0
// RUN: not %dscc compile %t/arch --target sm90 -o %t/x.dsplan 2>&1 | FileCheck %s --check-prefix=TARGET
// TARGET: dscc: error: unsupported target 'sm90' (expected cpu or a CUDA arch such as sm_90a or sm_80)
// RUN: not %dscc compile %t/arch 2>&1 | FileCheck %s --check-prefix=NOOUT
// NOOUT: dscc: error: -o PLAN is required with --emit=plan
// RUN: not %dscc compile 2>&1 | FileCheck %s --check-prefix=USAGE
// USAGE: dscc: error: {{.*}}model_dir{{.*}}
// RUN: not %dscc frobnicate 2>&1 | FileCheck %s --check-prefix=USAGE2
// USAGE2: dscc: error:
// RUN: test ! -e %t/x.dsplan
