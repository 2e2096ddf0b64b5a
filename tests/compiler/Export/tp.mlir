// dscc compile --tp N: the sharded IR of the tiny Qwen2 fixtures (per-rank
// shapes, sliced sources with rank stride / divisor, all_reduce after o_proj
// and down_proj, all_gather after the logits), the plan-level conventions
// (tp_size, slice_rank_divisor, collective kernels, step output 0 = the
// gathered logits) and the errors for degrees that do not divide the model.
// REQUIRES: dscc

// qwen2-tiny-tied: hidden 64, 4 heads, 2 KV heads, head_dim 16,
// intermediate 128, vocab 1984, tied embeddings.
// RUN: %dscc compile %ds_src_root/tests/fixtures/qwen2-tiny-tied --tp 2 --emit=mlir | FileCheck %s --check-prefix=TIED2
// TIED2: module attributes {{{.*}}ds.tp_size = 2 : i64}
// TIED2: ds.kv_cache @kv {dtype = f32, k_dim = 16 : i64, num_kv_heads = 1 : i64, num_layers = 2 : i64, v_dim = 16 : i64}
// TIED2: ds.weight @model.embed_tokens.weight {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [1984, 64], slice_axis = 0, slice_size = 992, slice_rank_stride = 992>]} : tensor<992x64xbf16>
// TIED2: ds.weight @model.layers.0.self_attn.qkv_proj.weight {sources = [#ds.source<name = "model.layers.0.self_attn.q_proj.weight", {{.*}}shape = [64, 64], slice_axis = 0, slice_size = 32, slice_rank_stride = 32>, #ds.source<name = "model.layers.0.self_attn.k_proj.weight", {{.*}}shape = [32, 64], slice_axis = 0, slice_size = 16, slice_rank_stride = 16>, #ds.source<name = "model.layers.0.self_attn.v_proj.weight", {{.*}}shape = [32, 64], slice_axis = 0, slice_size = 16, slice_rank_stride = 16>]} : tensor<64x64xbf16>
// TIED2: ds.weight @model.layers.0.self_attn.qkv_proj.bias {{.*}}shape = [64], slice_axis = 0, slice_size = 32, slice_rank_stride = 32>, {{.*}}shape = [32], slice_axis = 0, slice_size = 16, slice_rank_stride = 16>, {{.*}}shape = [32], slice_axis = 0, slice_size = 16, slice_rank_stride = 16>]} : tensor<64xbf16>
// TIED2: ds.weight @model.layers.0.self_attn.o_proj.weight {{.*}}shape = [64, 64], slice_axis = 1, slice_size = 32, slice_rank_stride = 32>]} : tensor<64x32xbf16>
// TIED2: ds.weight @model.layers.0.mlp.gate_up_proj.weight {{.*}}shape = [128, 64], slice_axis = 0, slice_size = 64, slice_rank_stride = 64>, {{.*}}shape = [128, 64], slice_axis = 0, slice_size = 64, slice_rank_stride = 64>]} : tensor<128x64xbf16>
// TIED2: ds.weight @model.layers.0.mlp.down_proj.weight {{.*}}shape = [64, 128], slice_axis = 1, slice_size = 64, slice_rank_stride = 64>]} : tensor<64x64xbf16>
// TIED2-NOT: lm_head
// TIED2: ds.weight @model.norm.weight {sources = [#ds.source<name = "model.norm.weight", file = "model.safetensors", dtype = bf16, shape = [64]>]} : tensor<64xbf16>
// TIED2: %[[E:.*]] = ds.embedding {{.*}}vocab_parallel} : (tensor<?xi32>, tensor<992x64xbf16>) -> tensor<?x64xf32>
// TIED2-NEXT: %[[X:.*]] = ds.all_reduce %[[E]] {ds.impl = "ref.all_reduce"
// TIED2: ds.paged_attention {{.*}}num_heads = 2 : i64, num_kv_heads = 1 : i64{{.*}} : tensor<?x32xf32> -> tensor<?x32xf32>
// TIED2-NEXT: ds.get_weight @model.layers.0.self_attn.o_proj.weight : tensor<64x32xbf16>
// TIED2-NEXT: %[[O:.*]] = ds.linear {{.*}} : (tensor<?x32xf32>, tensor<64x32xbf16>) -> tensor<?x64xf32>
// The residual adds run inside the all-reduces (ds-fuse-residual-add).
// TIED2-NEXT: %[[H:.*]] = ds.all_reduce %[[O]] residual %[[X]] {ds.impl = "ref.all_reduce"
// TIED2: ds.get_weight @model.layers.0.mlp.down_proj.weight : tensor<64x64xbf16>
// TIED2-NEXT: %[[D:.*]] = ds.linear {{.*}} : (tensor<?x64xf32>, tensor<64x64xbf16>) -> tensor<?x64xf32>
// TIED2-NEXT: ds.all_reduce %[[D]] residual %[[H]] {ds.impl = "ref.all_reduce"
// TIED2-NOT: ds.add
// TIED2-COUNT-2: ds.all_reduce
// TIED2: ds.get_weight @model.embed_tokens.weight : tensor<992x64xbf16>
// TIED2-NEXT: %[[L:.*]] = ds.logits {{.*}} -> tensor<?x992xf32>
// TIED2-NEXT: %[[G:.*]] = ds.all_gather %[[L]] {ds.impl = "ref.all_gather"} : tensor<?x992xf32> -> tensor<?x1984xf32>
// TIED2-NEXT: return %[[G]] : tensor<?x1984xf32>

