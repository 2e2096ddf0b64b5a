// CudaExecutor binding of the GEMM-side instructions: linear (bias, fused
// residual, RMSNorm prologue links), logits (vocab-parallel under TP), and the
// collectives all_reduce (optionally with the fused residual) and all_gather.
#include "runtime/dist/cuda/gather_rows.h"
#include "runtime/executor/cuda/cuda_executor_binder.h"

namespace ds::cuda {

// linear: inputs [x, w, bias?, residual?] (attr residual = 1 when the last
// input is the residual: y = x·wᵀ + bias + residual, dscc ds-fuse-residual-add).
Status Binder::linear(const PlanAttrs* attrs, BoundOp& op) {
  DS_ASSIGN_OR_RETURN(int64_t has_residual, attr_int_or(attrs, "residual", 0, where_));
  const size_t r = has_residual != 0 ? 1 : 0;
  DS_RETURN_IF_ERROR(counts(2 + r, 3 + r, 1));
  DS_RETURN_IF_ERROR(act(ins_[0], -1, "input 0"));
  DS_RETURN_IF_ERROR(weight(ins_[1], 2, true, "input 1 (weight)"));
  const auto& s = ins_[1].weight->shape;
  if (s[1] != ins_[0].width)
    return err(StrCat() << "weight '" << ins_[1].name << "' has " << s[1] << " columns, input 0 has " << ins_[0].width);
  const bool has_bias = ins_.size() - r == 3;
  if (has_bias) {
    DS_RETURN_IF_ERROR(weight(ins_[2], 1, true, "input 2 (bias)"));
    if (ins_[2].weight->shape[0] != s[0]) return err(StrCat() << "bias '" << ins_[2].name << "' must have " << s[0] << " elements");
  }
  DS_ASSIGN_OR_RETURN(std::string quant, attr_string_or(attrs, "quant", "none", where_));
  if (quant != "none") return err("quantization '" + quant + "' is not supported by the CUDA executor");
  DS_RETURN_IF_ERROR(act(outs_[0], s[0], "output 0", /*f32_ok=*/true));
  op.kind = BoundOp::Kind::kLinear;
  op.gemm.x = ins_[0].ptr;
  op.gemm.w = ins_[1].ptr;
  op.gemm.bias = has_bias ? ins_[2].ptr : nullptr;
  op.gemm.y = outs_[0].ptr;
  op.gemm.n = s[0];
  op.gemm.k = s[1];
  op.gemm.out_dtype = outs_[0].dtype;  // bf16, or f32 (--proj-out-dtype f32)
  DS_ASSIGN_OR_RETURN(std::string epilogue, attr_string_or(attrs, "epilogue", "", where_));
  if (!epilogue.empty() && epilogue != "swiglu")
    return err("epilogue '" + epilogue + "' is not supported by the CUDA executor");
  op.swiglu_marked = !epilogue.empty() && x_.opt.gemv_swiglu;
  if (r != 0) {
    const Operand& res = ins_.back();
    const std::string role = StrCat() << "input " << ins_.size() - 1 << " (residual)";
    DS_RETURN_IF_ERROR(act(res, s[0], role.c_str(), /*f32_ok=*/true));
    if (res.dtype != outs_[0].dtype)
      return err(StrCat() << role << " '" << res.name << "' is " << dtype_name(res.dtype) << ", output 0 is "
                          << dtype_name(outs_[0].dtype));
    op.gemm.residual = res.ptr;
  }
  return Status::Ok();
}

// Whether program[g] is a group of exactly one rms_norm(input 0, input 1)
// with one result; its input operands and eps when so.
bool Binder::pure_rms_norm(size_t g, NormGroup* out) const {
  const auto k = fused_kernel_.find(g);
  if (k == fused_kernel_.end()) return false;
  const std::vector<Operand>& gin = fused_ins_.at(g);
  const auto* ops = k->second->fused_ops();
  const plan::FusedOp* fo = ops && ops->size() == 1 ? ops->Get(0) : nullptr;
  if (!(fo && fo->op() && fo->op()->str() == "rms_norm" && fo->operands() && fo->operands()->size() == 2 &&
        fo->operands()->Get(0) == 0 && fo->operands()->Get(1) == 1 && k->second->num_inputs() == 2 &&
        k->second->results() && k->second->results()->size() == 1 && gin.size() == 2))
    return false;
  auto eps = attr_float(fo->attrs(), "eps", where_);
  if (!eps.ok()) return false;
  out->src = gin[0];
  out->gamma = gin[1];
  out->eps = static_cast<float>(*eps);
  return true;
}

Status Binder::link_prologue(const PlanAttrs* attrs, BoundOp& op, size_t pos) {
  DS_ASSIGN_OR_RETURN(std::string prologue, attr_string_or(attrs, "prologue", "", where_));
  if (prologue.empty()) return Status::Ok();
  if (prologue != "rms_norm") return err("prologue '" + prologue + "' is not supported by the CUDA executor");
  op.prologue_with_swiglu = !x_.opt.gemv_prologue && x_.opt.gemv_prologue_swiglu && op.swiglu_marked;
  // No prologue here: the norm group runs (or is deferred, CudaExecutorOptions::deferred_norm).
  auto without = [&]() -> Status {
    op.prologue_with_swiglu = false;
    return x_.opt.deferred_norm ? link_deferred_norm(op, pos) : Status::Ok();
  };
  if (!x_.opt.gemv_prologue && !op.prologue_with_swiglu) return without();
  // A plan whose marked linear does not fit: an error when the prologue was
  // asked for (gemv_prologue); under the default gate_up-only form the group
  // simply keeps running.
  auto refuse = [&](const std::string& why) -> Status { return x_.opt.gemv_prologue ? err(why) : without(); };
  // The group that writes x: the last writer of that arena buffer before this linear.
  const auto w = writer_.find(ins_[0].index);
  NormGroup ng;
  if (w == writer_.end() || !pure_rms_norm(w->second, &ng))
    return refuse(StrCat() << "prologue rms_norm: input 0 '" << ins_[0].name
                           << "' is not written by a group of one rms_norm of (input 0, input 1)");
  const size_t g = w->second;
  if (ng.src.kind != Operand::kArena || (ng.src.dtype != DType::kF32 && ng.src.dtype != DType::kBF16) ||
      ng.src.width != op.gemm.k)
    return refuse(StrCat() << "prologue rms_norm: the norm's input '" << ng.src.name
                           << "' must be an f32 or bf16 arena buffer of " << op.gemm.k << " elements per token");
  if (ng.gamma.kind != Operand::kWeight || ng.gamma.dtype != DType::kBF16 || ng.gamma.weight->shape.size() != 1 ||
      ng.gamma.weight->shape[0] != op.gemm.k)
    return refuse(StrCat() << "prologue rms_norm: the norm's weight '" << ng.gamma.name << "' must be bf16 ["
                           << op.gemm.k << "]");
  op.gemm.norm.src = ng.src.ptr;
  op.gemm.norm.src_dtype = ng.src.dtype;
  op.gemm.norm.ld_src = 0;
  op.gemm.norm.gamma = ng.gamma.ptr;
  op.gemm.norm.eps = ng.eps;
  BoundOp& group = x_.program.at(g);
  group.absorbed_by = pos;
  group.absorb = BoundOp::Absorb::kNormPrologue;
  return Status::Ok();
}

// The deferred RMSNorm (CudaExecutorOptions::deferred_norm): L = op (at pos)
// reads x from a pure RMSNorm group G of (h, gamma) that directly follows P, a
// linear writing h (its in-place residual stream). Anything else is left as it
// is (the group runs). P writes x' into x's row while its own input row is
// still being read, so the two must not overlap in the arena (the plan's
// buffer reuse assumes x is born at G): checked for the batch-1 rows it writes.
Status Binder::link_deferred_norm(BoundOp& op, size_t pos) {
  const auto w = writer_.find(ins_[0].index);
  NormGroup ng;
  if (w == writer_.end() || w->second == 0 || !pure_rms_norm(w->second, &ng)) return Status::Ok();
  const size_t g = w->second, pp = g - 1;
  const auto hw = writer_.find(ng.src.index);
  if (ng.src.kind != Operand::kArena || hw == writer_.end() || hw->second != pp) return Status::Ok();
  BoundOp& prod = x_.program.at(pp);
  const DType h_dtype = prod.gemm.out_dtype;
  if (prod.kind != BoundOp::Kind::kLinear || prod.swiglu_marked || prod.norm_consumer != BoundOp::kNone ||
      prod.gemm.y != ng.src.ptr || prod.gemm.n != op.gemm.k || h_dtype != ng.src.dtype ||
      ng.gamma.kind != Operand::kWeight || ng.gamma.dtype != DType::kBF16 || ng.gamma.weight->shape.size() != 1 ||
      ng.gamma.weight->shape[0] != op.gemm.k)
    return Status::Ok();
  auto span = [](const void* p, int64_t bytes) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    return std::pair<uintptr_t, uintptr_t>(a, a + static_cast<uintptr_t>(bytes));
  };
  auto overlap = [](std::pair<uintptr_t, uintptr_t> a, std::pair<uintptr_t, uintptr_t> b) {
    return a.first < b.second && b.first < a.second;
  };
  const auto xo = span(op.gemm.x, op.gemm.k * 2);
  if (overlap(xo, span(prod.gemm.x, prod.gemm.k * 2)) ||
      overlap(xo, span(prod.gemm.y, prod.gemm.n * static_cast<int64_t>(dtype_size(h_dtype)))))
    return Status::Ok();
  const size_t slot = x_.num_norm_slots++;
  prod.norm_consumer = pos;
  prod.norm_out_slot = slot;
  prod.gemm.norm_out.x = const_cast<void*>(op.gemm.x);
  prod.gemm.norm_out.ld_x = 0;
  prod.gemm.norm_out.gamma = ng.gamma.ptr;
  op.norm_producer = pp;
  op.norm_in_slot = slot;
  op.gemm.norm_in.eps = ng.eps;
  BoundOp& group = x_.program.at(g);
  group.absorbed_by = pos;
  group.absorb = BoundOp::Absorb::kDeferredNorm;
  return Status::Ok();
}

