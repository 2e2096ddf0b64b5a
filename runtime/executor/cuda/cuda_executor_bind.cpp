// CudaExecutor: binding every plan instruction to device pointers once
// (builtin ops by name, fused groups to their loaded generated kernel); the
// GEMM-side ops are in cuda_executor_bind_gemm.cpp.
#include <algorithm>
#include <cstdlib>
#include <functional>
#include <string>

#include "runtime/executor/cuda/cuda_executor_binder.h"

namespace ds::cuda {

const char* kind_name(Operand::Kind k) {
  switch (k) {
    case Operand::kArena: return "arena buffer";
    case Operand::kWeight: return "weight";
    case Operand::kKv: return "kv_cache layer";
    case Operand::kInput: return "step input";
    case Operand::kOutput: return "step output";
  }
  return "?";
}

Result<Operand> Binder::resolve(const plan::ValueRef& r, const std::string& ctx) const {
  Operand o;
  switch (r.kind()) {
    case plan::ValueKind::arena: {
      const plan::Buffer* b = p_.arena()->buffers()->Get(r.index());
      o.kind = Operand::kArena;
      o.index = static_cast<int>(r.index());
      o.dtype = static_cast<DType>(b->dtype());
      o.name = b->name() ? b->name()->str() : "";
      o.ptr = static_cast<uint8_t*>(x_.arena.data()) + b->offset_per_token() * x_.opt.token_capacity;
      o.width = 1;
      if (b->row_shape())
        for (int64_t d : *b->row_shape()) o.width *= d;
      if (b->bytes_per_token() < o.width * static_cast<int64_t>(dtype_size(o.dtype)))
        return Status::Error(StrCat() << ctx << ": arena buffer '" << o.name << "' too small for its row shape");
      return o;
    }
    case plan::ValueKind::weight: {
      o.kind = Operand::kWeight;
      o.weight = &w_.at(static_cast<size_t>(r.index()));
      o.ptr = o.weight->data;
      o.dtype = o.weight->dtype;
      o.name = o.weight->name;
      return o;
    }
    case plan::ValueKind::kv_cache:
      o.kind = Operand::kKv;
      o.index = r.index();
      return o;
    case plan::ValueKind::input:
      o.kind = Operand::kInput;
      o.index = r.index();
      o.dtype = DType::kI32;
      o.ptr = r.index() == 0 ? x_.m.tokens : r.index() == 1 ? x_.m.positions : x_.m.logit_rows;
      return o;
    case plan::ValueKind::output:
      o.kind = Operand::kOutput;
      o.index = r.index();
      return o;
  }
  return Status::Error(ctx + ": unknown value kind");
}

Status Binder::bind_all() {
  for (size_t i = 0; i < p_.program()->size(); ++i) {
    const plan::Instr* ins = p_.program()->Get(static_cast<flatbuffers::uoffset_t>(i));
    const plan::Kernel* k = p_.kernels()->Get(ins->kernel());
    const std::string kname = k->name() ? k->name()->str() : "";
    where_ = StrCat() << "program[" << i << "] kernel '" << kname << "'";
    ins_.clear();
    outs_.clear();
    if (ins->inputs())
      for (size_t j = 0; j < ins->inputs()->size(); ++j) {
        DS_ASSIGN_OR_RETURN(Operand o, resolve(*ins->inputs()->Get(j), StrCat() << where_ << " input " << j));
        ins_.push_back(o);
      }
    if (ins->outputs())
      for (size_t j = 0; j < ins->outputs()->size(); ++j) {
        DS_ASSIGN_OR_RETURN(Operand o, resolve(*ins->outputs()->Get(j), StrCat() << where_ << " output " << j));
        outs_.push_back(o);
      }
    BoundOp op;
    op.name = kname;
    if (k->kind() == plan::KernelKind::builtin) {
      const std::string opname = k->op() ? k->op()->str() : "";
      op.where = where_ + " (" + opname + ")";
      where_ = op.where;
      if (opname == "embedding") DS_RETURN_IF_ERROR(embedding(k->attrs(), op));
      else if (opname == "linear") DS_RETURN_IF_ERROR(linear(k->attrs(), op));
      else if (opname == "logits") DS_RETURN_IF_ERROR(logits(op));
      else if (opname == "paged_attention") DS_RETURN_IF_ERROR(attention(k->attrs(), op));
      else if (opname == "all_reduce") DS_RETURN_IF_ERROR(all_reduce(k->attrs(), op));
      else if (opname == "all_gather") DS_RETURN_IF_ERROR(all_gather(k->attrs(), op));
      else return err("op '" + opname + "' is not supported by the CUDA executor");
    } else {
      op.where = where_ + " (fused)";
      where_ = op.where;
      DS_RETURN_IF_ERROR(fused(*k, op));
      fused_ins_[i] = ins_;
      fused_kernel_[i] = k;
      DS_RETURN_IF_ERROR(link_swiglu(*k, op, i));
    }
    if (op.kind == BoundOp::Kind::kLinear) DS_RETURN_IF_ERROR(link_prologue(k->attrs(), op, i));
    if (op.kind == BoundOp::Kind::kAttention) DS_RETURN_IF_ERROR(link_attention_rope(k->attrs(), op, i));
    // Only collectives may read the logit rows' buffers (they have R rows, not T).
    if (op.kind != BoundOp::Kind::kAllReduce && op.kind != BoundOp::Kind::kAllGather)
      for (size_t j = 0; j < ins_.size(); ++j)
        if (ins_[j].kind == Operand::kArena && per_row_.count(ins_[j].index))
          return err(StrCat() << "input " << j << " '" << ins_[j].name
                              << "' holds logit rows; only all_reduce/all_gather may read it");
    for (const Operand& o : outs_)
      if (o.kind == Operand::kArena) writer_[o.index] = i;
    x_.program.push_back(std::move(op));
  }
  return Status::Ok();
}

Status Binder::counts(size_t in_min, size_t in_max, size_t outs) const {
  if (ins_.size() < in_min || ins_.size() > in_max || outs_.size() != outs)
    return err(StrCat() << "has " << ins_.size() << " inputs and " << outs_.size() << " outputs, expected "
                        << in_min << (in_max != in_min ? "-" + std::to_string(in_max) : "") << " and " << outs);
  return Status::Ok();
}
Status Binder::act(const Operand& o, int64_t width, const char* role, bool f32_ok) const {
  if (o.kind != Operand::kArena) return err(StrCat() << role << " must be an arena buffer, got a " << kind_name(o.kind));
  if (o.dtype != DType::kBF16 && !(f32_ok && o.dtype == DType::kF32))
    return err(StrCat() << role << " '" << o.name << "' is " << dtype_name(o.dtype) << ", expected bf16"
                        << (f32_ok ? " or f32" : ""));
  if (width >= 0 && o.width != width)
    return err(StrCat() << role << " '" << o.name << "' has " << o.width << " elements per token, expected " << width);
  return Status::Ok();
}
Status Binder::weight(const Operand& o, size_t rank, bool bf16_only, const char* role) const {
  if (o.kind != Operand::kWeight) return err(StrCat() << role << " must be a weight, got a " << kind_name(o.kind));
  if (o.weight->shape.size() != rank) return err(StrCat() << role << " '" << o.name << "' must be " << rank << "-D");
  if (bf16_only && o.dtype != DType::kBF16)
    return err(StrCat() << role << " '" << o.name << "' is " << dtype_name(o.dtype) << "; the CUDA GEMM needs bf16");
  if (!bf16_only && o.dtype != DType::kBF16 && o.dtype != DType::kF16 && o.dtype != DType::kF32)
    return err(StrCat() << role << " '" << o.name << "' is " << dtype_name(o.dtype) << ", expected a float dtype");
  return Status::Ok();
}

Status Binder::embedding(const PlanAttrs* attrs, BoundOp& op) const {
  DS_RETURN_IF_ERROR(counts(2, 2, 1));
  if (ins_[0].kind != Operand::kInput || ins_[0].index != 0) return err("input 0 must be step input 0 (token ids)");
  DS_RETURN_IF_ERROR(weight(ins_[1], 2, false, "input 1 (table)"));
  DS_ASSIGN_OR_RETURN(int64_t vp, attr_int_or(attrs, "vocab_parallel", 0, where_));
  const auto& s = ins_[1].weight->shape;
  if (vp == 0 && s[0] != x_.vocab)
    return err(StrCat() << "table '" << ins_[1].name << "' has " << s[0] << " rows, the vocabulary " << x_.vocab);
  // Vocab-parallel: this rank's table covers ids [rank * rows, (rank + 1) * rows).
  if (vp != 0 && s[0] * x_.tp_size != x_.vocab)
    return err(StrCat() << "vocab-parallel table '" << ins_[1].name << "' has " << s[0] << " rows per rank x "
                        << x_.tp_size << " ranks, the vocabulary " << x_.vocab);
  op.vocab_start = vp != 0 ? static_cast<int64_t>(x_.tp_rank) * s[0] : 0;
  DS_RETURN_IF_ERROR(act(outs_[0], s[1], "output 0"));
  op.kind = BoundOp::Kind::kEmbedding;
  op.table = ins_[1].ptr;
  op.table_dtype = ins_[1].dtype;
  op.table_rows = s[0];
  op.hidden = s[1];
  op.out = outs_[0].ptr;
  return Status::Ok();
}

Status Binder::attention(const PlanAttrs* attrs, BoundOp& op) {
  DS_RETURN_IF_ERROR(counts(2, 2, 1));
  if (ins_[1].kind != Operand::kKv) return err("input 1 must be a kv_cache layer");
  DS_ASSIGN_OR_RETURN(int64_t layer, attr_int(attrs, "layer", where_));
  if (layer != ins_[1].index)
    return err(StrCat() << "attribute layer=" << layer << " but input 1 is kv_cache layer " << ins_[1].index);
  DS_ASSIGN_OR_RETURN(int64_t nh, attr_int(attrs, "num_heads", where_));
  DS_ASSIGN_OR_RETURN(int64_t nkv, attr_int(attrs, "num_kv_heads", where_));
  DS_ASSIGN_OR_RETURN(int64_t hd, attr_int(attrs, "head_dim", where_));
  DS_ASSIGN_OR_RETURN(int64_t vhd, attr_int_or(attrs, "v_head_dim", hd, where_));
  DS_ASSIGN_OR_RETURN(double scale, attr_float(attrs, "scale", where_));
  const KvLayerGeometry& g = x_.kv->config().layers.at(static_cast<size_t>(layer));
  if (nh <= 0 || nkv <= 0 || nh % nkv != 0)
    return err(StrCat() << "num_heads " << nh << " must be a positive multiple of num_kv_heads " << nkv);
  if (nkv != g.num_kv_heads || hd != g.k_dim || vhd != g.v_dim)
    return err(StrCat() << "num_kv_heads/head_dim/v_head_dim " << nkv << "/" << hd << "/" << vhd
                        << " do not match kv_cache layer " << layer);
  DS_RETURN_IF_ERROR(act(ins_[0], nh * hd, "input 0 (q)"));
  DS_RETURN_IF_ERROR(act(outs_[0], nh * vhd, "output 0"));
  op.kind = BoundOp::Kind::kAttention;
  op.q = ins_[0].ptr;
  op.out = outs_[0].ptr;
  op.layer = static_cast<int>(layer);
  op.attn.num_heads = static_cast<int>(nh);
  op.attn.num_kv_heads = static_cast<int>(nkv);
  op.attn.head_dim = static_cast<int>(hd);
  op.attn.v_head_dim = static_cast<int>(vhd);
  op.attn.page_size = static_cast<int>(x_.page_size);
  op.attn.scale = static_cast<float>(scale);
  size_t ws = 0;
  for (int64_t bound : x_.kv_buckets)
    ws = std::max(ws, paged_attention_workspace_bytes(op.attn, static_cast<int>(x_.opt.max_seqs),
                                                      static_cast<int>(x_.opt.token_capacity), static_cast<int>(bound)));
  if (ws > x_.attn_workspace.bytes()) {
    DS_ASSIGN_OR_RETURN(x_.attn_workspace, DeviceBuffer::allocate(ws));
    DS_RETURN_IF_ERROR(x_.attn_workspace.zero());  // split arrival counters start at zero
  }
  return Status::Ok();
}

Status Binder::fused(const plan::Kernel& k, BoundOp& op) {
  const plan::GeneratedKernel* gen = k.generated();
  if (!gen || !gen->entry() || !gen->source()) return err("fused group has no generated CUDA kernel");
  if (static_cast<int>(ins_.size()) != k.num_inputs())
    return err(StrCat() << "instruction has " << ins_.size() << " inputs, the group " << k.num_inputs());
  const size_t nres = k.results() ? k.results()->size() : 0;
  size_t nwrites = 0;
  if (k.fused_ops())
    for (const plan::FusedOp* fo : *k.fused_ops()) nwrites += fo->op() && fo->op()->str() == "kv_cache_write";
  if (outs_.size() != nres + nwrites)
    return err(StrCat() << "instruction has " << outs_.size() << " outputs, the group " << nres << " results and "
                        << nwrites << " kv_cache_write ops");
  for (size_t j = 0; j < ins_.size(); ++j) {
    const Operand& o = ins_[j];
    if (o.kind == Operand::kKv || o.kind == Operand::kOutput)
      return err(StrCat() << "input " << j << " is a " << kind_name(o.kind) << ", not allowed for a fused kernel");
    op.pointers.push_back(o.ptr);
  }
  for (size_t r = 0; r < nres; ++r) {
    if (outs_[r].kind != Operand::kArena) return err(StrCat() << "output " << r << " must be an arena buffer");
    op.pointers.push_back(outs_[r].ptr);
  }
  for (size_t j = nres; j < outs_.size(); ++j) {
    if (outs_[j].kind != Operand::kKv) return err(StrCat() << "output " << j << " must be a kv_cache layer");
    const size_t l = static_cast<size_t>(outs_[j].index);
    op.pointers.push_back(x_.k_pools.at(l).data());
    op.pointers.push_back(x_.v_pools.at(l).data());
  }
  const std::string key = gen->entry()->str() + "/" + (gen->arch() ? gen->arch()->str() : "") + "/" +
                          std::to_string(std::hash<std::string_view>{}(gen->source()->string_view()));
  auto it = x_.kernels.find(key);
  if (it == x_.kernels.end()) {
    LoadedKernel::Options lo;
    lo.device = x_.opt.device;
    auto loaded = LoadedKernel::load(*gen, k.name() ? k.name()->str() : gen->entry()->str(), lo);
    if (!loaded.ok()) return loaded.status().with_context(where_);
    it = x_.kernels.emplace(key, std::move(loaded).value()).first;
  }
  op.kind = BoundOp::Kind::kFused;
  op.kernel = &it->second;
  return Status::Ok();
}

Status CudaExecutor::Impl::bind(const std::vector<DeviceTensor>& weights) {
  Binder b(*this, weights);
  DS_RETURN_IF_ERROR(b.bind_all());
  mark_weight_prefetch();
  if (num_norm_slots > 0) {  // the deferred-norm pairs' slots, zeroed
    DS_ASSIGN_OR_RETURN(norm_slots, DeviceBuffer::allocate(num_norm_slots * sizeof(DeferredNormSlot)));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(norm_slots.data(), 0, norm_slots.bytes()));
    DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
    auto* slots = static_cast<DeferredNormSlot*>(norm_slots.data());
    for (BoundOp& op : program) {
      if (op.norm_out_slot != BoundOp::kNone) op.gemm.norm_out.slot = slots + op.norm_out_slot;
      if (op.norm_in_slot != BoundOp::kNone) op.gemm.norm_in.slot = slots + op.norm_in_slot;
    }
  }
  return Status::Ok();
}

