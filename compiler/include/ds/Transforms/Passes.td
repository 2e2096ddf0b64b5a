//===- Passes.td - ds compiler passes ----------------------------*- tablegen -*-===//
//
// One pass = one .cpp in lib/Transforms = one lit test named after its flag in
// tests/compiler/Transforms.
//
//===----------------------------------------------------------------------===//

#ifndef DS_TRANSFORMS_PASSES_TD
#define DS_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def DsShard : Pass<"ds-shard", "::mlir::ModuleOp"> {
  let summary = "Megatron-style tensor-parallel sharding over `tp` ranks";
  let description = [{
    Rewrites the imported model for `tp` ranks that all run the same program
    on their own weight slices (the runtime computes a source's slice start
    as `slice_start + (rank / slice_rank_divisor) * slice_rank_stride`):
    - attention (found from each `ds.paged_attention`): q/k/v linears (and
      biases) become column-parallel (rows sliced per rank, whole heads); when
      `tp` > num_kv_heads each KV head is shared by `tp / num_kv_heads`
      consecutive ranks (`slice_rank_divisor`). Head counts of `ds.rope`,
      `ds.paged_attention` and the `ds.kv_cache` become per-rank. o_proj is
      row-parallel (columns sliced) followed by `ds.all_reduce`;
    - MLP (`down(silu(gate) * up)`): gate/up column-parallel, down
      row-parallel followed by `ds.all_reduce`;
    - the embedding is vocab-parallel (`vocab_parallel`, rows sliced) followed
      by `ds.all_reduce`; `ds.logits` uses the rank's vocab rows and is
      followed by `ds.all_gather` (which @forward then returns).
    Sets the module attribute `ds.tp_size`. Reports (emitOpError) heads,
    KV heads, intermediate size or vocab that do not split over `tp`, weights
    that are not one whole checkpoint tensor, and row-parallel linears with a
    bias. `tp = 1` only sets `ds.tp_size = 1`. Runs before ds-fuse-weights.
  }];
  let dependentDialects = ["::mlir::ds::DsDialect"];
  let options = [
    Option<"tp", "tp", "int64_t", /*default=*/"1", "Number of tensor-parallel ranks">
  ];
}

def DsFuseWeights : Pass<"ds-fuse-weights", "::mlir::ModuleOp"> {
  let summary = "Merge linears that share their input into one GEMM";
  let description = [{
    Linears in the same block that read the same input and whose weight (and
    bias, if any) are whole `ds.weight` symbols (`ds.get_weight` results) of
    the same dtype, with the same `quant`, become one `ds.linear` over a new
    `ds.weight` whose sources are the originals' sources concatenated on axis 0,
    followed by one `ds.slice` per original result. Typical: q/k/v and
    gate/up projections. The new weight is named after the originals
    (`...q_proj.weight` + `...k_proj.weight` + `...v_proj.weight` ->
    `...qkv_proj.weight`); weight symbols left without users are erased.
  }];
  let dependentDialects = ["::mlir::ds::DsDialect"];
  let statistics = [
    Statistic<"numFused", "num-fused", "Number of linears merged away">
  ];
}

def DsFuseResidualAdd : Pass<"ds-fuse-residual-add", "::mlir::ModuleOp"> {
  let summary = "Move residual adds into the linear / all-reduce that produces them";
  let description = [{
    `ds.add %a, %b` where one operand is the result of a `ds.linear` or
    `ds.all_reduce` (the producer) that has no `residual` yet and whose result
    has exactly one use (this add), and where the other operand, the
    producer's result and the add's result all have the same type (shape and
    element type), becomes the producer with the other operand as its
    `residual` operand. The other operand must already dominate the producer
    (nothing is moved). The add may have the producer as either operand.
    Adds that do not qualify (mixed element types, a producer result read
    elsewhere, a residual defined after the producer) stay as they are.
    Runs on every target, after ds-fuse-weights and before
    ds-fuse-elementwise, so that the row-wise group after a layer's output
    projection is a pure RMSNorm.
  }];
  let dependentDialects = ["::mlir::ds::DsDialect"];
  let statistics = [
    Statistic<"numFused", "num-fused", "Number of adds moved into their producer">
  ];
}

