// CudaExecutor: step validation, packing + upload of the step description,
// the program's launches, device sampling (CUDA-graph capture and the step
// launch: cuda_executor_graphs.cpp).
#include <algorithm>
#include <chrono>
#include <numeric>

#include "kernels/cuda/gemm/add_residual.h"
#include "kernels/cuda/gemm/gather.h"
#include "runtime/dist/cuda/gather_rows.h"
#include "runtime/executor/cuda/executor_impl.h"

namespace ds::cuda {
namespace {

// Host checks of a step (O(T + pages)); returns the sequences in token order.
Result<std::vector<const StepSequence*>> check_batch(const StepBatch& b, const CudaExecutor::Impl& x) {
  const int64_t T = b.num_tokens();
  if (T <= 0 || T > x.opt.token_capacity)
    return Status::Error(StrCat() << "step has " << T << " tokens; the executor takes 1 to " << x.opt.token_capacity);
  if (static_cast<int64_t>(b.positions.size()) != T)
    return Status::Error(StrCat() << "step has " << T << " tokens but " << b.positions.size() << " positions");
  if (b.num_logit_rows() > x.opt.max_logit_rows)
    return Status::Error(StrCat() << "step asks for " << b.num_logit_rows() << " logit rows; the executor takes at most "
                                  << x.opt.max_logit_rows);
  const int64_t S = static_cast<int64_t>(b.sequences.size());
  if (S <= 0 || S > x.opt.max_seqs)
    return Status::Error(StrCat() << "step has " << S << " sequences; the executor takes 1 to " << x.opt.max_seqs);
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = b.tokens[t];
    if (id < 0 && -1 - static_cast<int64_t>(id) < x.last_sample_rows) continue;  // previous_sample_token(row)
    if (id < 0)
      return Status::Error(StrCat() << "step token " << t << " has id " << id << ", outside the vocabulary [0, "
                                    << x.vocab << ") and not previous_sample_token(r) of one of the "
                                    << x.last_sample_rows << " rows the last device sampling drew");
    if (id >= x.vocab)
      return Status::Error(StrCat() << "step token " << t << " has id " << id << ", outside the vocabulary [0, "
                                    << x.vocab << ")");
    if (b.positions[t] < 0) return Status::Error(StrCat() << "step token " << t << " has position " << b.positions[t]);
  }
  for (int64_t r = 0; r < b.num_logit_rows(); ++r)
    if (b.logit_rows[r] < 0 || b.logit_rows[r] >= T)
      return Status::Error(StrCat() << "logit row " << r << " = " << b.logit_rows[r] << " is outside the step's " << T
                                    << " tokens");
  std::vector<const StepSequence*> seqs;
  for (const StepSequence& s : b.sequences) seqs.push_back(&s);
  std::stable_sort(seqs.begin(), seqs.end(),
                   [](const StepSequence* a, const StepSequence* c) { return a->first_token < c->first_token; });
  int64_t covered = 0;
  for (const StepSequence* s : seqs) {
    const int64_t i = s - b.sequences.data();
    if (s->num_tokens < 0 || s->num_cached < 0)
      return Status::Error(StrCat() << "sequence " << i << " has " << s->num_tokens << " tokens and " << s->num_cached
                                    << " cached");
    if (s->num_tokens > 0 && s->first_token != covered)
      return Status::Error(StrCat() << "sequence " << i << " starts at step token " << s->first_token << ", expected "
                                    << covered << " (sequences must cover the step's tokens without gaps or overlap)");
    covered += s->num_tokens;
    const int64_t history = s->num_cached + s->num_tokens;
    if (history > x.opt.max_model_len)
      return Status::Error(StrCat() << "sequence " << i << " has " << history << " tokens of history; max_model_len is "
                                    << x.opt.max_model_len);
    const int64_t need = (history + x.page_size - 1) / x.page_size;
    if (static_cast<int64_t>(s->page_table.size()) < need)
      return Status::Error(StrCat() << "sequence " << i << ": " << history << " tokens need " << need
                                    << " pages but its page table has " << s->page_table.size());
    for (int64_t p = 0; p < need; ++p)
      if (s->page_table[p] < 0 || s->page_table[p] >= x.kv->num_pages())
        return Status::Error(StrCat() << "sequence " << i << ": page table entry " << p << " = " << s->page_table[p]
                                      << " is outside the pool [0, " << x.kv->num_pages() << ")");
  }
  if (covered != T)
    return Status::Error(StrCat() << "step sequences cover " << covered << " tokens but the step has " << T);
  return seqs;
}

}  // namespace

