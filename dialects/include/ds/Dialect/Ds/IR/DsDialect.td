//===- DsDialect.td - the ds dialect -----------------------------*- tablegen -*-===//
//
// The `ds` dialect: LLM inference graphs at the granularity of the kernels the
// runtime (dsrt) executes.
//
//===----------------------------------------------------------------------===//

#ifndef DS_DIALECT_DS_IR_DSDIALECT_TD
#define DS_DIALECT_DS_IR_DSDIALECT_TD

include "mlir/IR/OpBase.td"

def Ds_Dialect : Dialect {
  let name = "ds";
  let cppNamespace = "::mlir::ds";
  let summary = "LLM inference graphs for the dscc compiler and the dsrt runtime";
  let description = [{
    A `ds` module holds module-level symbols (`ds.weight`, `ds.kv_cache`) and one
    `func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>,
    %logit_rows: tensor<?xi32>) -> tensor<?xVxf32>` that computes one step of the
    model over all tokens of the step (from any number of sequences,
    concatenated along the leading dynamic dimension `?`). The step's batch
    structure (which tokens belong to which sequence, their KV pages) is not in
    the IR: it is a runtime input read by `ds.paged_attention`,
    `ds.kv_cache_write` and `ds.logits`.

    Activations are ranked tensors `tensor<?x...xE>` whose element type is the
    module attribute `ds.activation_dtype` (f32 for target "cpu", bf16 for sm_*
    targets). Weights keep their checkpoint dtype.

    Module attributes: `ds.target` (string, "cpu" or "sm_90a"...),
    `ds.activation_dtype` (type), `ds.max_model_len` (i64); set by passes:
    `ds.tp_size` (ds-shard), `ds.arena_bytes_per_token`, `ds.arena_alignment`.
    Op attributes set by passes: `ds.impl`, `ds.offsets`, `ds.sizes`,
    `ds.cuda_*`.

    Tensor parallelism: one program for all `ds.tp_size` ranks. `ds.all_reduce`
    and `ds.all_gather` are value-semantics collectives over the ranks with a
    memory effect on a `CommResource` (never reordered, merged or erased);
    `--ds-shard` slices `#ds.source`s per rank (`slice_axis/slice_start/
    slice_rank_stride/slice_rank_divisor`), makes head counts per-rank and
    inserts the collectives after row-parallel linears, the vocab-parallel
    embedding and the logits.

    Planned extensions, and how they fit the dialect:
    - MLA (DeepSeek-V3): `ds.mla_attention %q_nope, %q_pe {cache = @latent,
      layer, ...}` reading a second `ds.kv_cache @latent {k_dim = kv_lora_rank +
      qk_rope_head_dim, v_dim = 0}`, with a matching `ds.mla_cache_write`; both
      carry the same `KvCacheResource` effects as the GQA ops.
    - MoE: `ds.moe_route %logits, %bias {top_k, n_group, topk_group,
      routed_scaling_factor}` returns (weights, expert ids) tensors and
      `ds.grouped_linear %x, %w, %ids` runs the selected experts over a stacked
      `ds.weight` whose sources are per-expert 2-D checkpoint tensors stacked on
      a new leading axis (`ds.weight` already verifies that layout).
    - Block-fp8: `ds.linear {quant = "block_fp8"}` with the scale weight as an
      extra operand.
  }];
  let useDefaultAttributePrinterParser = 1;
  let extraClassDeclaration = [{
    /// Registers the attributes (defined in DsAttrs.cpp).
    void registerAttributes();
  }];
}

class Ds_Op<string mnemonic, list<Trait> traits = []>
    : Op<Ds_Dialect, mnemonic, traits>;

#endif // DS_DIALECT_DS_IR_DSDIALECT_TD