// RUN: %dscc compile %ds_src_root/tests/fixtures/qwen2-tiny-tied --tp 4 --emit=mlir | FileCheck %s --check-prefix=TIED4
// TIED4: ds.kv_cache @kv {{{.*}}num_kv_heads = 1 : i64
// TIED4: ds.weight @model.embed_tokens.weight {{.*}}slice_size = 496, slice_rank_stride = 496>]} : tensor<496x64xbf16>
// TIED4: #ds.source<name = "model.layers.0.self_attn.k_proj.weight", {{.*}}shape = [32, 64], slice_axis = 0, slice_size = 16, slice_rank_stride = 16, slice_rank_divisor = 2>
// TIED4: ds.paged_attention {{.*}}num_heads = 1 : i64, num_kv_heads = 1 : i64{{.*}} : tensor<?x16xf32> -> tensor<?x16xf32>
// TIED4: ds.all_gather {{.*}} : tensor<?x496xf32> -> tensor<?x1984xf32>

// qwen2-tiny-r1: hidden 64, 4 heads, 1 KV head, head_dim 128, intermediate
// 192, vocab 1984, untied lm_head, two safetensors files.
// RUN: %dscc compile %ds_src_root/tests/fixtures/qwen2-tiny-r1 --tp 2 --emit=mlir | FileCheck %s --check-prefix=R1-2
// R1-2: ds.kv_cache @kv {{{.*}}k_dim = 128 : i64, num_kv_heads = 1 : i64
// R1-2: #ds.source<name = "model.layers.0.self_attn.q_proj.weight", {{.*}}shape = [512, 64], slice_axis = 0, slice_size = 256, slice_rank_stride = 256>
// R1-2-SAME: #ds.source<name = "model.layers.0.self_attn.k_proj.weight", {{.*}}shape = [128, 64], slice_axis = 0, slice_size = 128, slice_rank_stride = 128, slice_rank_divisor = 2>
// R1-2: ds.weight @model.layers.0.mlp.down_proj.weight {{.*}}shape = [64, 192], slice_axis = 1, slice_size = 96, slice_rank_stride = 96>]} : tensor<64x96xbf16>
// R1-2: ds.weight @lm_head.weight {{.*}}shape = [1984, 64], slice_axis = 0, slice_size = 992, slice_rank_stride = 992>]} : tensor<992x64xbf16>
// R1-2: ds.paged_attention {{.*}}num_heads = 2 : i64, num_kv_heads = 1 : i64{{.*}} : tensor<?x256xf32> -> tensor<?x256xf32>
// R1-2: ds.linear {{.*}} : (tensor<?x256xf32>, tensor<64x256xbf16>) -> tensor<?x64xf32>
// R1-2-NEXT: ds.all_reduce
// R1-2: ds.get_weight @lm_head.weight : tensor<992x64xbf16>
// R1-2-NEXT: ds.logits {{.*}} -> tensor<?x992xf32>
// R1-2-NEXT: ds.all_gather {{.*}} : tensor<?x992xf32> -> tensor<?x1984xf32>

