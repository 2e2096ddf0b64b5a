// IR the plan cannot express is reported on the offending op, and no plan is
// written.
// REQUIRES: dscc

// RUN: rm -rf %t && split-file %s %t && %python %inputs/make_checkpoint.py %t/m --layers 1
// RUN: %dscc export %t/ok.mlir --model %t/m -o %t/ok.dsplan
// RUN: test -s %t/ok.dsplan
// RUN: not %dscc export %t/no-arena.mlir --model %t/m -o %t/p.dsplan 2>&1 | FileCheck %s --check-prefix=NOARENA
// NOARENA: dscc: error: {{.*}}no-arena.mlir:1:1: module lacks ds.arena_bytes_per_token / ds.arena_alignment; run ds-plan-buffers before exporting
// RUN: not %dscc export %t/no-impl.mlir --model %t/m -o %t/p.dsplan 2>&1 | FileCheck %s --check-prefix=NOIMPL
// NOIMPL: dscc: error: final_norm: 'ds.rms_norm' op has no ds.impl; run ds-select-kernels before exporting
// RUN: not %dscc export %t/no-offsets.mlir --model %t/m -o %t/p.dsplan 2>&1 | FileCheck %s --check-prefix=NOOFFSETS
// NOOFFSETS: dscc: error: embed: 'ds.embedding' op has no ds.offsets / ds.sizes for its results; run ds-plan-buffers before exporting
// RUN: not %dscc export %t/extra-func.mlir --model %t/m -o %t/p.dsplan 2>&1 | FileCheck %s --check-prefix=EXTRAFUNC
// EXTRAFUNC: dscc: error: {{.*}}extra-func.mlir:4:3: 'func.func' op is not supported by the plan exporter
// RUN: not %dscc export %t/yield-input.mlir --model %t/m -o %t/p.dsplan 2>&1 | FileCheck %s --check-prefix=YIELD
// YIELD: dscc: error: group: 'ds.fused_group' op yields a group input directly, which the plan cannot express
// RUN: not %dscc export %t/no-cuda.mlir --model %t/m -o %t/p.dsplan 2>&1 | FileCheck %s --check-prefix=NOCUDA
// NOCUDA: dscc: error: group: 'ds.fused_group' op has no generated CUDA code for target 'sm_90a'; run ds-codegen-cuda before exporting
// RUN: not %dscc export %t/bad-prologue.mlir --model %t/m -o %t/p.dsplan 2>&1 | FileCheck %s --check-prefix=PROLOGUE
// PROLOGUE: dscc: error: final_norm: 'ds.rms_norm' op ds.prologue must be a string on a ds.linear
// RUN: sed -e 's/ds.prologue = "rms_norm"/ds.epilogue = 1 : i64/' %t/bad-prologue.mlir > %t/bad-epilogue.mlir
// RUN: not %dscc export %t/bad-epilogue.mlir --model %t/m -o %t/p.dsplan 2>&1 | FileCheck %s --check-prefix=EPILOGUE
// EPILOGUE: dscc: error: final_norm: 'ds.rms_norm' op ds.epilogue must be a string on a ds.linear
// RUN: sed -e 's/ds.prologue = "rms_norm"/ds.rope_prologue/' %t/bad-prologue.mlir > %t/bad-rope-prologue.mlir
// RUN: not %dscc export %t/bad-rope-prologue.mlir --model %t/m -o %t/p.dsplan 2>&1 | FileCheck %s --check-prefix=ROPEPROLOGUE
// ROPEPROLOGUE: dscc: error: final_norm: 'ds.rms_norm' op ds.rope_prologue must be a unit attribute on a ds.paged_attention
// RUN: not %dscc export %t/ok.mlir --model %t/m -o %t/missing-dir/p.dsplan 2>&1 | FileCheck %s --check-prefix=NODIR
// NODIR: dscc: error: {{.*}}cannot write the plan: {{.*}}missing-dir
// RUN: test ! -e %t/p.dsplan

