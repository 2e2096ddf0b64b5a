// CudaExecutor binder: rope inside decode attention. An attention marked
// rope_prologue (dscc ds-attention-rope) reads the output of a group that
// slices a qkv row into q, k and v, ropes q and k at the step positions and
// writes k and v into this layer's KV cache. In pure decode steps the attention
// kernel does all of that itself (PagedAttentionRope) and the group is skipped.
#include "runtime/executor/cuda/cuda_executor_binder.h"
#include "runtime/executor/rope_attrs.h"

namespace ds::cuda {
namespace {

bool same_rope(const ref::RopeParams& a, const ref::RopeParams& b) {
  return a.head_dim == b.head_dim && a.rotary_dim == b.rotary_dim && a.theta == b.theta && a.style == b.style &&
         a.scaling == b.scaling && a.factor == b.factor && a.original_max_position == b.original_max_position &&
         a.beta_fast == b.beta_fast && a.beta_slow == b.beta_slow && a.mscale == b.mscale &&
         a.mscale_all_dim == b.mscale_all_dim;
}

}  // namespace

Status Binder::link_attention_rope(const PlanAttrs* attrs, BoundOp& op, size_t pos) {
  DS_ASSIGN_OR_RETURN(int64_t marked, attr_int_or(attrs, "rope_prologue", 0, where_));
  if (marked == 0 || !x_.opt.attention_rope) return Status::Ok();
  const auto w = writer_.find(ins_[0].index);
  const auto gk = w == writer_.end() ? fused_kernel_.end() : fused_kernel_.find(w->second);
  if (gk == fused_kernel_.end())
    return err(StrCat() << "rope_prologue: q '" << ins_[0].name << "' is not written by a fused group");
  const plan::Kernel& k = *gk->second;
  const std::vector<Operand>& gin = fused_ins_.at(w->second);
  const std::string bad = StrCat() << "rope_prologue: the group writing q '" << ins_[0].name << "' is not ";
  const PagedAttentionParams& a = op.attn;
  const int64_t qw = static_cast<int64_t>(a.num_heads) * a.head_dim, kvw = static_cast<int64_t>(a.num_kv_heads) * a.head_dim;
  // Inputs (qkv bf16 rows, step positions); result: rope(slice q).
  if (k.num_inputs() != 2 || gin.size() != 2 || gin[0].kind != Operand::kArena || gin[0].dtype != DType::kBF16 ||
      gin[1].kind != Operand::kInput || gin[1].index != 1 || !k.results() || k.results()->size() != 1 ||
      !k.fused_ops() || k.fused_ops()->size() != 6)
    return err(bad + "(bf16 qkv, positions) -> rope(q) with 6 ops");
  const plan::FusedOp* q_rope = fused_value(k, k.results()->Get(0) + k.num_inputs());
  const plan::FusedOp* write = nullptr;
  for (const plan::FusedOp* f : *k.fused_ops())
    if (is_fused_op(f, "kv_cache_write", 2)) write = f;
  if (!is_fused_op(q_rope, "rope", 2) || !write || q_rope->operands()->Get(1) != 1)
    return err(bad + "rope(slice q, positions) with a kv_cache_write");
  const plan::FusedOp* k_rope = fused_value(k, write->operands()->Get(0));
  if (!is_fused_op(k_rope, "rope", 2) || k_rope->operands()->Get(1) != 1)
    return err(bad + "kv_cache_write(rope(slice k, positions), slice v)");
  const int64_t q_off = input_slice_offset(fused_value(k, q_rope->operands()->Get(0)), qw);
  const int64_t k_off = input_slice_offset(fused_value(k, k_rope->operands()->Get(0)), kvw);
  const int64_t v_off = input_slice_offset(fused_value(k, write->operands()->Get(1)), kvw);
  const int64_t ld = gin[0].width;
  if (q_off < 0 || k_off < 0 || v_off < 0 || q_off + qw > ld || k_off + kvw > ld || v_off + kvw > ld)
    return err(StrCat() << bad << "q/k/v slices of " << qw << "/" << kvw << "/" << kvw << " columns of its "
                        << ld << "-column input");
  DS_ASSIGN_OR_RETURN(int64_t layer, attr_int(write->attrs(), "layer", where_ + " rope group kv_cache_write"));
  if (layer != op.layer)
    return err(StrCat() << bad << "writing this layer's cache (it writes layer " << layer << ", attention reads "
                        << op.layer << ")");
  DS_ASSIGN_OR_RETURN(ref::RopeParams qr, rope_params_from_attrs(q_rope->attrs(), where_ + " rope group (q rope)"));
  DS_ASSIGN_OR_RETURN(ref::RopeParams kr, rope_params_from_attrs(k_rope->attrs(), where_ + " rope group (k rope)"));
  if (qr.num_heads != a.num_heads || kr.num_heads != a.num_kv_heads || qr.head_dim != a.head_dim || !same_rope(qr, kr))
    return err(bad + "q and k ropes of the attention's heads with one rope configuration");
  // The kernel reads 16-byte rows: keep the group when the slices are not aligned so
  // (or the attention is not the tensor-core decode kernel's: head_dim > 128).
  if (q_off % 8 != 0 || k_off % 8 != 0 || v_off % 8 != 0 || ld % 8 != 0 ||
      !paged_attention_rope_supported(a, /*max_q_len=*/1))
    return Status::Ok();
  DS_ASSIGN_OR_RETURN(ref::RopeTables tables, ref::rope_tables(qr));
  DS_ASSIGN_OR_RETURN(DeviceBuffer inv, DeviceBuffer::allocate(tables.inv_freq.size() * sizeof(float)));
  DS_RETURN_IF_ERROR(inv.copy_from_host(tables.inv_freq.data(), tables.inv_freq.size() * sizeof(float)));
  const auto* qkv = static_cast<const uint16_t*>(gin[0].ptr);  // bf16 elements
  op.rope_q = qkv + q_off;
  op.rope_q_ld = ld;
  op.rope.k = qkv + k_off;
  op.rope.v = qkv + v_off;
  op.rope.ld = ld;
  op.rope.positions = static_cast<const int32_t*>(gin[1].ptr);
  op.rope.inv_freq = static_cast<const float*>(inv.data());
  op.rope.rotary_dim = static_cast<int>(qr.rotary_dim);
  op.rope.interleaved = qr.style == ref::RopeStyle::kInterleaved;
  op.rope.attention_factor = tables.attention_factor;
  x_.rope_inv_freq.push_back(std::move(inv));
  BoundOp& group = x_.program.at(w->second);
  group.absorbed_by = pos;
  group.absorb = BoundOp::Absorb::kAttentionRope;
  return Status::Ok();
}

}  // namespace ds::cuda