// RUN: %dscc compile %ds_src_root/tests/fixtures/qwen2-tiny-r1 --tp 4 --emit=mlir | FileCheck %s --check-prefix=R1-4
// R1-4: #ds.source<name = "model.layers.0.self_attn.q_proj.weight", file = "model-00001-of-00002.safetensors", dtype = bf16, shape = [512, 64], slice_axis = 0, slice_size = 128, slice_rank_stride = 128>
// R1-4-SAME: #ds.source<name = "model.layers.0.self_attn.k_proj.weight", file = "model-00001-of-00002.safetensors", dtype = bf16, shape = [128, 64], slice_axis = 0, slice_size = 128, slice_rank_stride = 128, slice_rank_divisor = 4>
// R1-4-SAME: #ds.source<name = "model.layers.0.self_attn.v_proj.weight", file = "model-00001-of-00002.safetensors", dtype = bf16, shape = [128, 64], slice_axis = 0, slice_size = 128, slice_rank_stride = 128, slice_rank_divisor = 4>
// R1-4: ds.weight @model.layers.0.mlp.gate_up_proj.weight {{.*}}slice_size = 48, slice_rank_stride = 48>, {{.*}}slice_size = 48, slice_rank_stride = 48>]} : tensor<96x64xbf16>
// R1-4: ds.paged_attention {{.*}}num_heads = 1 : i64, num_kv_heads = 1 : i64{{.*}} : tensor<?x128xf32> -> tensor<?x128xf32>
// R1-4: ds.all_gather {{.*}} : tensor<?x496xf32> -> tensor<?x1984xf32>

// The plan: tp_size, slice_rank_divisor, the collectives as builtin kernels,
// the logits in the arena and the all_gather writing step output 0.
// RUN: rm -rf %t && mkdir -p %t
// RUN: %dscc compile %ds_src_root/tests/fixtures/qwen2-tiny-r1 --tp 4 -o %t/r1.dsplan
// RUN: %if flatc %{ flatc --json --strict-json --raw-binary -o %t %plan_fbs -- %t/r1.dsplan %}
// RUN: %if flatc %{ %python -c "import json,sys; p=json.load(open(sys.argv[1])); ks=p['kernels']; print('tp_size', p['tp_size']); [print('source', s['name'], s.get('slice_axis', -1), s.get('slice_size', 0), s.get('slice_rank_stride', 0), s.get('slice_rank_divisor', 1)) for w in p['weights'][:3] for s in w['sources']]; [print('instr', ks[i.get('kernel', 0)]['op'], ks[i.get('kernel', 0)]['impl'], sorted((a['key'], a.get('i', a.get('s'))) for a in ks[i.get('kernel', 0)].get('attrs', [])), [(r['kind'], r.get('index', 0)) for r in i['inputs']], [(r['kind'], r.get('index', 0)) for r in i['outputs']]) for i in p['program'] if ks[i.get('kernel', 0)].get('op') in ('embedding', 'all_reduce', 'logits', 'all_gather')]" %t/r1.json | FileCheck %s --check-prefix=PLAN %}
// PLAN: tp_size 4
// PLAN: source model.embed_tokens.weight 0 496 496 1
// PLAN: source model.layers.0.input_layernorm.weight -1 0 0 1
// PLAN: source model.layers.0.self_attn.q_proj.weight 0 128 128 1
// PLAN: source model.layers.0.self_attn.k_proj.weight 0 128 128 4
// PLAN: source model.layers.0.self_attn.v_proj.weight 0 128 128 4
// PLAN: instr embedding ref.embedding [('vocab_parallel', 1)] [('input', 0), ('weight', 0)] [('arena', 0)]
// PLAN-NEXT: instr all_reduce ref.all_reduce [('group', 'tp')] [('arena', 0)] [('arena', 1)]
// The row-parallel all-reduces add the residual (inputs [x, residual],
// attr residual = 1); the first one's residual is the embedding's sum.
// PLAN-NEXT: instr all_reduce ref.all_reduce [('group', 'tp'), ('residual', 1)] [('arena', {{[0-9]+}}), ('arena', 1)] [('arena', [[H:[0-9]+]])]
// PLAN-NEXT: instr all_reduce ref.all_reduce [('group', 'tp'), ('residual', 1)] [('arena', {{[0-9]+}}), ('arena', [[H]])] [('arena', {{[0-9]+}})]
// PLAN-COUNT-4: instr all_reduce ref.all_reduce [('group', 'tp'), ('residual', 1)] [('arena', {{[0-9]+}}), ('arena', {{[0-9]+}})] [('arena', {{[0-9]+}})]
// PLAN-NEXT: instr logits ref.logits [] [('arena', [[X:[0-9]+]]), ('weight', {{[0-9]+}}), ('input', 2)] [('arena', [[L:[0-9]+]])]
// PLAN-NEXT: instr all_gather ref.all_gather [('axis', -1), ('group', 'tp')] [('arena', [[L]])] [('output', 0)]