Result<StepShape> CudaExecutor::Impl::upload(const StepBatch& b, int64_t padded) {
  DS_RETURN_IF_ERROR(wait_staging());
  std::vector<const StepSequence*> seqs;
  {
    auto checked = check_batch(b, *this);
    if (!checked.ok()) return checked.status();
    seqs = std::move(checked).value();
  }
  const int64_t S_real = static_cast<int64_t>(seqs.size()), T_real = b.num_tokens(), R_real = b.num_logit_rows();
  const int64_t S = padded > 0 ? padded : S_real;
  const int64_t T = padded > 0 ? padded : T_real;
  const int64_t R = padded > 0 ? padded : R_real;
  int64_t P = 0;
  for (const StepSequence* s : seqs) P += (s->num_cached + s->num_tokens + page_size - 1) / page_size;
  P += S - S_real;
  const size_t words = packed_step_words(T, R, S, P);
  if (words * sizeof(int32_t) > staging.bytes())
    return Status::Error(StrCat() << "internal: packed step of " << words << " words exceeds the staging buffer");
  const PackedStep v = begin_packed_step(static_cast<int32_t*>(staging.data()), T, R, S, S_real, P);
  int32_t *tok = v.tokens, *pos = v.positions, *rows = v.logit_rows, *qs = v.q_start, *kvl = v.kv_len,
          *ps = v.page_start, *pages = v.pages;
  std::copy(b.tokens.begin(), b.tokens.end(), tok);
  std::copy(b.positions.begin(), b.positions.end(), pos);
  std::fill(tok + T_real, tok + T, 0);
  std::fill(pos + T_real, pos + T, 0);
  std::copy(b.logit_rows.begin(), b.logit_rows.end(), rows);
  for (int64_t r = R_real; r < R; ++r) rows[r] = static_cast<int32_t>(r);  // padding rows: any valid row
  StepShape shape;
  shape.num_tokens = T;
  shape.num_logit_rows = R;
  shape.num_seqs = S;
  int64_t q = 0, np = 0;
  for (int64_t s = 0; s < S; ++s) {
    qs[s] = static_cast<int32_t>(q);
    ps[s] = static_cast<int32_t>(np);
    if (s < S_real) {
      const StepSequence& sq = *seqs[static_cast<size_t>(s)];
      const int64_t hist = sq.num_cached + sq.num_tokens, need = (hist + page_size - 1) / page_size;
      kvl[s] = static_cast<int32_t>(hist);
      std::copy(sq.page_table.begin(), sq.page_table.begin() + need, pages + np);
      q += sq.num_tokens;
      np += need;
      shape.max_q_len = std::max(shape.max_q_len, sq.num_tokens);
      shape.max_kv_len = std::max(shape.max_kv_len, hist);
    } else {  // padding: one token attending one key on the executor's scratch page, never stored
      kvl[s] = 1;
      pages[np++] = scratch_page;
      q += 1;
      shape.max_q_len = std::max<int64_t>(shape.max_q_len, 1);
      shape.max_kv_len = std::max<int64_t>(shape.max_kv_len, 1);
    }
  }
  qs[S] = static_cast<int32_t>(q);
  ps[S] = static_cast<int32_t>(np);
  DS_CHECK(q == T && np == P, "packed step: " << q << " rows / " << np << " pages, expected " << T << " / " << P);
  // Decode steps launch attention with the KV-length bucket's bound, as the graphs
  // are captured: the same batch gives bit-identical results with or without graphs.
  if (shape.max_q_len <= 1) shape.max_kv_len = kv_buckets[kv_bucket(shape.max_kv_len)];
  DS_RETURN_IF_ERROR(copy_staging(words));
  DS_RETURN_IF_ERROR(staging_done.record(stream));
  staging_pending = true;
  return shape;
}