// Opt-in (DSRT_GEMV_PREFETCH_BEFORE_AR=1): the row-parallel linears (o_proj,
// down_proj) that feed an all-reduce under tensor parallelism prefetch their own
// weights into L2 (GemmArgs::prefetch_weights). H200 x2 hosts, 32B TP 2 decode
// (docs/PERF.md, session 8): +4% on one host (95.5 / 95.4 vs 91.7 / 91.5 tok/s),
// -1.5% on another (95.5 / 95.6 vs 96.6 / 97.3); the same prefetch on the
// unsharded down_proj lost 5-8% (7B, 32B). Off until it wins consistently.
// Groups that another instruction absorbs do not launch and are skipped when
// looking for the next instruction.
void CudaExecutor::Impl::mark_weight_prefetch() {
  static const bool on = [] {
    const char* e = std::getenv("DSRT_GEMV_PREFETCH_BEFORE_AR");
    return e && std::string(e) == "1";
  }();
  BoundOp* last_linear = nullptr;
  for (BoundOp& op : program) {
    if (op.kind == BoundOp::Kind::kFused && op.absorbed_by != BoundOp::kNone) continue;
    if (op.kind == BoundOp::Kind::kAllReduce && last_linear != nullptr) last_linear->gemm.prefetch_weights = on;
    last_linear = op.kind == BoundOp::Kind::kLinear ? &op : nullptr;
  }
}

}  // namespace ds::cuda
