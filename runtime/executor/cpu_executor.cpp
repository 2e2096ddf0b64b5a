#include "runtime/executor/cpu_executor.h"

#include "runtime/engine/row_sampler.h"

#include <algorithm>
#include <set>

namespace ds {

Result<std::unique_ptr<CpuExecutor>> CpuExecutor::create(const LoadedPlan& plan, const LoadedWeights& weights,
                                                         KvCache& kv, int64_t token_capacity, Communicator* comm) {
  const plan::Plan& p = plan.plan();
  if (token_capacity <= 0) return Status::Error(StrCat() << "token capacity " << token_capacity << " must be positive");
  if (static_cast<DType>(p.activation_dtype()) != DType::kF32)
    return Status::Error(StrCat() << "plan " << plan.origin() << " has activation dtype "
                                  << dtype_name(static_cast<DType>(p.activation_dtype()))
                                  << "; the CPU executor runs f32 plans (compile with --target cpu)");
  if (weights.size() != (p.weights() ? p.weights()->size() : 0))
    return Status::Error("loaded weights do not belong to this plan");
  if (kv.config().layers.size() != p.kv_cache()->layers()->size())
    return Status::Error("kv cache does not match the plan's kv_cache layout");
  const int tp_size = p.tp_size();
  const int comm_size = comm ? comm->size() : 1;
  if (comm_size != tp_size)
    return Status::Error(StrCat() << "plan " << plan.origin() << " is sharded for " << tp_size
                                  << " tensor-parallel ranks but the executor was given "
                                  << (comm ? "a group of " + std::to_string(comm_size) + " ranks" : std::string("no group")));
  std::unique_ptr<CpuExecutor> e(new CpuExecutor());
  e->kv_ = &kv;
  e->comm_ = comm;
  e->tp_ = TpInfo{comm ? comm->rank() : 0, tp_size};
  e->capacity_ = token_capacity;
  e->vocab_ = p.model()->vocab_size();
  const int64_t arena_bytes = p.arena()->bytes_per_token() * token_capacity;
  e->arena_.assign(static_cast<size_t>((arena_bytes + 3) / 4), 0.0f);
  for (size_t l = 0; l < kv.config().layers.size(); ++l) e->kv_layers_.push_back(kv.layer(l));
  DS_RETURN_IF_ERROR(e->prepare(plan, weights).with_context("plan " + plan.origin()));
  return e;
}

Status CpuExecutor::prepare(const LoadedPlan& plan, const LoadedWeights& weights) {
  const plan::Plan& p = plan.plan();
  KvGeometryView kvg;
  for (const KvLayerGeometry& g : kv_->config().layers) {
    kvg.num_kv_heads.push_back(g.num_kv_heads);
    kvg.k_dim.push_back(g.k_dim);
    kvg.v_dim.push_back(g.v_dim);
  }
  auto* base = reinterpret_cast<uint8_t*>(arena_.data());
  std::set<int> per_logit_row;  // arena buffers holding [num_logit_rows, width] (logits and what follows)
  auto resolve = [&](const plan::ValueRef& r, const std::string& ctx) -> Result<Val> {
    Val v;
    switch (r.kind()) {
      case plan::ValueKind::arena: {
        const plan::Buffer* b = p.arena()->buffers()->Get(r.index());
        if (static_cast<DType>(b->dtype()) != DType::kF32)
          return Status::Error(StrCat() << ctx << ": arena buffer '" << (b->name() ? b->name()->str() : "") << "' is "
                                        << dtype_name(static_cast<DType>(b->dtype())) << ", the CPU executor needs f32");
        v.kind = Val::kAct;
        v.act = reinterpret_cast<float*>(base + b->offset_per_token() * capacity_);
        v.per_logit_row = per_logit_row.count(r.index()) > 0;
        v.width = 1;
        if (b->row_shape())
          for (int64_t d : *b->row_shape()) v.width *= d;
        if (b->bytes_per_token() < v.width * 4)
          return Status::Error(StrCat() << ctx << ": arena buffer too small for its row shape");
        return v;
      }
      case plan::ValueKind::weight:
        v.kind = Val::kWeight;
        v.weight = &weights.get(static_cast<size_t>(r.index()));
        return v;
      case plan::ValueKind::kv_cache:
        v.kind = Val::kKv;
        v.kv_layer = r.index();
        return v;
      case plan::ValueKind::input:
        v.kind = r.index() == 0 ? Val::kTokens : r.index() == 1 ? Val::kPositions : Val::kLogitRows;
        return v;
      case plan::ValueKind::output:
        v.kind = Val::kLogits;
        v.width = vocab_;
        return v;
    }
    return Status::Error(ctx + ": unknown value kind");
  };

  for (size_t i = 0; i < p.program()->size(); ++i) {
    const plan::Instr* ins = p.program()->Get(i);
    const plan::Kernel* k = p.kernels()->Get(ins->kernel());
    const std::string kname = k->name()->str();
    const std::string where = StrCat() << "program[" << i << "] kernel '" << kname << "'";
    std::vector<Val> in_vals, out_vals;
    if (ins->inputs())
      for (size_t j = 0; j < ins->inputs()->size(); ++j) {
        DS_ASSIGN_OR_RETURN(Val v, resolve(*ins->inputs()->Get(j), StrCat() << where << " input " << j));
        in_vals.push_back(v);
      }
    if (ins->outputs())
      for (size_t j = 0; j < ins->outputs()->size(); ++j) {
        DS_ASSIGN_OR_RETURN(Val v, resolve(*ins->outputs()->Get(j), StrCat() << where << " output " << j));
        out_vals.push_back(v);
      }
    Instr instr;
    if (k->kind() == plan::KernelKind::builtin) {
      const std::string opname = k->op()->str();
      PreparedOp op;
      op.where = where + " (" + opname + ")";
      auto kind = op_kind_from_name(opname);
      if (!kind.ok()) return kind.status().with_context(where);
      op.kind = kind.value();
      op.ins = std::move(in_vals);
      op.outs = std::move(out_vals);
      DS_RETURN_IF_ERROR(prepare_op(op, k->attrs(), kvg, vocab_, tp_));
      if (ins->outputs())
        for (size_t j = 0; j < op.outs.size(); ++j)
          if (op.outs[j].kind == Val::kAct && op.outs[j].per_logit_row) per_logit_row.insert(ins->outputs()->Get(j)->index());
      instr.ops.push_back(std::move(op));
      program_.push_back(std::move(instr));
      continue;
    }
    // Fused group: results go straight to the instruction's arena outputs, the
    // remaining values to scratch; kv_cache_write ops take the kv outputs in order.
    const int n = static_cast<int>(k->fused_ops()->size());
    const int nin = k->num_inputs();
    std::vector<int> result_slot(static_cast<size_t>(n), -1);
    const size_t nres = k->results() ? k->results()->size() : 0;
    size_t num_arena_outs = 0;
    for (const Val& v : out_vals) num_arena_outs += v.kind == Val::kAct ? 1 : 0;
    if (num_arena_outs != nres)
      return Status::Error(StrCat() << where << ": fused kernel has " << nres << " results but the instruction has "
                                    << num_arena_outs << " arena outputs");
    for (size_t r = 0; r < nres; ++r) {
      if (out_vals[r].kind != Val::kAct)
        return Status::Error(StrCat() << where << ": output " << r << " must be an arena buffer (results come first)");
      result_slot[k->results()->Get(r)] = static_cast<int>(r);
    }
    size_t next_kv_out = nres;
    std::vector<Val> values(in_vals);  // group inputs, then one per fused op
    for (int f = 0; f < n; ++f) {
      const plan::FusedOp* fo = k->fused_ops()->Get(f);
      const std::string fname = fo->op()->str();
      PreparedOp op;
      op.where = StrCat() << where << " fused_ops[" << f << "] (" << fname << ")";
      auto kind = op_kind_from_name(fname);
      if (!kind.ok()) return kind.status().with_context(op.where);
      op.kind = kind.value();
      if (op.kind == OpKind::kEmbedding || op.kind == OpKind::kLogits || op.kind == OpKind::kPagedAttention ||
          op.kind == OpKind::kAllReduce || op.kind == OpKind::kAllGather)
        return Status::Error(op.where + ": op is not allowed inside a fused group");
      if (fo->operands())
        for (int o : *fo->operands()) op.ins.push_back(values[static_cast<size_t>(o)]);
      int64_t declared = 0;
      if (fo->row_shape() && fo->row_shape()->size() > 0) {
        declared = 1;
        for (int64_t d : *fo->row_shape()) declared *= d;
      }
      Val out;
      if (op.kind == OpKind::kKvCacheWrite) {
        if (next_kv_out >= out_vals.size() || out_vals[next_kv_out].kind != Val::kKv)
          return Status::Error(op.where + ": no kv_cache output left in the instruction for this kv_cache_write");
        out = out_vals[next_kv_out++];
      } else if (result_slot[f] >= 0) {
        out = out_vals[static_cast<size_t>(result_slot[f])];
      } else {
        if (declared <= 0) return Status::Error(op.where + ": missing row_shape");
        scratch_.emplace_back(static_cast<size_t>(declared * capacity_));
        out.kind = Val::kAct;
        out.act = scratch_.back().data();
        out.width = declared;
      }
      op.outs.push_back(out);
      DS_RETURN_IF_ERROR(prepare_op(op, fo->attrs(), kvg, vocab_, tp_));
      if (declared > 0 && op.outs[0].kind == Val::kAct && op.outs[0].width != declared)
        return Status::Error(StrCat() << op.where << ": row_shape has " << declared << " elements but the op produces "
                                      << op.outs[0].width);
      values.push_back(op.outs[0]);
      instr.ops.push_back(std::move(op));
    }
    if (next_kv_out != out_vals.size())
      return Status::Error(StrCat() << where << ": instruction has " << out_vals.size() - next_kv_out
                                    << " kv_cache outputs not written by any kv_cache_write");
    (void)nin;
    program_.push_back(std::move(instr));
  }
  return Status::Ok();
}

Status CpuExecutor::step(const StepBatch& batch, float* logits) {
  if (std::none_of(batch.tokens.begin(), batch.tokens.end(), [](int32_t t) { return t < 0; }))
    return run_step(batch, logits);
  // previous_sample_token(r): the id the last sampling drew for row r.
  StepBatch resolved = batch;
  for (size_t i = 0; i < resolved.tokens.size(); ++i) {
    const int32_t t = resolved.tokens[i];
    if (t >= 0) continue;
    const int64_t row = -1 - static_cast<int64_t>(t);
    if (row >= static_cast<int64_t>(last_ids_.size()))
      return Status::Error(StrCat() << "step token " << i << " has id " << t << ", outside the vocabulary [0, " << vocab_
                                    << ") and not previous_sample_token(r) of one of the " << last_ids_.size()
                                    << " rows the last sampling drew");
    resolved.tokens[i] = last_ids_[static_cast<size_t>(row)];
  }
  return run_step(resolved, logits);
}

Status CpuExecutor::run_step(const StepBatch& batch, float* logits) {
  const int64_t T = batch.num_tokens();
  if (T <= 0 || T > capacity_)
    return Status::Error(StrCat() << "step has " << T << " tokens; the executor takes 1 to " << capacity_);
  if (static_cast<int64_t>(batch.positions.size()) != T)
    return Status::Error(StrCat() << "step has " << T << " tokens but " << batch.positions.size() << " positions");
  if (batch.num_logit_rows() > 0 && !logits) return Status::Error("step asks for logits but no output buffer was given");
  std::vector<ref::AttnSequence> seqs;
  int64_t covered = 0;
  for (const StepSequence& s : batch.sequences) {
    seqs.push_back(ref::AttnSequence{s.first_token, s.num_tokens, s.num_cached, s.page_table.data(),
                                     static_cast<int64_t>(s.page_table.size())});
    covered += s.num_tokens;
  }
  if (covered != T)
    return Status::Error(StrCat() << "step sequences cover " << covered << " tokens but the step has " << T);
  DS_RETURN_IF_ERROR(ref::check_sequences(seqs.data(), static_cast<int64_t>(seqs.size()), T, kv_layers_[0]));
  StepContext ctx;
  ctx.num_tokens = T;
  ctx.tokens = batch.tokens.data();
  ctx.positions = batch.positions.data();
  ctx.logit_rows = batch.logit_rows.data();
  ctx.num_logit_rows = batch.num_logit_rows();
  ctx.logits = logits;
  ctx.seqs = seqs.data();
  ctx.num_seqs = static_cast<int64_t>(seqs.size());
  ctx.kv_layers = &kv_layers_;
  ctx.comm = comm_;
  for (const Instr& instr : program_)
    for (const PreparedOp& op : instr.ops) DS_RETURN_IF_ERROR(op.run(ctx));
  return Status::Ok();
}

Status CpuExecutor::step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                                std::vector<RowSample>* out) {
  if (!queued_.empty())
    return Status::Error(StrCat() << "step_sample: " << queued_.size()
                                  << " pipelined steps are not collected yet (collect_samples)");
  return sample(batch, rows, out);
}