// The fused op producing group value `v` (v >= num_inputs), or null.
const plan::FusedOp* fused_value(const plan::Kernel& k, int v) {
  const int j = v - k.num_inputs();
  if (j < 0 || !k.fused_ops() || j >= static_cast<int>(k.fused_ops()->size())) return nullptr;
  return k.fused_ops()->Get(static_cast<flatbuffers::uoffset_t>(j));
}

bool is_fused_op(const plan::FusedOp* f, const char* name, size_t operands) {
  return f && f->op() && f->op()->str() == name && f->operands() && f->operands()->size() == operands;
}

int64_t input_slice_offset(const plan::FusedOp* f, int64_t size) {
  if (!is_fused_op(f, "slice", 1) || f->operands()->Get(0) != 0) return -1;
  const plan::Attr* o = find_attr(f->attrs(), "offset");
  const plan::Attr* n = find_attr(f->attrs(), "size");
  return o && n && n->i() == size && o->i() >= 0 ? o->i() : -1;
}

// A group mul(silu(slice(in, 0, I)), slice(in, I, I)) (either mul operand
// order) reading the output of a linear marked epilogue = swiglu (dscc
// ds-gemv-epilogue): that linear's GEMV can write the group's output.
Status Binder::link_swiglu(const plan::Kernel& k, BoundOp& op, size_t pos) {
  if (k.num_inputs() != 1 || !k.results() || k.results()->size() != 1 || ins_.empty() ||
      ins_[0].kind != Operand::kArena)
    return Status::Ok();
  const auto w = writer_.find(ins_[0].index);
  if (w == writer_.end()) return Status::Ok();
  BoundOp& lin = x_.program.at(w->second);
  if (lin.kind != BoundOp::Kind::kLinear || !lin.swiglu_marked) return Status::Ok();
  const int64_t half = lin.gemm.n / 2;
  const plan::FusedOp* mul = fused_value(k, k.results()->Get(0) + k.num_inputs());
  bool ok = is_fused_op(mul, "mul", 2) && lin.gemm.n % 2 == 0 && lin.gemm.out_dtype == DType::kBF16 &&
            lin.gemm.residual == nullptr;
  if (ok) {
    const plan::FusedOp* a = fused_value(k, mul->operands()->Get(0));
    const plan::FusedOp* b = fused_value(k, mul->operands()->Get(1));
    if (is_fused_op(b, "silu", 1)) std::swap(a, b);
    const plan::FusedOp* gate = is_fused_op(a, "silu", 1) ? fused_value(k, a->operands()->Get(0)) : nullptr;
    ok = gate && input_slice_offset(gate, half) == 0 && input_slice_offset(b, half) == half;
  }
  const Operand& out = outs_.at(0);
  ok = ok && out.kind == Operand::kArena && out.dtype == DType::kBF16 && out.width == half;
  if (!ok)
    return err(StrCat() << "epilogue swiglu: the group reading '" << ins_[0].name
                        << "' is not mul(silu(slice(0, n/2)), slice(n/2, n/2)) into bf16 x n/2");
  lin.gemm.swiglu_out = out.ptr;
  lin.gemm.ld_swiglu = 0;
  op.absorbed_by = w->second;
  op.absorb = BoundOp::Absorb::kSwigluEpilogue;
  return Status::Ok();
}

