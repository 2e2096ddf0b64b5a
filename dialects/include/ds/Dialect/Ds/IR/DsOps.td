//===- DsOps.td - ds dialect operations --------------------------*- tablegen -*-===//
//
// Operand order of every op is the order the exporter writes into the plan
// (see docs/ARCHITECTURE.md and IR_CONTRACT.md).
//
//===----------------------------------------------------------------------===//

#ifndef DS_DIALECT_DS_IR_DSOPS_TD
#define DS_DIALECT_DS_IR_DSOPS_TD

include "ds/Dialect/Ds/IR/DsDialect.td"
include "ds/Dialect/Ds/IR/DsAttrs.td"
include "mlir/IR/OpBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

//===----------------------------------------------------------------------===//
// Type constraints and resources
//===----------------------------------------------------------------------===//

def Ds_Activation : RankedTensorOf<[AnyFloat]>;
def Ds_IndexVector : 1DTensorOf<[AnySignlessInteger]>;
def Ds_Weight : RankedTensorOf<[AnyType]>;

// The paged KV cache. Writers and readers are ordered through this resource.
def Ds_KvCacheResource : Resource<"::mlir::ds::KvCacheResource">;

// The tensor-parallel communicator. Collectives read and write it so that
// they are never reordered with each other, erased or merged (every rank must
// issue the same collectives in the same order).
def Ds_CommResource : Resource<"::mlir::ds::CommResource">;

//===----------------------------------------------------------------------===//
// Module-level symbols
//===----------------------------------------------------------------------===//

def Ds_WeightOp : Ds_Op<"weight", [Symbol]> {
  let summary = "a weight tensor built from checkpoint tensors at load time";
  let description = [{
    Declares the weight `@sym_name` of type `type`. At load time the runtime
    reads each `#ds.source` (optionally sliced), concatenates them along
    `concat_axis` and casts the result to the element type of `type`. When the
    sources have one dimension less than `type`, they are stacked along a new
    leading axis instead (requires `concat_axis = 0`; MoE expert weights).

    The verifier checks that the sources' (sliced) shapes add up to `type`.

    ```mlir
    ds.weight @model.layers.0.self_attn.qkv_proj.weight {sources = [
        #ds.source<name = "model.layers.0.self_attn.q_proj.weight", file = "model.safetensors", dtype = bf16, shape = [896, 896]>,
        #ds.source<name = "model.layers.0.self_attn.k_proj.weight", file = "model.safetensors", dtype = bf16, shape = [128, 896]>,
        #ds.source<name = "model.layers.0.self_attn.v_proj.weight", file = "model.safetensors", dtype = bf16, shape = [128, 896]>]}
        : tensor<1152x896xbf16>
    ```
  }];
  let arguments = (ins
    SymbolNameAttr:$sym_name,
    TypedArrayAttrBase<Ds_SourceAttr, "array of #ds.source">:$sources,
    DefaultValuedAttr<I64Attr, "0">:$concat_axis,
    TypeAttrOf<Ds_Weight>:$type
  );
  let assemblyFormat = "$sym_name attr-dict `:` $type";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::RankedTensorType getTensorType() {
      return ::llvm::cast<::mlir::RankedTensorType>(getType());
    }
  }];
}

def Ds_KvCacheOp : Ds_Op<"kv_cache", [Symbol]> {
  let summary = "the paged KV cache";
  let description = [{
    Declares the paged KV cache: `num_layers` layers, each a pool of pages of
    `page_size` tokens, each token `num_kv_heads` heads of `k_dim` (keys) and
    `v_dim` (values) elements of `dtype` ("NHD" layout). The pool size is chosen
    by the runtime.

    ```mlir
    ds.kv_cache @kv {num_layers = 24 : i64, num_kv_heads = 2 : i64, k_dim = 64 : i64,
                     v_dim = 64 : i64, page_size = 16 : i64, dtype = bf16}
    ```
  }];
  let arguments = (ins
    SymbolNameAttr:$sym_name,
    I64Attr:$num_layers,
    I64Attr:$num_kv_heads,
    I64Attr:$k_dim,
    I64Attr:$v_dim,
    DefaultValuedAttr<I64Attr, "16">:$page_size,
    TypeAttr:$dtype
  );
  let assemblyFormat = "$sym_name attr-dict";
  let hasVerifier = 1;
}