Status CudaExecutor::Impl::run_program(const StepShape& sh) {
  cudaStream_t st = stream.get();
  const bool prof = profiler && profiler->active;
  // The deferred-norm pairs' slots start every batch-1 step at zero (their P linears add into them).
  if (num_norm_slots > 0 && sh.num_tokens <= kDeferredNormMaxM && sh.num_tokens > 0)
    DS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(norm_slots.data(), 0, norm_slots.bytes(), st));
  for (size_t i = 0; i < program.size(); ++i) {
    const BoundOp& op = program[i];
    if (prof) DS_RETURN_IF_ERROR(profiler->before(i, st));
    Status s;
    switch (op.kind) {
      case BoundOp::Kind::kEmbedding:
        s = embedding_gather(m.tokens, sh.num_tokens, op.table, op.table_dtype, op.vocab_start, op.table_rows,
                             op.hidden, op.out, st);
        break;
      case BoundOp::Kind::kLinear:
        s = gemm->run(linear_args(op, sh.num_tokens), st);
        break;
      case BoundOp::Kind::kLogits: {
        if (sh.num_logit_rows == 0) break;
        s = gather_rows(op.x, op.hidden, 2, m.logit_rows, sh.num_logit_rows, logit_hidden.data(), st);
        if (!s.ok()) break;
        GemmArgs a = op.gemm;
        a.x = logit_hidden.data();
        a.m = sh.num_logit_rows;
        s = gemm->run(a, st);
        break;
      }
      case BoundOp::Kind::kAttention: {
        PagedAttentionBatch pb;
        pb.num_seqs = static_cast<int>(sh.num_seqs);
        pb.q_start = m.q_start;
        pb.kv_len = m.kv_len;
        pb.page_table = m.page_table;
        pb.page_table_stride = m.page_table_stride;
        pb.num_tokens = static_cast<int>(sh.num_tokens);
        pb.max_q_len = static_cast<int>(sh.max_q_len);
        pb.max_kv_len = static_cast<int>(sh.max_kv_len);
        void* kp = k_pools[static_cast<size_t>(op.layer)].data();
        void* vp = v_pools[static_cast<size_t>(op.layer)].data();
        if (attention_rope_on(op, sh)) {  // the rope + KV-write group before it was not launched
          PagedAttentionRope r = op.rope;
          r.k_cache = kp;
          r.v_cache = vp;
          r.slots = m.slot_mapping;
          s = paged_attention(op.rope_q, op.rope_q_ld, kp, vp, op.out, op.attn, pb, attn_workspace.data(),
                              attn_workspace.bytes(), st, &r);
        } else {
          s = paged_attention(op.q, 0, kp, vp, op.out, op.attn, pb, attn_workspace.data(), attn_workspace.bytes(), st);
        }
        break;
      }
      case BoundOp::Kind::kFused:
        // A group that another instruction computes in this step (BoundOp::absorbed_by) is not launched.
        if (op.absorbed_by != BoundOp::kNone && absorbs(op, sh)) break;
        s = op.kernel->launch(st, sh.num_tokens, m.args, op.pointers);
        break;
      case BoundOp::Kind::kAllReduce: {
        // Every rank runs the same (padded) step, so the row counts agree.
        const int64_t rows = op.per_logit_row ? sh.num_logit_rows : sh.num_tokens;
        const size_t n = static_cast<size_t>(rows * op.hidden);
        s = all_reduce(op, rows, st);
        break;
      }
      case BoundOp::Kind::kAllGather: {
        const int64_t rows = op.per_logit_row ? sh.num_logit_rows : sh.num_tokens;
        if (comm) {
          s = all_gather_rows(*comm, op.x, op.dtype, rows, op.hidden, op.out, gather_scratch.data(), st);
        } else if (rows > 0) {
          const cudaError_t e = cudaMemcpyAsync(op.out, op.x, static_cast<size_t>(rows * op.hidden) * dtype_size(op.dtype),
                                                cudaMemcpyDeviceToDevice, st);
          if (e != cudaSuccess) s = cuda_error_status(e, "cudaMemcpyAsync(all_gather, one rank)", __FILE__, __LINE__);
        }
        break;
      }
    }
    if (!s.ok()) return s.with_context(op.where);
    if (prof) DS_RETURN_IF_ERROR(profiler->after(i, st));
  }
  return Status::Ok();
}

constexpr int64_t kSwigluEpilogueMaxRows = 1;