Status Binder::logits(BoundOp& op) {
  DS_RETURN_IF_ERROR(counts(3, 3, 1));
  DS_RETURN_IF_ERROR(act(ins_[0], -1, "input 0"));
  DS_RETURN_IF_ERROR(weight(ins_[1], 2, true, "input 1 (weight)"));
  if (ins_[2].kind != Operand::kInput || ins_[2].index != 2) return err("input 2 must be step input 2 (logit rows)");
  // Vocab-parallel lm_head (tensor parallelism): [R, vocab / N] f32 into an
  // arena buffer, which the plan's all_gather turns into step output 0.
  const bool sharded = outs_[0].kind == Operand::kArena;
  if (sharded && x_.tp_size == 1)
    return err("output 0 is an arena buffer (vocab-parallel logits) but the executor runs one rank");
  if (!sharded && (outs_[0].kind != Operand::kOutput || outs_[0].index != 0))
    return err("output 0 must be step output 0 or an arena buffer (vocab-parallel logits)");
  if (sharded && x_.vocab % x_.tp_size != 0)
    return err(StrCat() << "vocabulary " << x_.vocab << " does not split over " << x_.tp_size << " ranks");
  const int64_t n = sharded ? x_.vocab / x_.tp_size : x_.vocab;
  if (sharded) {
    if (outs_[0].dtype != DType::kF32 || outs_[0].width != n)
      return err(StrCat() << "output 0 '" << outs_[0].name << "' is " << dtype_name(outs_[0].dtype) << " with "
                          << outs_[0].width << " elements per row, expected f32 with " << n);
    if (x_.opt.max_logit_rows > x_.opt.token_capacity)
      return err("max_logit_rows exceeds the arena's token capacity");
    per_row_.insert(outs_[0].index);
  }
  const auto& s = ins_[1].weight->shape;
  if (s[0] != n || s[1] != ins_[0].width)
    return err(StrCat() << "weight '" << ins_[1].name << "' must be [" << n << ", " << ins_[0].width << "]");
  if (!x_.logit_hidden.data() || x_.hidden_for_logits < ins_[0].width) {
    DS_ASSIGN_OR_RETURN(x_.logit_hidden, DeviceBuffer::allocate(static_cast<size_t>(x_.opt.max_logit_rows * ins_[0].width) * 2));
    x_.hidden_for_logits = ins_[0].width;
  }
  op.kind = BoundOp::Kind::kLogits;
  op.x = ins_[0].ptr;
  op.hidden = ins_[0].width;
  op.gemm.x = x_.logit_hidden.data();
  op.gemm.w = ins_[1].ptr;
  op.gemm.y = sharded ? outs_[0].ptr : x_.logits.data();
  op.gemm.n = n;
  op.gemm.k = ins_[0].width;
  op.gemm.out_dtype = DType::kF32;
  return Status::Ok();
}