def DsFuseElementwise : Pass<"ds-fuse-elementwise", "::mlir::ModuleOp"> {
  let summary = "Group chains of row-wise ops into ds.fused_group regions";
  let description = [{
    Walks the top-level ops of every function in program order. Maximal runs
    of row-wise ops (rms_norm, add, mul, silu, rope, slice, kv_cache_write;
    `ds.get_weight` does not break a run) are split into their def-use
    connected components; every component of at least `min-ops` ops becomes
    one `ds.fused_group` placed at its last op. Values used outside the
    component are yielded (e.g. both the residual sum and the normalized
    value). GEMMs, attention, embedding and logits stay outside.
    Deterministic.

    `min-ops` defaults to 1 for modules whose `ds.target` is a CUDA arch (so
    every row-wise op runs as a generated kernel and the CUDA executor needs
    no per-op row-wise kernels) and to 2 otherwise.
  }];
  let dependentDialects = ["::mlir::ds::DsDialect"];
  let options = [
    Option<"minOps", "min-ops", "int64_t", /*default=*/"0",
           "Smallest component that becomes a group (0: 1 for CUDA targets, else 2)">
  ];
  let statistics = [
    Statistic<"numGroups", "num-groups", "Number of fused groups formed">
  ];
}

def DsSelectKernels : Pass<"ds-select-kernels", "::mlir::ModuleOp"> {
  let summary = "Choose the implementation of every compute op (ds.impl)";
  let description = [{
    Sets `ds.impl` on every top-level compute op of every function and on every
    `ds.fused_group`. Target "cpu": "ref.<op>" and "interp" for fused groups.
    Targets "sm_*": "cublaslt.gemm" for linear/logits, "cuda.paged_attention",
    "cuda.embedding", "nccl.all_reduce" / "nccl.all_gather" for collectives,
    "nvrtc" for fused groups and "cuda.<op>" otherwise.
    The target is the `target` option, else the module's `ds.target`.
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"\"",
           "cpu or sm_NN[a] (default: the module ds.target attribute)">
  ];
}

def DsGemvPrologue : Pass<"ds-gemv-prologue", "::mlir::ModuleOp"> {
  let summary = "Mark linears whose input is a pure RMSNorm group (decode GEMV prologue)";
  let description = [{
    For modules whose `ds.target` is a CUDA arch (a no-op on "cpu"): a
    `ds.linear` whose `x` is the only result of a `ds.fused_group` whose body
    is exactly `ds.rms_norm %arg0, %arg1` yielded, and whose result has no
    other use than this linear, gets the discardable attribute
    `ds.prologue = "rms_norm"`. The CUDA executor may then skip the group in
    decode steps and let the linear's GEMV normalize the group's input row
    itself; the group stays in the program for the steps that launch it.
    ds-plan-buffers keeps the group's activation inputs live through the
    marked linear. Runs after ds-select-kernels and before ds-plan-buffers.
  }];
  let statistics = [
    Statistic<"numMarked", "num-marked", "Number of linears marked">
  ];
}

def DsGemvEpilogue : Pass<"ds-gemv-epilogue", "::mlir::ModuleOp"> {
  let summary = "Mark gate_up linears whose result feeds a SiLU*mul group (decode GEMV epilogue)";
  let description = [{
    For modules whose `ds.target` is a CUDA arch (a no-op on "cpu"): a
    `ds.linear` without a residual whose result, a `tensor<?x(2I)xbf16>`, has
    exactly one use, a `ds.fused_group` with that result as its only input and
    one `tensor<?xIxbf16>` result whose body is exactly

    ```mlir
    %g = ds.slice %arg0 {offset = 0 : i64, size = I : i64}
    %u = ds.slice %arg0 {offset = I : i64, size = I : i64}
    %s = ds.silu %g
    %r = ds.mul %s, %u    // or %u, %s
    ds.yield %r
    ```

    (in any order), gets the discardable attribute `ds.epilogue = "swiglu"`.
    The CUDA executor may then skip the group in decode steps and let the
    linear's GEMV write `silu(gate) * up` into the group's result buffer
    itself; the group stays in the program for the steps that launch it.
    ds-plan-buffers makes the group's result live from the marked linear on.
    Runs after ds-select-kernels and before ds-plan-buffers.
  }];
  let statistics = [
    Statistic<"numMarked", "num-marked", "Number of linears marked">
  ];
}

def DsAttentionRope : Pass<"ds-attention-rope", "::mlir::ModuleOp"> {
  let summary = "Mark attentions whose q comes from the layer's rope + KV-write group (decode attention rope prologue)";
  let description = [{
    For modules whose `ds.target` is a CUDA arch (a no-op on "cpu"): a
    `ds.paged_attention` whose `q` is the only result of a `ds.fused_group`
    read by nothing else, with the inputs (`tensor<?xWxbf16>` qkv, the step
    positions: the `tensor<?xi32>` argument 1 of the function) and a body of
    exactly

    ```mlir
    ^bb0(%qkv: tensor<?x4608xbf16>, %pos: tensor<?xi32>):
      %q = ds.slice %qkv {offset = 0 : i64, size = 3584 : i64} : tensor<?x4608xbf16> -> tensor<?x3584xbf16>
      %k = ds.slice %qkv {offset = 3584 : i64, size = 512 : i64} : tensor<?x4608xbf16> -> tensor<?x512xbf16>
      %v = ds.slice %qkv {offset = 4096 : i64, size = 512 : i64} : tensor<?x4608xbf16> -> tensor<?x512xbf16>
      %qr = ds.rope %q, %pos {head_dim = 128 : i64, num_heads = 28 : i64, rope = #ds.rope<rotary_dim = 128>} : tensor<?x3584xbf16>, tensor<?xi32>
      %kr = ds.rope %k, %pos {head_dim = 128 : i64, num_heads = 4 : i64, rope = #ds.rope<rotary_dim = 128>} : tensor<?x512xbf16>, tensor<?xi32>
      ds.kv_cache_write %kr, %v {cache = @kv, layer = 0 : i64} : tensor<?x512xbf16>, tensor<?x512xbf16>
      ds.yield %qr : tensor<?x3584xbf16>
    ```

    (in any order; the slices' offsets are free), where both ropes have the
    same `rope` attribute and the attention's `head_dim` (which equals its
    `v_head_dim`), the q rope and slice the attention's `num_heads`, the k
    rope and the k / v slices its `num_kv_heads`, and the cache write the
    attention's `cache` and `layer`, gets the discardable unit attribute
    `ds.rope_prologue`:

    ```mlir
    %o = ds.paged_attention %qr {cache = @kv, ds.rope_prologue, layer = 0 : i64, ...}
    ```

    The CUDA executor may then skip the group in pure decode steps and let
    the attention kernel rope q and the new key and write the new K/V rows
    into the cache itself, reading the group's qkv row; the group stays in
    the program for the steps that launch it. ds-plan-buffers keeps the
    group's activation inputs live through the marked attention. Runs after
    ds-gemv-epilogue and before ds-plan-buffers.
  }];
  let statistics = [
    Statistic<"numMarked", "num-marked", "Number of attentions marked">
  ];
}

def DsPlanBuffers : Pass<"ds-plan-buffers", "::mlir::ModuleOp"> {
  let summary = "Assign activation-arena offsets (bytes per token)";
  let description = [{
    Liveness over the top-level ops of `@forward` (a fused group is one op),
    then greedy-by-size first-fit placement: values sorted by size (largest
    first, ties in program order) take the lowest offset that does not overlap
    a placed value with an intersecting live range. A result never aliases an
    operand of the op that produces it. Every op with arena results gets
    `ds.offsets` / `ds.sizes` (bytes per token, one entry per result, multiples
    of the alignment); the module gets `ds.arena_bytes_per_token` and
    `ds.arena_alignment` (16). Not in the arena: function arguments,
    `ds.get_weight` results, the step output 0 (the `ds.logits` or, under
    tensor parallelism, `ds.all_gather` result that @forward returns; a
    gathered `ds.logits` result lives in the arena). Values must have a dynamic
    leading (token) dimension and a static row shape. A linear marked
    `ds.prologue = "rms_norm"` (ds-gemv-prologue) reads its producer group's
    activation inputs itself in decode steps, so those stay live through the
    linear (no result of the group or the linear shares their space). A
    linear marked `ds.epilogue = "swiglu"` (ds-gemv-epilogue) writes the
    result of the group that reads it in decode steps, so that result is live
    from the linear on (it shares no space with the linear's inputs or
    anything else live there). An attention marked `ds.rope_prologue`
    (ds-attention-rope) reads its q group's activation inputs (the qkv row)
    itself in decode steps, so those stay live through the attention.
  }];
  let options = [
    Option<"alignment", "alignment", "int64_t", /*default=*/"16",
           "Alignment of offsets and sizes in bytes per token">
  ];
}

def DsCodegenCuda : Pass<"ds-codegen-cuda", "::mlir::ModuleOp"> {
  let summary = "Generate and NVRTC-compile a CUDA kernel per ds.fused_group";
  let description = [{
    For sm_* targets (the `arch` option, else the module's `ds.target`; a
    "cpu" module is left unchanged), emits CUDA C++ for each `ds.fused_group`
    (one thread block per token row, float math, 16-byte vector loads when all
    row sizes and offsets allow, block reductions for rms_norm), compiles it
    with NVRTC and attaches `ds.cuda_source`, `ds.cuda_entry` (content-hashed,
    identical groups share one kernel), `ds.cuda_arch`, `ds.cuda_binary` (the
    cubin bytes in a StringAttr), `ds.nvrtc_options` (array of strings),
    `ds.block_dim` and `ds.rows_per_block`. The kernel ABI is documented in
    the header comment of every generated source. Without CUDA
    (DS_ENABLE_CUDA=OFF) the pass fails on sm_* modules.
  }];
  let options = [
    Option<"arch", "arch", "std::string", /*default=*/"\"\"",
           "GPU arch, e.g. sm_90a (default: the module ds.target attribute)">
  ];
}

#endif // DS_TRANSFORMS_PASSES_TD