namespace {

// op's GEMM arguments at m rows with its prologue / epilogue resolved, without the deferred norm.
GemmArgs base_linear_args(const BoundOp& op, int64_t m, const GemmRunner& gemm) {
  GemmArgs a = op.gemm;
  a.m = m;
  a.norm_out = DeferredNormOut{};
  a.norm_in = DeferredNormIn{};
  if (a.norm.src != nullptr && !gemm.supports_norm_prologue(a)) a.norm = NormPrologue{};
  if (a.norm.src != nullptr && op.prologue_with_swiglu &&
      (a.swiglu_out == nullptr || m > kSwigluEpilogueMaxRows || !gemm.supports_swiglu_epilogue(a)))
    a.norm = NormPrologue{};
  // The SwiGLU epilogue only at batch 1: at m = 2 the timed plain choice is often
  // cuBLASLt, which beats the epilogue GEMV by more than the SiLU*mul launch it
  // saves (H200, TP 2 32B gate_up: 68.7 us + the group vs 83.1 us; docs/PERF.md).
  if (a.swiglu_out != nullptr && (m > kSwigluEpilogueMaxRows || !gemm.supports_swiglu_epilogue(a)))
    a.swiglu_out = nullptr;
  return a;
}

}  // namespace

bool CudaExecutor::Impl::deferred_norm_on(const BoundOp& producer, const BoundOp& consumer, int64_t m) const {
  if (m > kDeferredNormMaxM) return false;
  GemmArgs pa = base_linear_args(producer, m, *gemm);
  pa.norm_out = producer.gemm.norm_out;
  GemmArgs la = base_linear_args(consumer, m, *gemm);
  la.norm_in = consumer.gemm.norm_in;
  return gemm->supports_deferred_norm(pa) && gemm->supports_deferred_norm(la);
}

GemmArgs CudaExecutor::Impl::linear_args(const BoundOp& op, int64_t m) const {
  GemmArgs a = base_linear_args(op, m, *gemm);
  if (op.norm_consumer != BoundOp::kNone && deferred_norm_on(op, program[op.norm_consumer], m))
    a.norm_out = op.gemm.norm_out;
  if (op.norm_producer != BoundOp::kNone && deferred_norm_on(program[op.norm_producer], op, m))
    a.norm_in = op.gemm.norm_in;
  return a;
}

bool CudaExecutor::Impl::absorbs(const BoundOp& group, const StepShape& sh) const {
  const BoundOp& by = program[group.absorbed_by];
  switch (group.absorb) {
    case BoundOp::Absorb::kNormPrologue: return linear_args(by, sh.num_tokens).norm.src != nullptr;
    case BoundOp::Absorb::kSwigluEpilogue: return linear_args(by, sh.num_tokens).swiglu_out != nullptr;
    case BoundOp::Absorb::kAttentionRope: return attention_rope_on(by, sh);
    case BoundOp::Absorb::kDeferredNorm: return deferred_norm_on(program[by.norm_producer], by, sh.num_tokens);
    case BoundOp::Absorb::kNone: break;
  }
  return false;
}

bool CudaExecutor::Impl::attention_rope_on(const BoundOp& op, const StepShape& sh) const {
  return op.rope.inv_freq != nullptr && paged_attention_rope_supported(op.attn, static_cast<int>(sh.max_q_len));
}

// out = (residual +) sum over ranks of x: the one-shot kernel adds the residual
// itself; NCCL sums x in place
// when out is the residual (x has no other reader: its only use is this
// all_reduce), then the residual is added.
Status CudaExecutor::Impl::all_reduce(const BoundOp& op, int64_t rows, cudaStream_t st) {
  const size_t n = static_cast<size_t>(rows * op.hidden);
  if (n == 0) return Status::Ok();
  if (custom_ar && custom_ar->supports(op.x, op.out, op.dtype, n))
    return custom_ar->all_reduce_sum(tp_rank, op.x, op.out, op.dtype, n, st, op.residual);
  void* sum = op.residual == op.out ? const_cast<void*>(op.x) : op.out;
  if (comm) {
    DS_RETURN_IF_ERROR(comm->all_reduce_sum(op.x, sum, op.dtype, n, st));
  } else if (sum != op.x) {
    DS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(sum, op.x, n * dtype_size(op.dtype), cudaMemcpyDeviceToDevice, st));
  }
  if (op.residual == nullptr) return Status::Ok();
  // out == residual: out += sum; otherwise out holds the sum: out += residual.
  const void* add = op.residual == op.out ? sum : op.residual;
  return add_residual(op.out, add, op.dtype, rows, op.hidden, op.hidden, st);
}