// all_reduce: sum over ranks, arena -> arena (same dtype and width); inputs
// [x, residual?] (attr residual = 1: out = residual + sum, dscc ds-fuse-residual-add).
Status Binder::all_reduce(const PlanAttrs* attrs, BoundOp& op) {
  DS_ASSIGN_OR_RETURN(int64_t has_residual, attr_int_or(attrs, "residual", 0, where_));
  const size_t r = has_residual != 0 ? 1 : 0;
  DS_RETURN_IF_ERROR(counts(1 + r, 1 + r, 1));
  const Operand& in = ins_[0];
  const Operand& out = outs_[0];
  if (in.kind != Operand::kArena || out.kind != Operand::kArena)
    return err("input 0 and output 0 must be arena buffers");
  if (in.dtype != out.dtype || in.width != out.width)
    return err(StrCat() << "input '" << in.name << "' (" << dtype_name(in.dtype) << " x " << in.width
                        << ") and output '" << out.name << "' (" << dtype_name(out.dtype) << " x " << out.width
                        << ") differ");
  if (in.dtype != DType::kBF16 && in.dtype != DType::kF16 && in.dtype != DType::kF32)
    return err(StrCat() << "all_reduce of " << dtype_name(in.dtype) << " (bf16, f16, f32 only)");
  op.kind = BoundOp::Kind::kAllReduce;
  op.x = in.ptr;
  op.out = out.ptr;
  op.hidden = in.width;
  op.dtype = in.dtype;
  op.per_logit_row = per_row_.count(in.index) > 0;
  if (op.per_logit_row) per_row_.insert(out.index);
  if (r != 0) {
    const Operand& res = ins_[1];
    if (res.kind != Operand::kArena || res.dtype != in.dtype || res.width != in.width)
      return err(StrCat() << "input 1 (residual) '" << res.name << "' must be an arena buffer of "
                          << dtype_name(in.dtype) << " x " << in.width);
    if (op.per_logit_row || per_row_.count(res.index)) return err("a residual all_reduce of logit rows");
    if (res.ptr == in.ptr) return err("input 1 (residual) is input 0's buffer");
    op.residual = res.ptr;
  }
  return Status::Ok();
}

