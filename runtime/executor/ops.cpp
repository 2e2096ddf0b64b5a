#include "runtime/executor/ops.h"
#include "runtime/executor/rope_attrs.h"

#include "kernels/ref/elementwise.h"
#include "kernels/ref/linear.h"

#include <algorithm>

namespace ds {
namespace {

const char* val_kind_name(Val::Kind k) {
  switch (k) {
    case Val::kAct: return "activation";
    case Val::kWeight: return "weight";
    case Val::kKv: return "kv_cache layer";
    case Val::kTokens: return "step input 0 (token ids)";
    case Val::kPositions: return "step input 1 (positions)";
    case Val::kLogitRows: return "step input 2 (logit rows)";
    case Val::kLogits: return "step output 0 (logits)";
  }
  return "?";
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

class Checker {
 public:
  explicit Checker(const PreparedOp& op) : op_(op) {}
  Status counts(size_t ins_min, size_t ins_max, size_t outs) const {
    if (op_.ins.size() < ins_min || op_.ins.size() > ins_max)
      return err(StrCat() << "takes " << ins_min << (ins_max != ins_min ? "-" + std::to_string(ins_max) : "")
                          << " inputs, got " << op_.ins.size());
    if (op_.outs.size() != outs) return err(StrCat() << "produces " << outs << " outputs, got " << op_.outs.size());
    return Status::Ok();
  }
  Status kind(const Val& v, Val::Kind k, const char* role) const {
    if (v.kind != k) return err(StrCat() << role << " must be a " << val_kind_name(k) << ", got a " << val_kind_name(v.kind));
    return Status::Ok();
  }
  Status weight_shape(const Val& v, const std::vector<int64_t>& want, const char* role) const {
    DS_RETURN_IF_ERROR(kind(v, Val::kWeight, role));
    if (v.weight->shape != want)
      return err(StrCat() << role << " '" << v.weight->name << "' has shape " << shape_str(v.weight->shape) << ", expected "
                          << shape_str(want));
    return Status::Ok();
  }
  Status width(const Val& v, int64_t w, const char* role) const {
    if (v.width != w) return err(StrCat() << role << " has " << v.width << " elements per token, expected " << w);
    return Status::Ok();
  }
  // Sets (fused intermediate, width 0) or checks an activation output width.
  Status out(Val& v, int64_t w) const {
    DS_RETURN_IF_ERROR(kind(v, Val::kAct, "output"));
    if (v.width == 0) {
      v.width = w;
      return Status::Ok();
    }
    return width(v, w, "output");
  }
  // The residual input `index` of a linear / all_reduce: an activation of the output's width.
  Status residual(const Val& v, size_t index, int64_t w) const {
    const std::string role = StrCat() << "input " << index << " (residual)";
    DS_RETURN_IF_ERROR(kind(v, Val::kAct, role.c_str()));
    return width(v, w, role.c_str());
  }
  Status err(const std::string& m) const { return Status::Error(op_.where + ": " + m); }

 private:
  const PreparedOp& op_;
};

// Attribute residual (linear, all_reduce): 1 when the last input is a residual, absent or 0 otherwise.
Result<bool> residual_attr(const PlanAttrs* attrs, const Checker& c, const std::string& ctx) {
  DS_ASSIGN_OR_RETURN(int64_t v, attr_int_or(attrs, "residual", 0, ctx));
  if (v != 0 && v != 1) return c.err(StrCat() << "attribute residual must be 0 or 1, got " << v);
  return v == 1;
}

}  // namespace

Result<OpKind> op_kind_from_name(const std::string& op) {
  static const std::pair<const char*, OpKind> kOps[] = {
      {"embedding", OpKind::kEmbedding}, {"rms_norm", OpKind::kRmsNorm},
      {"linear", OpKind::kLinear},       {"slice", OpKind::kSlice},
      {"rope", OpKind::kRope},           {"kv_cache_write", OpKind::kKvCacheWrite},
      {"paged_attention", OpKind::kPagedAttention}, {"silu", OpKind::kSilu},
      {"mul", OpKind::kMul},             {"add", OpKind::kAdd},
      {"logits", OpKind::kLogits},       {"all_reduce", OpKind::kAllReduce},
      {"all_gather", OpKind::kAllGather}};
  for (const auto& [name, kind] : kOps)
    if (op == name) return kind;
  return Status::Error("op '" + op + "' is not supported by the CPU executor");
}

Status prepare_op(PreparedOp& op, const PlanAttrs* attrs, const KvGeometryView& kv, int64_t vocab, const TpInfo& tp) {
  Checker c(op);
  const std::string& ctx = op.where;
  op.vocab = vocab;
  switch (op.kind) {
    case OpKind::kEmbedding: {
      DS_RETURN_IF_ERROR(c.counts(2, 2, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kTokens, "input 0"));
      DS_RETURN_IF_ERROR(c.kind(op.ins[1], Val::kWeight, "input 1 (table)"));
      if (op.ins[1].weight->shape.size() != 2) return c.err("embedding table must be 2-D");
      DS_ASSIGN_OR_RETURN(int64_t vp, attr_int_or(attrs, "vocab_parallel", 0, ctx));
      op.vocab_parallel = vp != 0;
      if (op.vocab_parallel) {
        const int64_t rows = op.ins[1].weight->shape[0];
        op.vocab_start = static_cast<int64_t>(tp.rank) * rows;
        op.total_vocab = rows * tp.size;
        if (op.total_vocab != vocab)
          return c.err(StrCat() << "vocab-parallel table has " << rows << " rows per rank x " << tp.size
                                << " ranks = " << op.total_vocab << " ids, but the vocabulary has " << vocab);
      }
      return c.out(op.outs[0], op.ins[1].weight->shape[1]);
    }
    case OpKind::kRmsNorm: {
      DS_RETURN_IF_ERROR(c.counts(2, 2, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0"));
      DS_RETURN_IF_ERROR(c.weight_shape(op.ins[1], {op.ins[0].width}, "input 1 (weight)"));
      DS_ASSIGN_OR_RETURN(op.eps, attr_float(attrs, "eps", ctx));
      if (!(op.eps >= 0)) return c.err("eps must be non-negative");
      return c.out(op.outs[0], op.ins[0].width);
    }
    case OpKind::kLinear: {
      // Inputs [x, w, bias?, residual?]; attr residual = 1 when the last one is the residual.
      DS_ASSIGN_OR_RETURN(op.has_residual, residual_attr(attrs, c, ctx));
      const size_t r = op.has_residual ? 1 : 0;
      DS_RETURN_IF_ERROR(c.counts(2 + r, 3 + r, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0"));
      DS_RETURN_IF_ERROR(c.kind(op.ins[1], Val::kWeight, "input 1 (weight)"));
      const auto& ws = op.ins[1].weight->shape;
      if (ws.size() != 2 || ws[1] != op.ins[0].width)
        return c.err(StrCat() << "weight '" << op.ins[1].weight->name << "' has shape " << shape_str(ws)
                              << ", expected [N, " << op.ins[0].width << "]");
      if (op.ins.size() - r == 3) DS_RETURN_IF_ERROR(c.weight_shape(op.ins[2], {ws[0]}, "input 2 (bias)"));
      if (r != 0) DS_RETURN_IF_ERROR(c.residual(op.ins.back(), op.ins.size() - 1, ws[0]));
      DS_ASSIGN_OR_RETURN(std::string quant, attr_string_or(attrs, "quant", "none", ctx));
      if (quant != "none") return c.err("quantization '" + quant + "' is not supported by the CPU executor");
      // Attr prologue (sm_* plans: the GPU may skip the RMSNorm group before this linear in decode
      // steps) does not concern this executor: it runs every group and reads x.
      return c.out(op.outs[0], ws[0]);
    }
    case OpKind::kSlice: {
      DS_RETURN_IF_ERROR(c.counts(1, 1, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0"));
      DS_ASSIGN_OR_RETURN(op.slice_offset, attr_int(attrs, "offset", ctx));
      DS_ASSIGN_OR_RETURN(op.slice_size, attr_int(attrs, "size", ctx));
      if (op.slice_offset < 0 || op.slice_size <= 0 || op.slice_offset + op.slice_size > op.ins[0].width)
        return c.err(StrCat() << "slice [" << op.slice_offset << ", " << op.slice_offset + op.slice_size
                              << ") out of range for " << op.ins[0].width << " columns");
      return c.out(op.outs[0], op.slice_size);
    }
    case OpKind::kRope: {
      DS_RETURN_IF_ERROR(c.counts(2, 2, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0"));
      DS_RETURN_IF_ERROR(c.kind(op.ins[1], Val::kPositions, "input 1"));
      DS_ASSIGN_OR_RETURN(op.rope, rope_params_from_attrs(attrs, ctx));  // errors name ctx = op.where
      const ref::RopeParams& r = op.rope;
      auto tables = ref::rope_tables(r);
      if (!tables.ok()) return c.err(tables.status().message());
      op.rope_tables = std::move(tables).value();
      DS_RETURN_IF_ERROR(c.width(op.ins[0], r.num_heads * r.head_dim, "input 0"));
      return c.out(op.outs[0], op.ins[0].width);
    }
    case OpKind::kKvCacheWrite: {
      DS_RETURN_IF_ERROR(c.counts(2, 2, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0 (k)"));
      DS_RETURN_IF_ERROR(c.kind(op.ins[1], Val::kAct, "input 1 (v)"));
      DS_RETURN_IF_ERROR(c.kind(op.outs[0], Val::kKv, "output 0"));
      DS_ASSIGN_OR_RETURN(op.layer, attr_int(attrs, "layer", ctx));
      if (op.layer != op.outs[0].kv_layer)
        return c.err(StrCat() << "attribute layer=" << op.layer << " but the output is kv_cache layer " << op.outs[0].kv_layer);
      const size_t l = static_cast<size_t>(op.layer);
      DS_RETURN_IF_ERROR(c.width(op.ins[0], kv.num_kv_heads[l] * kv.k_dim[l], "input 0 (k)"));
      return c.width(op.ins[1], kv.num_kv_heads[l] * kv.v_dim[l], "input 1 (v)");
    }
    case OpKind::kPagedAttention: {
      DS_RETURN_IF_ERROR(c.counts(2, 2, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0 (q)"));
      DS_RETURN_IF_ERROR(c.kind(op.ins[1], Val::kKv, "input 1"));
      DS_ASSIGN_OR_RETURN(op.layer, attr_int(attrs, "layer", ctx));
      if (op.layer != op.ins[1].kv_layer)
        return c.err(StrCat() << "attribute layer=" << op.layer << " but input 1 is kv_cache layer " << op.ins[1].kv_layer);
      ref::PagedAttentionParams& a = op.attn;
      DS_ASSIGN_OR_RETURN(a.num_heads, attr_int(attrs, "num_heads", ctx));
      DS_ASSIGN_OR_RETURN(a.num_kv_heads, attr_int(attrs, "num_kv_heads", ctx));
      DS_ASSIGN_OR_RETURN(a.head_dim, attr_int(attrs, "head_dim", ctx));
      DS_ASSIGN_OR_RETURN(a.v_head_dim, attr_int_or(attrs, "v_head_dim", a.head_dim, ctx));
      DS_ASSIGN_OR_RETURN(a.scale, attr_float(attrs, "scale", ctx));
      const size_t l = static_cast<size_t>(op.layer);
      if (a.num_heads <= 0 || a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0)
        return c.err(StrCat() << "num_heads " << a.num_heads << " must be a positive multiple of num_kv_heads " << a.num_kv_heads);
      if (a.num_kv_heads != kv.num_kv_heads[l] || a.head_dim != kv.k_dim[l] || a.v_head_dim != kv.v_dim[l])
        return c.err(StrCat() << "num_kv_heads/head_dim/v_head_dim " << a.num_kv_heads << "/" << a.head_dim << "/"
                              << a.v_head_dim << " do not match kv_cache layer " << l << " (" << kv.num_kv_heads[l] << "/"
                              << kv.k_dim[l] << "/" << kv.v_dim[l] << ")");
      DS_RETURN_IF_ERROR(c.width(op.ins[0], a.num_heads * a.head_dim, "input 0 (q)"));
      return c.out(op.outs[0], a.num_heads * a.v_head_dim);
    }
    case OpKind::kSilu: {
      DS_RETURN_IF_ERROR(c.counts(1, 1, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0"));
      return c.out(op.outs[0], op.ins[0].width);
    }
    case OpKind::kMul:
    case OpKind::kAdd: {
      DS_RETURN_IF_ERROR(c.counts(2, 2, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0"));
      DS_RETURN_IF_ERROR(c.kind(op.ins[1], Val::kAct, "input 1"));
      DS_RETURN_IF_ERROR(c.width(op.ins[1], op.ins[0].width, "input 1"));
      return c.out(op.outs[0], op.ins[0].width);
    }
    case OpKind::kLogits: {
      DS_RETURN_IF_ERROR(c.counts(3, 3, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0"));
      DS_RETURN_IF_ERROR(c.kind(op.ins[2], Val::kLogitRows, "input 2"));
      if (op.outs[0].kind == Val::kAct) {
        // Vocab-parallel lm_head: this rank's [R, rows] part, gathered later.
        DS_RETURN_IF_ERROR(c.kind(op.ins[1], Val::kWeight, "input 1 (weight)"));
        const WeightTensor& w = *op.ins[1].weight;
        if (w.shape.size() != 2 || w.shape[1] != op.ins[0].width)
          return c.err(StrCat() << "input 1 (weight) '" << w.name << "' has shape " << shape_str(w.shape)
                                << ", expected [rows, " << op.ins[0].width << "]");
        op.vocab = w.shape[0];
        op.outs[0].per_logit_row = true;
        return c.out(op.outs[0], w.shape[0]);
      }
      DS_RETURN_IF_ERROR(c.weight_shape(op.ins[1], {vocab, op.ins[0].width}, "input 1 (weight)"));
      return c.kind(op.outs[0], Val::kLogits, "output 0");
    }
    case OpKind::kAllReduce: {
      // Inputs [x, residual?]; attr residual = 1: out = residual + sum over ranks of x.
      DS_ASSIGN_OR_RETURN(op.has_residual, residual_attr(attrs, c, ctx));
      const size_t r = op.has_residual ? 1 : 0;
      DS_RETURN_IF_ERROR(c.counts(1 + r, 1 + r, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0"));
      if (r != 0) {
        DS_RETURN_IF_ERROR(c.residual(op.ins[1], 1, op.ins[0].width));
        if (op.ins[1].per_logit_row != op.ins[0].per_logit_row)
          return c.err("input 1 (residual) and input 0 must both have one row per token or both one per logit row");
      }
      op.outs[0].per_logit_row = op.ins[0].per_logit_row;
      return c.out(op.outs[0], op.ins[0].width);
    }
    case OpKind::kAllGather: {
      DS_RETURN_IF_ERROR(c.counts(1, 1, 1));
      DS_RETURN_IF_ERROR(c.kind(op.ins[0], Val::kAct, "input 0"));
      DS_ASSIGN_OR_RETURN(int64_t axis, attr_int_or(attrs, "axis", -1, ctx));
      if (axis != -1) return c.err(StrCat() << "axis " << axis << " is not supported (only -1, the last dim)");
      const int64_t width = op.ins[0].width * tp.size;
      if (op.outs[0].kind == Val::kLogits) {
        if (!op.ins[0].per_logit_row) return c.err("output 0 (logits) must gather a logits result");
        if (width != vocab)
          return c.err(StrCat() << "gathers " << op.ins[0].width << " x " << tp.size << " ranks = " << width
                                << " logits per row, but the vocabulary has " << vocab);
        return Status::Ok();
      }
      op.outs[0].per_logit_row = op.ins[0].per_logit_row;
      return c.out(op.outs[0], width);
    }
  }
  return c.err("unhandled op");
}

Status PreparedOp::run(const StepContext& ctx) const {
  const int64_t T = ctx.num_tokens;
  Status s;
  switch (kind) {
    case OpKind::kEmbedding: {
      const WeightTensor& w = *ins[1].weight;
      s = vocab_parallel ? ref::embedding_vocab_parallel(ctx.tokens, T, w.data, w.dtype, vocab_start, w.shape[0],
                                                         total_vocab, w.shape[1], outs[0].act)
                         : ref::embedding(ctx.tokens, T, w.data, w.dtype, w.shape[0], w.shape[1], outs[0].act);
      break;
    }
    case OpKind::kRmsNorm:
      s = ref::rms_norm(ins[0].act, T, ins[0].width, ins[1].weight->data, ins[1].weight->dtype, eps, outs[0].act);
      break;
    case OpKind::kLinear: {
      const WeightTensor& w = *ins[1].weight;
      const size_t r = has_residual ? 1 : 0;
      const WeightTensor* b = ins.size() - r == 3 ? ins[2].weight : nullptr;
      s = ref::linear(ins[0].act, w.data, w.dtype, b ? b->data : nullptr, b ? b->dtype : DType::kF32,
                      ref::LinearParams{T, w.shape[1], w.shape[0]}, outs[0].act, has_residual ? ins.back().act : nullptr);
      break;
    }
    case OpKind::kSlice:
      s = ref::slice_cols(ins[0].act, T, ins[0].width, slice_offset, slice_size, outs[0].act);
      break;
    case OpKind::kRope:
      s = ref::rope(ins[0].act, ctx.positions, T, rope, rope_tables, outs[0].act);
      break;
    case OpKind::kKvCacheWrite:
      s = ref::kv_cache_write(ins[0].act, ins[1].act, T, ctx.seqs, ctx.num_seqs, (*ctx.kv_layers)[layer]);
      break;
    case OpKind::kPagedAttention:
      s = ref::paged_attention(ins[0].act, T, ctx.seqs, ctx.num_seqs, (*ctx.kv_layers)[layer], attn, outs[0].act);
      break;
    case OpKind::kSilu:
      ref::silu(ins[0].act, T * ins[0].width, outs[0].act);
      break;
    case OpKind::kMul:
      ref::mul(ins[0].act, ins[1].act, T * ins[0].width, outs[0].act);
      break;
    case OpKind::kAdd:
      ref::add(ins[0].act, ins[1].act, T * ins[0].width, outs[0].act);
      break;
    case OpKind::kLogits: {
      const WeightTensor& w = *ins[1].weight;
      float* out = outs[0].kind == Val::kLogits ? ctx.logits : outs[0].act;
      s = ref::logits(ins[0].act, T, ins[0].width, ctx.logit_rows, ctx.num_logit_rows, w.data, w.dtype, vocab, out);
      break;
    }
    case OpKind::kAllReduce: {
      const int64_t rows = ins[0].per_logit_row ? ctx.num_logit_rows : T;
      const size_t n = static_cast<size_t>(rows * ins[0].width);
      const bool reduce = ctx.comm && ctx.comm->size() > 1;
      const float* res = has_residual ? ins[1].act : nullptr;
      if (res == outs[0].act) {
        // The residual is the output buffer: sum x in scratch, then add it in place.
        scratch.assign(ins[0].act, ins[0].act + n);
        if (reduce) s = ctx.comm->all_reduce_sum(scratch.data(), n);
        if (s.ok()) ref::add(outs[0].act, scratch.data(), static_cast<int64_t>(n), outs[0].act);
        break;
      }
      if (outs[0].act != ins[0].act) std::copy(ins[0].act, ins[0].act + n, outs[0].act);
      if (reduce) s = ctx.comm->all_reduce_sum(outs[0].act, n);
      if (s.ok() && res) ref::add(outs[0].act, res, static_cast<int64_t>(n), outs[0].act);
      break;
    }
    case OpKind::kAllGather: {
      const int64_t rows = ins[0].per_logit_row ? ctx.num_logit_rows : T;
      float* out = outs[0].kind == Val::kLogits ? ctx.logits : outs[0].act;
      if (ctx.comm && ctx.comm->size() > 1)
        s = all_gather_rows(*ctx.comm, ins[0].act, rows, ins[0].width, out, scratch);
      else
        std::copy(ins[0].act, ins[0].act + rows * ins[0].width, out);
      break;
    }
  }
  return s.with_context(where);
}

}  // namespace ds