Status CudaExecutor::step(const StepBatch& batch, float* logits) {
  Impl& x = *impl_;
  DS_RETURN_IF_ERROR(x.launch_step(batch));
  // Without a logits buffer (e.g. a prefill chunk whose logits nobody reads) the
  // step stays queued on the stream: the host may prepare the next one meanwhile.
  // Under tensor parallelism every step ends with the bounded wait instead: a
  // later blocking call must never hang on a collective whose peer is gone.
  if (!logits || batch.num_logit_rows() == 0) return x.comm ? x.sync() : Status::Ok();
  DS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(logits, x.logits.data(),
                                          static_cast<size_t>(batch.num_logit_rows() * x.vocab) * sizeof(float),
                                          cudaMemcpyDeviceToHost, x.stream.get()));
  return x.sync();
}

Status CudaExecutor::step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                                 std::vector<RowSample>* out) {
  Impl& x = *impl_;
  if (!out) return Status::Error("step_sample: no output vector");
  if (static_cast<int64_t>(rows.size()) != batch.num_logit_rows())
    return Status::Error(StrCat() << "step_sample: " << rows.size() << " sampling rows for " << batch.num_logit_rows()
                                  << " logit rows");
  if (x.sampler->queued() > 0)
    return Status::Error(StrCat() << "step_sample: " << x.sampler->queued()
                                  << " pipelined steps are not collected yet (collect_samples)");
  DS_RETURN_IF_ERROR(x.launch_step(batch));
  if (rows.empty()) {
    out->clear();
    return x.sync();
  }
  // The sampler synchronizes the stream without a bound: first make sure the
  // step's collectives completed (a dead peer is then an error, not a hang).
  if (x.comm) DS_RETURN_IF_ERROR(x.sync());
  x.last_sample_rows = 0;  // the device ids are being rewritten
  DS_RETURN_IF_ERROR(x.sampler->sample(static_cast<float*>(x.logits.data()), rows, out, x.stream.get()));
  x.last_sample_rows = static_cast<int64_t>(rows.size());
  if (x.profiler && x.profiler->active) DS_RETURN_IF_ERROR(x.profiler->sampled(x.stream));
  return Status::Ok();
}

bool CudaExecutor::pipelines_sampling() const {
  const Impl& x = *impl_;
  return x.opt.pipelined_sampling && (x.comm == nullptr || x.opt.pipelined_with_comm);
}

Status CudaExecutor::enqueue_step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows) {
  Impl& x = *impl_;
  if (!pipelines_sampling())
    return Status::Error(
        "enqueue_step_sample: not offered here (pipelined_sampling off, or pipelined_with_comm off on a "
        "tensor-parallel rank): use step_sample");
  if (rows.empty() || static_cast<int64_t>(rows.size()) != batch.num_logit_rows())
    return Status::Error(StrCat() << "enqueue_step_sample: " << rows.size() << " sampling rows for "
                                  << batch.num_logit_rows() << " logit rows (at least one is needed)");
  if (x.sampler->queued() == DeviceSampler::kMaxQueued)
    return Status::Error(StrCat() << "enqueue_step_sample: " << DeviceSampler::kMaxQueued
                                  << " steps wait to be collected");
  DS_RETURN_IF_ERROR(x.launch_step(batch));
  x.last_sample_rows = 0;
  DS_RETURN_IF_ERROR(x.sampler->enqueue(static_cast<float*>(x.logits.data()), rows, x.stream.get()));
  x.last_sample_rows = static_cast<int64_t>(rows.size());
  if (x.profiler && x.profiler->active) DS_RETURN_IF_ERROR(x.profiler->sampled(x.stream));
  return Status::Ok();
}

Status CudaExecutor::collect_samples(std::vector<RowSample>* out) {
  Impl& x = *impl_;
  if (!out) return Status::Error("collect_samples: no output vector");
  // The oldest queued step ran collectives: wait for it with the communicator's
  // bound first (the sampler's own wait has none), then collect at once.
  if (x.comm && x.sampler->queued() > 0) DS_RETURN_IF_ERROR(x.wait_event(x.sampler->oldest_done_event()));
  return x.sampler->collect(out);
}

}  // namespace ds::cuda