// all_gather (axis -1): [rows, n] per rank -> [rows, N * n], rank r's columns at r * n;
// into step output 0 (the logits, f32 [R, vocab]) or an arena buffer.
Status Binder::all_gather(const PlanAttrs* attrs, BoundOp& op) {
  DS_RETURN_IF_ERROR(counts(1, 1, 1));
  DS_ASSIGN_OR_RETURN(int64_t axis, attr_int_or(attrs, "axis", -1, where_));
  if (axis != -1) return err(StrCat() << "axis " << axis << " (the CUDA executor gathers axis -1 only)");
  const Operand& in = ins_[0];
  const Operand& out = outs_[0];
  if (in.kind != Operand::kArena) return err("input 0 must be an arena buffer");
  op.kind = BoundOp::Kind::kAllGather;
  op.x = in.ptr;
  op.hidden = in.width;
  op.dtype = in.dtype;
  op.per_logit_row = per_row_.count(in.index) > 0;
  if (out.kind == Operand::kOutput && out.index == 0) {
    if (!op.per_logit_row || in.dtype != DType::kF32 || in.width * x_.tp_size != x_.vocab)
      return err(StrCat() << "gathering '" << in.name << "' into the logits needs f32 logit rows of "
                          << x_.vocab / std::max(1, x_.tp_size) << " elements, got " << dtype_name(in.dtype)
                          << " x " << in.width << (op.per_logit_row ? "" : " (not logit rows)"));
    op.out = x_.logits.data();
  } else if (out.kind == Operand::kArena) {
    if (out.dtype != in.dtype || out.width != in.width * x_.tp_size)
      return err(StrCat() << "output '" << out.name << "' must be " << dtype_name(in.dtype) << " x "
                          << in.width * x_.tp_size);
    op.out = out.ptr;
    if (op.per_logit_row) per_row_.insert(out.index);
  } else {
    return err("output 0 must be step output 0 (logits) or an arena buffer");
  }
  const int64_t rows = op.per_logit_row ? x_.opt.max_logit_rows : x_.opt.token_capacity;
  const size_t scratch = all_gather_rows_scratch_bytes(x_.tp_size, rows, in.width, in.dtype);
  if (scratch > x_.gather_scratch.bytes()) {
    DS_ASSIGN_OR_RETURN(x_.gather_scratch, DeviceBuffer::allocate(scratch));
  }
  return Status::Ok();
}

}  // namespace ds::cuda