//--- ok.mlir
module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 256 : i64,
                   ds.arena_bytes_per_token = 512 : i64, ds.arena_alignment = 16 : i64} {
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 16 : i64, v_dim = 16 : i64, dtype = f32}
  ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
  ds.weight @norm {sources = [#ds.source<name = "model.norm.weight", file = "model.safetensors", dtype = bf16, shape = [64]>]} : tensor<64xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x320xf32> {
    %e = ds.get_weight @embed : tensor<320x64xbf16>
    %x = ds.embedding %tokens, %e {ds.impl = "ref.embedding", ds.offsets = array<i64: 0>, ds.sizes = array<i64: 256>}
        : (tensor<?xi32>, tensor<320x64xbf16>) -> tensor<?x64xf32> loc("embed")
    %nw = ds.get_weight @norm : tensor<64xbf16>
    %h = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64, ds.impl = "ref.rms_norm", ds.offsets = array<i64: 256>, ds.sizes = array<i64: 256>}
        : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32> loc("final_norm")
    %l = ds.logits %h, %e, %rows {ds.impl = "ref.logits"} : (tensor<?x64xf32>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32>
    return %l : tensor<?x320xf32>
  }
}

//--- no-arena.mlir
module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 256 : i64} {
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 16 : i64, v_dim = 16 : i64, dtype = f32}
}

//--- no-impl.mlir
module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 256 : i64,
                   ds.arena_bytes_per_token = 512 : i64, ds.arena_alignment = 16 : i64} {
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 16 : i64, v_dim = 16 : i64, dtype = f32}
  ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
  ds.weight @norm {sources = [#ds.source<name = "model.norm.weight", file = "model.safetensors", dtype = bf16, shape = [64]>]} : tensor<64xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x320xf32> {
    %e = ds.get_weight @embed : tensor<320x64xbf16>
    %x = ds.embedding %tokens, %e {ds.impl = "ref.embedding", ds.offsets = array<i64: 0>, ds.sizes = array<i64: 256>}
        : (tensor<?xi32>, tensor<320x64xbf16>) -> tensor<?x64xf32> loc("embed")
    %nw = ds.get_weight @norm : tensor<64xbf16>
    %h = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64, ds.offsets = array<i64: 256>, ds.sizes = array<i64: 256>}
        : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32> loc("final_norm")
    %l = ds.logits %h, %e, %rows {ds.impl = "ref.logits"} : (tensor<?x64xf32>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32>
    return %l : tensor<?x320xf32>
  }
}

//--- no-offsets.mlir
module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 256 : i64,
                   ds.arena_bytes_per_token = 512 : i64, ds.arena_alignment = 16 : i64} {
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 16 : i64, v_dim = 16 : i64, dtype = f32}
  ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x320xf32> {
    %e = ds.get_weight @embed : tensor<320x64xbf16>
    %x = ds.embedding %tokens, %e {ds.impl = "ref.embedding"} : (tensor<?xi32>, tensor<320x64xbf16>) -> tensor<?x64xf32> loc("embed")
    %l = ds.logits %x, %e, %rows {ds.impl = "ref.logits"} : (tensor<?x64xf32>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32>
    return %l : tensor<?x320xf32>
  }
}

//--- extra-func.mlir
module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 256 : i64,
                   ds.arena_bytes_per_token = 512 : i64, ds.arena_alignment = 16 : i64} {
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 16 : i64, v_dim = 16 : i64, dtype = f32}
  func.func @helper(%x: tensor<?xi32>) -> tensor<?xi32> {
    return %x : tensor<?xi32>
  }
}