def Ds_GetWeightOp : Ds_Op<"get_weight",
    [Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "the value of a ds.weight";
  let description = [{
    Returns the weight `@name`; the result type must equal the weight's type.

    ```mlir
    %w = ds.get_weight @model.norm.weight : tensor<896xbf16>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$name);
  let results = (outs Ds_Weight:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// Compute ops
//===----------------------------------------------------------------------===//

def Ds_EmbeddingOp : Ds_Op<"embedding", [Pure]> {
  let summary = "embedding lookup";
  let description = [{
    `result[t] = table[ids[t]]`, converted to the activation type.

    With `vocab_parallel` (tensor parallelism), the table is this rank's slice
    of the vocabulary: rank `r` of the `ds.tp_size` ranks holds the rows of ids
    `[r * rows, (r + 1) * rows)`; ids outside that range give a zero row (a
    following `ds.all_reduce` sums the ranks' partial rows).

    ```mlir
    %x = ds.embedding %tokens, %w : (tensor<?xi32>, tensor<151936x896xbf16>) -> tensor<?x896xf32>
    %p = ds.embedding %tokens, %w2 {vocab_parallel} : (tensor<?xi32>, tensor<75968x896xbf16>) -> tensor<?x896xf32>
    ```
  }];
  let arguments = (ins Ds_IndexVector:$ids, Ds_Weight:$table,
                       UnitAttr:$vocab_parallel);
  let results = (outs Ds_Activation:$result);
  let assemblyFormat = "$ids `,` $table attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ds_RmsNormOp : Ds_Op<"rms_norm", [Pure]> {
  let summary = "RMS normalization of each row";
  let description = [{
    `result = x * rsqrt(mean(x^2) + eps) * w` over the last dimension, computed
    in float32. `w` has the row shape; the result has the shape of `x` and a
    float element type of its own: an f32 residual stream (dscc
    `--residual-dtype f32`) is normalized into the bf16 input of the next GEMM.

    ```mlir
    %y = ds.rms_norm %x, %w {eps = 1.0e-06 : f64} : (tensor<?x896xf32>, tensor<896xbf16>) -> tensor<?x896xf32>
    %h = ds.rms_norm %r, %w {eps = 1.0e-06 : f64} : (tensor<?x896xf32>, tensor<896xbf16>) -> tensor<?x896xbf16>
    ```
  }];
  let arguments = (ins Ds_Activation:$x, Ds_Weight:$weight, F64Attr:$eps);
  let results = (outs Ds_Activation:$result);
  let assemblyFormat = "$x `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ds_LinearOp : Ds_Op<"linear", [Pure, AttrSizedOperandSegments]> {
  let summary = "x · wᵀ (+ bias) (+ residual)";
  let description = [{
    `result[t, n] = sum_k x[t, k] * w[n, k] + bias[n] + residual[t, n]` with
    `w` of shape `[N, K]` as stored in the checkpoint, an optional `bias` of
    shape `[N]` and an optional activation `residual` of exactly the result's
    type (shape and element type; the verifier checks it). `quant` names the
    weight quantization: only "none" today (block-fp8 will add the scale
    weight as an operand). Accumulation is float32; the result may have
    another float type than `x` (a bf16 GEMM writing f32 into an f32 residual
    stream: dscc `--proj-out-dtype f32`).

    The residual is the residual connection moved into the GEMM epilogue by
    `--ds-fuse-residual-add` (`ds.add %r, (ds.linear ...)` becomes one op);
    the sum is computed in float32 and rounded once to the result type. On
    sm_* targets `--ds-gemv-prologue` may mark a linear whose input is a
    pure-RMSNorm fused group with the discardable attribute
    `ds.prologue = "rms_norm"` (decode GEMVs may then normalize the group's
    input themselves), and `--ds-gemv-epilogue` marks a gate_up linear read
    only by a SiLU*mul group with `ds.epilogue = "swiglu"` (decode GEMVs then
    write that group's output themselves).

    ```mlir
    %y = ds.linear %x, %w, %b : (tensor<?x896xf32>, tensor<1152x896xbf16>, tensor<1152xbf16>) -> tensor<?x1152xf32>
    %z = ds.linear %x, %w2 : (tensor<?x896xf32>, tensor<896x896xbf16>) -> tensor<?x896xf32>
    %o = ds.linear %a, %wo : (tensor<?x896xbf16>, tensor<896x896xbf16>) -> tensor<?x896xf32>
    %h = ds.linear %a, %wo residual %r
        : (tensor<?x896xbf16>, tensor<896x896xbf16>, tensor<?x896xf32>) -> tensor<?x896xf32>
    ```
  }];
  let arguments = (ins Ds_Activation:$x, Ds_Weight:$weight,
                       Optional<Ds_Weight>:$bias,
                       Optional<Ds_Activation>:$residual,
                       DefaultValuedStrAttr<StrAttr, "none">:$quant);
  let results = (outs Ds_Activation:$result);
  let assemblyFormat = [{
    $x `,` $weight (`,` $bias^)? (`residual` $residual^)? attr-dict `:` functional-type(operands, results)
  }];
  let builders = [
    // Without a residual (the importer and ds-fuse-weights build these).
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$x,
                   "::mlir::Value":$weight, "::mlir::Value":$bias,
                   "::mlir::StringAttr":$quant), [{
      build($_builder, $_state, result, x, weight, bias, ::mlir::Value(), quant);
    }]>
  ];
  let hasVerifier = 1;
}

def Ds_SliceOp : Ds_Op<"slice", [Pure]> {
  let summary = "columns [offset, offset + size) of the last dimension";
  let description = [{
    Splits fused projections (q/k/v, gate/up). A slice covering the whole row
    folds to its input; a slice of a slice folds into one slice.

    ```mlir
    %k = ds.slice %qkv {offset = 896 : i64, size = 128 : i64} : tensor<?x1152xf32> -> tensor<?x128xf32>
    ```
  }];
  let arguments = (ins Ds_Activation:$x, I64Attr:$offset, I64Attr:$size);
  let results = (outs Ds_Activation:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Ds_RopeOp : Ds_Op<"rope", [Pure, AllTypesMatch<["x", "result"]>]> {
  let summary = "rotary position embedding per head";
  let description = [{
    Rotates the first `rope.rotary_dim` dims of each of the `num_heads` heads
    (`head_dim` elements each) of every row by the row's position.

    ```mlir
    %q2 = ds.rope %q, %positions {num_heads = 14 : i64, head_dim = 64 : i64,
                                  rope = #ds.rope<theta = 1000000.0, rotary_dim = 64>}
        : tensor<?x896xf32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins Ds_Activation:$x, Ds_IndexVector:$positions,
                       I64Attr:$num_heads, I64Attr:$head_dim, Ds_RopeAttr:$rope);
  let results = (outs Ds_Activation:$result);
  let assemblyFormat = "$x `,` $positions attr-dict `:` type($x) `,` type($positions)";
  let hasVerifier = 1;
}

def Ds_KvCacheWriteOp : Ds_Op<"kv_cache_write", [
    MemoryEffects<[MemWrite<Ds_KvCacheResource>]>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "store this step's K/V rows in the paged cache";
  let description = [{
    Writes row `t` of `k` and `v` (`num_kv_heads * k_dim` and
    `num_kv_heads * v_dim` elements) into layer `layer` of `cache` at the
    page slot of token `t`'s position in its sequence (from the step's batch
    description). Has a write effect on the KV cache, so it stays ordered
    before the `ds.paged_attention` of the same step.

    ```mlir
    ds.kv_cache_write %k, %v {cache = @kv, layer = 0 : i64} : tensor<?x128xf32>, tensor<?x128xf32>
    ```
  }];
  let arguments = (ins Ds_Activation:$k, Ds_Activation:$v,
                       FlatSymbolRefAttr:$cache, I64Attr:$layer);
  let assemblyFormat = "$k `,` $v attr-dict `:` type($k) `,` type($v)";
  let hasVerifier = 1;
}

def Ds_PagedAttentionOp : Ds_Op<"paged_attention", [
    MemoryEffects<[MemRead<Ds_KvCacheResource>]>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "causal attention over the paged KV cache";
  let description = [{
    For each query row: causal attention of its `num_heads` heads over the
    cached K/V of its sequence (prefix plus this step) in layer `layer` of
    `cache`, scores scaled by `scale`. Grouped-query attention with
    `num_heads / num_kv_heads` query heads per KV head. Result rows are
    `num_heads * v_head_dim` wide.

    ```mlir
    %o = ds.paged_attention %q {cache = @kv, layer = 0 : i64, num_heads = 14 : i64,
                                num_kv_heads = 2 : i64, head_dim = 64 : i64,
                                v_head_dim = 64 : i64, scale = 1.250000e-01 : f64}
        : tensor<?x896xf32> -> tensor<?x896xf32>
    ```
  }];
  let arguments = (ins Ds_Activation:$q, FlatSymbolRefAttr:$cache, I64Attr:$layer,
                       I64Attr:$num_heads, I64Attr:$num_kv_heads, I64Attr:$head_dim,
                       I64Attr:$v_head_dim, F64Attr:$scale);
  let results = (outs Ds_Activation:$result);
  let assemblyFormat = "$q attr-dict `:` type($q) `->` type($result)";
  let hasVerifier = 1;
}

class Ds_ElementwiseOp<string mnemonic, list<Trait> traits = []>
    : Ds_Op<mnemonic, !listconcat(traits,
          [Pure, Elementwise, SameOperandsAndResultType])> {
  let results = (outs Ds_Activation:$result);
  let assemblyFormat = "operands attr-dict `:` type($result)";
}

def Ds_SiluOp : Ds_ElementwiseOp<"silu"> {
  let summary = "x * sigmoid(x)";
  let description = [{
    ```mlir
    %s = ds.silu %gate : tensor<?x4864xf32>
    ```
  }];
  let arguments = (ins Ds_Activation:$x);
}

def Ds_MulOp : Ds_ElementwiseOp<"mul", [Commutative]> {
  let summary = "elementwise product";
  let description = [{
    ```mlir
    %p = ds.mul %s, %up : tensor<?x4864xf32>
    ```
  }];
  let arguments = (ins Ds_Activation:$lhs, Ds_Activation:$rhs);
}

def Ds_AddOp : Ds_Op<"add", [Pure, Elementwise, Commutative,
                              SameOperandsAndResultShape]> {
  let summary = "elementwise sum (residual connection)";
  let description = [{
    The sum is computed in float32 and rounded to the result's element type.
    Operands and result share a shape; their float element types may differ,
    which is how a float32 residual stream accumulates bf16 layer outputs
    (dscc `--residual-dtype f32`). When all three types are equal the short
    form prints one type.

    ```mlir
    %h = ds.add %x, %attn_out : tensor<?x896xf32>
    %r = ds.add %x, %o : tensor<?x896xf32>, tensor<?x896xbf16> -> tensor<?x896xf32>
    ```
  }];
  let arguments = (ins Ds_Activation:$lhs, Ds_Activation:$rhs);
  let results = (outs Ds_Activation:$result);
  let hasCustomAssemblyFormat = 1;
}

def Ds_LogitsOp : Ds_Op<"logits", [Pure]> {
  let summary = "gather the step's logit rows, then x · wᵀ in float32";
  let description = [{
    `result[r] = x[logit_rows[r]] · wᵀ`, computed and returned in f32.
    `logit_rows` is step input 2 (usually the last token of each sequence).

    ```mlir
    %l = ds.logits %h, %w, %logit_rows
        : (tensor<?x896xf32>, tensor<151936x896xbf16>, tensor<?xi32>) -> tensor<?x151936xf32>
    ```
  }];
  let arguments = (ins Ds_Activation:$x, Ds_Weight:$weight, Ds_IndexVector:$rows);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$x `,` $weight `,` $rows attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Collectives (tensor parallelism)
//===----------------------------------------------------------------------===//

def Ds_AllReduceOp : Ds_Op<"all_reduce", [
    AllTypesMatch<["x", "result"]>,
    OptionalTypesMatchWith<"residual has the type of x and the result",
                           "result", "residual", "$_self">,
    MemoryEffects<[MemRead<Ds_CommResource>, MemWrite<Ds_CommResource>]>]> {
  let summary = "sum of a value over the ranks of a communicator group (+ residual)";
  let description = [{
    Value semantics: every rank of `group` (today only "tp", the
    tensor-parallel group of `ds.tp_size` ranks) gets the elementwise sum of
    `x` over the ranks, plus the optional local `residual` (added once, after
    the sum: `result = residual + sum over ranks of x`). `residual` must have
    exactly the type of `x` and the result; `--ds-fuse-residual-add` moves
    the residual add that follows a row-parallel linear's all-reduce into it.
    Follows row-parallel linears (o_proj, down_proj) and the vocab-parallel
    embedding. Collectives carry a read/write effect on the communicator so
    that passes neither reorder, merge nor erase them.

    ```mlir
    %s = ds.all_reduce %partial {group = "tp"} : tensor<?x896xf32>
    %h = ds.all_reduce %partial residual %r {group = "tp"} : tensor<?x896xf32>
    ```
  }];
  let arguments = (ins Ds_Activation:$x, Optional<Ds_Activation>:$residual,
                       DefaultValuedStrAttr<StrAttr, "tp">:$group);
  let results = (outs Ds_Activation:$result);
  let assemblyFormat = "$x (`residual` $residual^)? attr-dict `:` type($result)";
  let builders = [
    // Without a residual (ds-shard builds these).
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$x,
                   "::mlir::StringAttr":$group), [{
      build($_builder, $_state, result, x, ::mlir::Value(), group);
    }]>
  ];
  let hasVerifier = 1;
}

def Ds_AllGatherOp : Ds_Op<"all_gather", [
    MemoryEffects<[MemRead<Ds_CommResource>, MemWrite<Ds_CommResource>]>]> {
  let summary = "concatenation of a value over the ranks along the last axis";
  let description = [{
    Every rank of `group` gets the rank-ordered concatenation of `x` along
    `axis` (only -1, the last axis, today): the result row is `ds.tp_size`
    times as wide as the input row, other dimensions are unchanged. Gathers
    the vocab-parallel logits.

    ```mlir
    %l = ds.all_gather %part {group = "tp", axis = -1 : i64} : tensor<?x75968xf32> -> tensor<?x151936xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[AnyFloat]>:$x,
                       DefaultValuedStrAttr<StrAttr, "tp">:$group,
                       DefaultValuedAttr<I64Attr, "-1">:$axis);
  let results = (outs RankedTensorOf<[AnyFloat]>:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Fusion
//===----------------------------------------------------------------------===//

def Ds_FusedGroupOp : Ds_Op<"fused_group", [
    IsolatedFromAbove, RecursiveMemoryEffects, RecursivelySpeculatable]> {
  let summary = "row-wise ops that one generated kernel runs";
  let description = [{
    Formed by `--ds-fuse-elementwise`. The operands are the values the group
    reads; they map 1:1 (same types) to the entry block arguments. `ds.yield`
    lists the results. Only row-wise ops are allowed inside: `ds.rms_norm`,
    `ds.add`, `ds.mul`, `ds.silu`, `ds.rope`, `ds.slice`,
    `ds.kv_cache_write`; weights come in as operands (no `ds.get_weight`
    inside). The CPU executor interprets the op list; for sm_* targets
    `--ds-codegen-cuda` generates one CUDA kernel (one row per block).

    ```mlir
    %sum, %normed = ds.fused_group(%x, %attn, %w) : (tensor<?x896xf32>, tensor<?x896xf32>, tensor<896xbf16>)
        -> (tensor<?x896xf32>, tensor<?x896xf32>) {
    ^bb0(%a: tensor<?x896xf32>, %b: tensor<?x896xf32>, %nw: tensor<896xbf16>):
      %s = ds.add %a, %b : tensor<?x896xf32>
      %n = ds.rms_norm %s, %nw {eps = 1.0e-06 : f64} : (tensor<?x896xf32>, tensor<896xbf16>) -> tensor<?x896xf32>
      ds.yield %s, %n : tensor<?x896xf32>, tensor<?x896xf32>
    }
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    `(` $inputs `)` attr-dict `:` functional-type($inputs, results) $body
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
  let hasCanonicalizer = 1;
  let skipDefaultBuilders = 1;
  let builders = [
    // Creates the op with an entry block whose arguments mirror `inputs`
    // (no terminator: the caller fills the body and adds ds.yield).
    OpBuilder<(ins "::mlir::TypeRange":$resultTypes, "::mlir::ValueRange":$inputs)>
  ];
  let extraClassDeclaration = [{
    ::mlir::Block &getBodyBlock() { return getBody().front(); }
    ::mlir::ds::YieldOp getYield();
    /// True for the ops that may appear inside a fused group.
    static bool isFusable(::mlir::Operation *op);
  }];
}

def Ds_YieldOp : Ds_Op<"yield", [Pure, ReturnLike, Terminator,
                                 HasParent<"::mlir::ds::FusedGroupOp">]> {
  let summary = "results of a ds.fused_group";
  let description = [{
    ```mlir
    ds.yield %s, %n : tensor<?x896xf32>, tensor<?x896xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$values);
  let assemblyFormat = "attr-dict ($values^ `:` type($values))?";
}

#endif // DS_DIALECT_DS_IR_DSOPS_TD