Status CpuExecutor::enqueue_step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows) {
  if (!pipelines_sampling())
    return Status::Error("enqueue_step_sample: the CPU executor pipelines only with set_sample_in_step: use step_sample");
  if (rows.empty() || static_cast<int64_t>(rows.size()) != batch.num_logit_rows())
    return Status::Error(StrCat() << "enqueue_step_sample: " << rows.size() << " sampling rows for "
                                  << batch.num_logit_rows() << " logit rows (at least one is needed)");
  if (queued_.size() == 2) return Status::Error("enqueue_step_sample: 2 steps wait to be collected");
  std::vector<RowSample> out;
  DS_RETURN_IF_ERROR(sample(batch, rows, &out));
  queued_.push_back(std::move(out));
  return Status::Ok();
}

Status CpuExecutor::collect_samples(std::vector<RowSample>* out) {
  if (!out) return Status::Error("collect_samples: no output vector");
  if (queued_.empty()) return Status::Error("collect_samples: nothing is queued");
  *out = std::move(queued_.front());
  queued_.pop_front();
  return Status::Ok();
}

Status CpuExecutor::sample(const StepBatch& batch, const std::vector<RowSampling>& rows, std::vector<RowSample>* out) {
  if (!out) return Status::Error("step_sample: no output vector");
  if (static_cast<int64_t>(rows.size()) != batch.num_logit_rows())
    return Status::Error(StrCat() << "step_sample: " << rows.size() << " row samplings for "
                                  << batch.num_logit_rows() << " logit rows");
  for (size_t i = 0; i < rows.size(); ++i)
    DS_RETURN_IF_ERROR(validate_row_sampling(rows[i], vocab_).with_context(StrCat() << "logit row " << i));
  sample_logits_.resize(static_cast<size_t>(batch.num_logit_rows() * vocab_));
  DS_RETURN_IF_ERROR(step(batch, sample_logits_.data()));
  out->clear();
  out->reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    out->push_back(sample_row(sample_logits_.data() + i * static_cast<size_t>(vocab_), vocab_, rows[i], &sample_scratch_));
  last_ids_.clear();
  for (const RowSample& r : *out) last_ids_.push_back(r.id);
  return Status::Ok();
}

}  // namespace ds