//--- yield-input.mlir
module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 256 : i64,
                   ds.arena_bytes_per_token = 512 : i64, ds.arena_alignment = 16 : i64} {
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 16 : i64, v_dim = 16 : i64, dtype = f32}
  ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x320xf32> {
    %e = ds.get_weight @embed : tensor<320x64xbf16>
    %x = ds.embedding %tokens, %e {ds.impl = "ref.embedding", ds.offsets = array<i64: 0>, ds.sizes = array<i64: 256>}
        : (tensor<?xi32>, tensor<320x64xbf16>) -> tensor<?x64xf32> loc("embed")
    %y = ds.fused_group(%x) {ds.impl = "interp", ds.offsets = array<i64: 256>, ds.sizes = array<i64: 256>}
        : (tensor<?x64xf32>) -> tensor<?x64xf32> {
    ^bb0(%a: tensor<?x64xf32>):
      ds.yield %a : tensor<?x64xf32>
    } loc("group")
    %l = ds.logits %y, %e, %rows {ds.impl = "ref.logits"} : (tensor<?x64xf32>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32>
    return %l : tensor<?x320xf32>
  }
}

//--- no-cuda.mlir
module attributes {ds.target = "sm_90a", ds.activation_dtype = bf16, ds.max_model_len = 256 : i64,
                   ds.arena_bytes_per_token = 512 : i64, ds.arena_alignment = 16 : i64} {
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 16 : i64, v_dim = 16 : i64, dtype = bf16}
  ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x320xf32> {
    %e = ds.get_weight @embed : tensor<320x64xbf16>
    %x = ds.embedding %tokens, %e {ds.impl = "cuda.embedding", ds.offsets = array<i64: 0>, ds.sizes = array<i64: 128>}
        : (tensor<?xi32>, tensor<320x64xbf16>) -> tensor<?x64xbf16> loc("embed")
    %y = ds.fused_group(%x) {ds.impl = "nvrtc", ds.offsets = array<i64: 128>, ds.sizes = array<i64: 128>}
        : (tensor<?x64xbf16>) -> tensor<?x64xbf16> {
    ^bb0(%a: tensor<?x64xbf16>):
      %s = ds.silu %a : tensor<?x64xbf16>
      ds.yield %s : tensor<?x64xbf16>
    } loc("group")
    %l = ds.logits %y, %e, %rows {ds.impl = "cublaslt.gemm"} : (tensor<?x64xbf16>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32>
    return %l : tensor<?x320xf32>
  }
}

//--- bad-prologue.mlir
module attributes {ds.target = "cpu", ds.activation_dtype = f32, ds.max_model_len = 256 : i64,
                   ds.arena_bytes_per_token = 512 : i64, ds.arena_alignment = 16 : i64} {
  ds.kv_cache @kv {num_layers = 1 : i64, num_kv_heads = 2 : i64, k_dim = 16 : i64, v_dim = 16 : i64, dtype = f32}
  ds.weight @embed {sources = [#ds.source<name = "model.embed_tokens.weight", file = "model.safetensors", dtype = bf16, shape = [320, 64]>]} : tensor<320x64xbf16>
  ds.weight @norm {sources = [#ds.source<name = "model.norm.weight", file = "model.safetensors", dtype = bf16, shape = [64]>]} : tensor<64xbf16>
  func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>, %rows: tensor<?xi32>) -> tensor<?x320xf32> {
    %e = ds.get_weight @embed : tensor<320x64xbf16>
    %x = ds.embedding %tokens, %e {ds.impl = "ref.embedding", ds.offsets = array<i64: 0>, ds.sizes = array<i64: 256>}
        : (tensor<?xi32>, tensor<320x64xbf16>) -> tensor<?x64xf32> loc("embed")
    %nw = ds.get_weight @norm : tensor<64xbf16>
    %h = ds.rms_norm %x, %nw {eps = 1.0e-06 : f64, ds.prologue = "rms_norm", ds.impl = "ref.rms_norm", ds.offsets = array<i64: 256>, ds.sizes = array<i64: 256>}
        : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32> loc("final_norm")
    %l = ds.logits %h, %e, %rows {ds.impl = "ref.logits"} : (tensor<?x64xf32>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32>
    return %l : tensor<?x320xf32>
  }
}