// The runtime checks the all-reduces' inputs against the attribute residual
// (plans edited through flatc's JSON): two inputs without it, one with it.
// RUN: %if flatc %{ %python %inputs/edit_kernel_attr.py %t/r1.json %t/ar-nores.json all_reduce residual %}
// RUN: %if flatc %{ %python %inputs/edit_kernel_attr.py %t/r1.json %t/ar-embres.json embed.all_reduce residual 1 %}
// RUN: %if flatc %{ flatc -b -o %t %plan_fbs %t/ar-nores.json %t/ar-embres.json %}
// RUN: %if flatc && dsrt %{ not %dsrt generate %t/ar-nores.dsplan --tp 4 --prompt-ids 1,2 --max-new-tokens 1 2>&1 | FileCheck %s --check-prefix=ARNORES %}
// RUN: %if flatc && dsrt %{ not %dsrt generate %t/ar-embres.dsplan --tp 4 --prompt-ids 1,2 --max-new-tokens 1 2>&1 | FileCheck %s --check-prefix=AREMBRES %}
// ARNORES: kernel 'all_reduce' (all_reduce): takes 1 inputs, got 2
// AREMBRES: program[1] kernel 'embed.all_reduce' (all_reduce): takes 2 inputs, got 1

// dscc export of the compiled sharded IR writes the same plan (tp_size comes
// from the module's ds.tp_size).
// RUN: %dscc compile %ds_src_root/tests/fixtures/qwen2-tiny-r1 --tp 4 --emit=mlir --mlir-print-debuginfo -o %t/r1.mlir
// RUN: %dscc export %t/r1.mlir --model %ds_src_root/tests/fixtures/qwen2-tiny-r1 -o %t/r1-export.dsplan
// RUN: cmp %t/r1.dsplan %t/r1-export.dsplan

// A sm_90a plan uses NCCL for the collectives.
// RUN: %if nvrtc %{ %dscc compile %ds_src_root/tests/fixtures/qwen2-tiny-tied --tp 2 --target sm_90a --emit=mlir | FileCheck %s --check-prefix=CUDA %}
// CUDA: ds.all_reduce {{.*}}ds.impl = "nccl.all_reduce"
// CUDA: ds.all_gather {{.*}}ds.impl = "nccl.all_gather"

// Degrees that do not divide the model, named after the config field.
// RUN: not %dscc compile %ds_src_root/tests/fixtures/qwen2-tiny-tied --tp 3 -o %t/x.dsplan 2>&1 | FileCheck %s --check-prefix=TP3
// RUN: not %dscc compile %ds_src_root/tests/fixtures/qwen2-tiny-r1 --tp 3 -o %t/x.dsplan 2>&1 | FileCheck %s --check-prefix=TP3
// TP3: dscc: error: num_attention_heads 4 is not divisible by --tp 3
// RUN: not %dscc compile %ds_src_root/tests/fixtures/qwen2-tiny-r1 --tp 8 --emit=mlir 2>&1 | FileCheck %s --check-prefix=TP8
// TP8: dscc: error: num_attention_heads 4 is not divisible by --tp 8
// RUN: not test -e %t/x.dsplan
