#include "runtime/engine/engine.h"

#include <algorithm>
#include <chrono>

#include "runtime/executor/cpu_executor.h"
#include "runtime/executor/memory_plan.h"
#include "runtime/executor/dist_executor.h"
#include "runtime/executor/tp_executor.h"

namespace ds {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

}  // namespace

#ifdef DS_HAVE_CUDA_EXECUTOR
// runtime/engine/cuda_factory.cpp
Result<std::unique_ptr<Executor>> make_cuda_executor(const LoadedPlan& plan, const LoadedWeights& weights, KvCache& kv,
                                                     const ExecutorOptions& options, ExecutorStartup* startup);
Status run_cuda_follower(const LoadedPlan& plan, const LoadedWeights& weights, Communicator& dist,
                         const ExecutorOptions& options);
#else
bool have_cuda_executor() { return false; }
Result<DeviceMemoryInfo> query_device_memory(int) {
  return Status::Error("this dsrt was built without the CUDA executor (configure with the CUDA toolkit)");
}
Result<size_t> device_weight_bytes(const LoadedPlan&) {
  return Status::Error("this dsrt was built without the CUDA executor (configure with the CUDA toolkit)");
}
#endif

bool is_cuda_plan(const LoadedPlan& plan) {
  return plan->target() && plan->target()->str().rfind("sm_", 0) == 0;
}

int64_t default_cuda_graph_max_bs(size_t total) {
  const double gib = static_cast<double>(total) / (1024.0 * 1024.0 * 1024.0);
  if (gib < 20) return 8;
  if (gib < 35) return 32;
  if (gib < 60) return 128;
  if (gib < 90) return 256;
  return 512;
}

Result<std::unique_ptr<Executor>> make_executor(const LoadedPlan& plan, const LoadedWeights& weights, KvCache& kv,
                                                const ExecutorOptions& options, ExecutorStartup* startup) {
  if (options.token_capacity <= 0)
    return Status::Error(StrCat() << "token capacity " << options.token_capacity << " must be positive");
  const std::string target = plan->target() ? plan->target()->str() : "";
  Communicator* dist = options.dist;
  if (target == "cpu" && dist && dist->size() > 1) {
    DS_ASSIGN_OR_RETURN(auto e, LeaderExecutor::create(plan, weights, kv, options.token_capacity, *dist));
    e->set_on_group_failure(options.on_group_failure);
    return std::unique_ptr<Executor>(std::move(e));
  }
  if (target == "cpu" && plan->tp_size() > 1) {
    DS_ASSIGN_OR_RETURN(auto e, TpExecutor::create(plan, weights, kv, options.token_capacity, CommOptions{}));
    return std::unique_ptr<Executor>(std::move(e));
  }
  if (target == "cpu") {
    DS_ASSIGN_OR_RETURN(auto e, CpuExecutor::create(plan, weights, kv, options.token_capacity));
    return std::unique_ptr<Executor>(std::move(e));
  }
  if (is_cuda_plan(plan)) {
#ifdef DS_HAVE_CUDA_EXECUTOR
    auto r = make_cuda_executor(plan, weights, kv, options, startup);
    if (!r.ok()) return r.status().with_context(StrCat() << "plan " << plan.origin() << " (target " << target << ")");
    return r;
#else
    (void)startup;
    return Status::Error(StrCat() << "plan " << plan.origin() << " targets '" << target
                                  << "', but this dsrt was built without the CUDA executor (rebuild with the CUDA "
                                     "toolkit, or compile the plan with dscc --target cpu)");
#endif
  }
  return Status::Error(StrCat() << "plan " << plan.origin() << " targets '" << target
                                << "', which this dsrt has no executor for (targets: cpu, sm_*)");
}

Result<std::unique_ptr<Executor>> make_executor(const LoadedPlan& plan, const LoadedWeights& weights, KvCache& kv,
                                                int64_t token_capacity, Communicator* dist,
                                                std::function<void(const Status&)> on_group_failure) {
  ExecutorOptions o;
  o.token_capacity = token_capacity;
  o.dist = dist;
  o.on_group_failure = std::move(on_group_failure);
  return make_executor(plan, weights, kv, o);
}

Status run_rank_follower(const LoadedPlan& plan, const LoadedWeights& weights, Communicator& dist,
                         const ExecutorOptions& options) {
  if (!is_cuda_plan(plan)) return run_follower(plan, weights, dist);
#ifdef DS_HAVE_CUDA_EXECUTOR
  return run_cuda_follower(plan, weights, dist, options);
#else
  (void)options;
  return Status::Error(StrCat() << "plan " << plan.origin() << " targets a GPU, but this dsrt was built without the "
                                   "CUDA executor");
#endif
}

Result<std::unique_ptr<Engine>> Engine::create(const LoadedPlan& plan, const LoadedWeights& weights,
                                               const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine());
  e->plan_ = &plan;
  e->max_model_len_ = plan->model()->max_model_len();
  int64_t capacity = options.token_capacity;
  if (capacity < 0) return Status::Error(StrCat() << "chunked prefill size " << capacity << " must be positive");
  if (capacity == 0) capacity = std::min<int64_t>(512, e->max_model_len_);
  if (options.max_logit_rows < 0)
    return Status::Error(StrCat() << "max_logit_rows " << options.max_logit_rows << " must be >= 0");
  e->max_logit_rows_ = std::min(capacity, options.max_logit_rows > 0 ? options.max_logit_rows : kDefaultMaxLogitRows);
  int64_t kv_tokens = options.kv_tokens > 0 ? options.kv_tokens : e->max_model_len_;
  const int64_t page = plan->kv_cache()->page_size();
  DS_ASSIGN_OR_RETURN(KvCacheConfig cfg, KvCacheConfig::from_plan(*plan->kv_cache(), (kv_tokens + page - 1) / page));
  const bool cuda = is_cuda_plan(plan);
  cfg.host_storage = !cuda;  // the CUDA executor keeps the pools on the device
  if (cuda && have_cuda_executor() && options.mem_fraction_static > 0) {
    // Fail before loading anything when the model cannot fit (one sequence of kv_tokens).
    DS_ASSIGN_OR_RETURN(DeviceMemoryInfo mem, query_device_memory(options.gpu.device));
    MemoryPlanInput in;
    in.device_total = mem.total;
    in.device_free = mem.free;
    in.mem_fraction_static = options.mem_fraction_static;
    DS_ASSIGN_OR_RETURN(in.weight_bytes, device_weight_bytes(plan));
    in.arena_bytes_per_token = plan->arena() ? plan->arena()->bytes_per_token() : 0;
    in.chunked_prefill_size = capacity;
    in.max_logit_rows = e->max_logit_rows_;
    in.vocab_size = plan->model()->vocab_size();
    in.enable_cuda_graph = options.gpu.enable_cuda_graph;
    in.kv_bytes_per_page = cfg.bytes_per_page();
    in.page_size = page;
    in.max_model_len = kv_tokens;
    in.max_running_requests = 1;
    in.tp_size = plan->tp_size();
    DS_RETURN_IF_ERROR(plan_device_memory(in).status());
  }
  DS_ASSIGN_OR_RETURN(e->kv_, KvCache::create(cfg));
  ExecutorOptions xo;
  xo.token_capacity = capacity;
  xo.max_seqs = 1;  // one sequence at a time
  xo.max_logit_rows = e->max_logit_rows_;
  xo.max_model_len = e->max_model_len_;
  xo.gpu = options.gpu;
  if (xo.gpu.cuda_graph_max_bs <= 0) xo.gpu.cuda_graph_max_bs = 1;
  xo.dist = options.dist;
  DS_ASSIGN_OR_RETURN(e->executor_, make_executor(plan, weights, *e->kv_, xo, &e->startup_));
  return e;
}

std::vector<int32_t> Engine::default_eos_ids() const {
  std::vector<int32_t> ids;
  const plan::Plan& p = plan_->plan();
  if (p.generation() && p.generation()->eos_token_ids() && p.generation()->eos_token_ids()->size() > 0)
    ids.assign(p.generation()->eos_token_ids()->begin(), p.generation()->eos_token_ids()->end());
  else if (p.tokenizer() && p.tokenizer()->eos_token_ids())
    ids.assign(p.tokenizer()->eos_token_ids()->begin(), p.tokenizer()->eos_token_ids()->end());
  return ids;
}

Status Engine::check_ids(const std::vector<int32_t>& ids) const {
  if (ids.empty()) return Status::Error("the input has no tokens");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab_size())
      return Status::Error(StrCat() << "token id " << ids[i] << " at position " << i << " is outside the vocabulary [0, "
                                    << vocab_size() << ")");
  if (static_cast<int64_t>(ids.size()) > max_model_len_)
    return Status::Error(StrCat() << "the input has " << ids.size() << " tokens, more than max_model_len "
                                  << max_model_len_);
  return Status::Ok();
}

StepBatch Engine::chunk_batch(const Sequence& seq, const int32_t* tokens, int64_t len) {
  StepBatch b;
  b.tokens.assign(tokens, tokens + len);
  b.positions.resize(static_cast<size_t>(len));
  for (int64_t i = 0; i < len; ++i) b.positions[i] = static_cast<int32_t>(seq.num_cached + i);
  b.sequences.push_back(StepSequence{0, len, seq.num_cached, seq.pages.pages});
  return b;
}

Status Engine::feed(Sequence& seq, const int32_t* tokens, int64_t n, bool all_logits, std::vector<float>* logits) {
  // Every token of an all_logits chunk asks for a row: such chunks hold at most max_logit_rows tokens.
  const int64_t cap = all_logits ? max_logit_rows_ : executor_->token_capacity();
  const int64_t vocab = vocab_size();
  if (logits) logits->clear();
  std::vector<float> step_logits;
  for (int64_t start = 0; start < n; start += cap) {
    const int64_t len = std::min(cap, n - start);
    DS_RETURN_IF_ERROR(kv_->reserve(seq.pages, seq.num_cached + len));
    StepBatch b = chunk_batch(seq, tokens + start, len);
    const bool last_chunk = start + len == n;
    if (all_logits) {
      for (int64_t i = 0; i < len; ++i) b.logit_rows.push_back(static_cast<int32_t>(i));
    } else if (last_chunk) {
      b.logit_rows.push_back(static_cast<int32_t>(len - 1));
    }
    step_logits.assign(static_cast<size_t>(b.num_logit_rows() * vocab), 0.0f);
    DS_RETURN_IF_ERROR(executor_->step(b, step_logits.data()));
    seq.num_cached += len;
    if (logits) logits->insert(logits->end(), step_logits.begin(), step_logits.end());
  }
  return Status::Ok();
}

Status Engine::feed_sample(Sequence& seq, const int32_t* tokens, int64_t n, const RowSampling& sampling,
                           int32_t* token) {
  const int64_t cap = executor_->token_capacity();
  for (int64_t start = 0; start < n; start += cap) {
    const int64_t len = std::min(cap, n - start);
    DS_RETURN_IF_ERROR(kv_->reserve(seq.pages, seq.num_cached + len));
    StepBatch b = chunk_batch(seq, tokens + start, len);
    if (start + len < n) {
      DS_RETURN_IF_ERROR(executor_->step(b, nullptr));  // a prefill chunk whose logits nobody reads
    } else if (token == nullptr) {
      b.logit_rows.push_back(static_cast<int32_t>(len - 1));
      DS_RETURN_IF_ERROR(executor_->enqueue_step_sample(b, {sampling}));
    } else {
      b.logit_rows.push_back(static_cast<int32_t>(len - 1));
      std::vector<RowSample> out;
      DS_RETURN_IF_ERROR(executor_->step_sample(b, {sampling}, &out));
      if (out.size() != 1) return Status::Error("the executor returned no sampled token");
      *token = out[0].id;
    }
    seq.num_cached += len;
  }
  return Status::Ok();
}

Status Engine::generate_pipelined(Sequence& seq, const std::vector<int32_t>& prompt, RowSampling rs, int64_t budget,
                                  const std::vector<int32_t>& eos, bool ignore_eos, GenerateResult* out) {
  const Clock::time_point t0 = Clock::now();
  Clock::time_point t_decode = t0;
  // The prompt: every chunk but the last is a plain step; the last one's sampling (token 1) is queued.
  rs.counter = 0;
  Status st = feed_sample(seq, prompt.data(), static_cast<int64_t>(prompt.size()), rs, nullptr);
  int64_t queued = st.ok() ? 1 : 0, sampled = queued;  // samples waiting to be collected / queued in all
  const int32_t from_device = previous_sample_token(0);
  std::vector<RowSample> got;
  while (st.ok() && queued > 0) {
    // Queue the step that continues from token `sampled` before that token
    // comes back: its input is the id the device just drew.
    if (sampled < budget) {
      st = kv_->reserve(seq.pages, seq.num_cached + 1);
      if (!st.ok()) break;
      StepBatch b = chunk_batch(seq, &from_device, 1);
      b.logit_rows.push_back(0);
      rs.counter = static_cast<uint64_t>(sampled);
      st = executor_->enqueue_step_sample(b, {rs});
      if (!st.ok()) break;
      seq.num_cached += 1;
      ++queued, ++sampled;
    }
    st = executor_->collect_samples(&got);
    --queued;
    if (!st.ok()) break;
    if (got.size() != 1) {
      st = Status::Error("the executor returned no sampled token");
      break;
    }
    const int32_t tok = got[0].id;
    out->output_ids.push_back(tok);
    if (out->output_ids.size() == 1) {
      out->prefill_ms = out->ttft_ms = ms_since(t0);
      t_decode = Clock::now();
    }
    if (!ignore_eos && std::find(eos.begin(), eos.end(), tok) != eos.end()) {
      out->finish_reason = "stop";
      break;
    }
    if (static_cast<int64_t>(out->output_ids.size()) >= budget) break;
  }
  // A step queued past the end (EOS) is collected and dropped: nothing may still run when the pages are freed.
  for (; queued > 0; --queued) {
    Status drained = executor_->collect_samples(&got);
    if (st.ok() && !drained.ok()) st = drained;
  }
  if (!out->output_ids.empty()) {
    out->decode_ms = ms_since(t_decode);
    out->decode_tokens = static_cast<int64_t>(out->output_ids.size()) - 1;
  }
  return st;
}

Result<GenerateResult> Engine::generate(const std::vector<int32_t>& prompt, const GenerateOptions& options) {
  DS_RETURN_IF_ERROR(check_ids(prompt));
  DS_RETURN_IF_ERROR(options.sampling.validate());
  if (options.max_new_tokens < 0)
    return Status::Error(StrCat() << "max_new_tokens " << options.max_new_tokens << " must be >= 0");
  const std::vector<int32_t> eos = options.eos_token_ids.empty() ? default_eos_ids() : options.eos_token_ids;
  // Never run past the model's context.
  const int64_t budget = std::min<int64_t>(options.max_new_tokens, max_model_len_ - static_cast<int64_t>(prompt.size()));
  GenerateResult out;
  out.finish_reason = "length";
  if (budget <= 0) return out;
  Sequence seq;
  Sampler sampler(options.sampling);
  std::vector<float> logits;
  // Executors that sample on their device (CUDA) pick the token there: only the
  // id comes back per step. The draw is keyed by (seed, tokens generated so far).
  const bool on_device = executor_->samples_on_device();
  RowSampling rs;
  rs.temperature = options.sampling.greedy() ? 0.0f : options.sampling.temperature;
  rs.top_k = options.sampling.top_k;
  rs.top_p = options.sampling.top_p;
  rs.min_p = options.sampling.min_p;
  rs.seed = options.sampling.seed;
  int32_t next = 0;
  const Clock::time_point t0 = Clock::now();
  if (on_device && executor_->pipelines_sampling()) {
    Status st = generate_pipelined(seq, prompt, rs, budget, eos, options.ignore_eos, &out);
    Status freed = kv_->free(seq.pages);
    DS_RETURN_IF_ERROR(st);
    DS_RETURN_IF_ERROR(freed);
    return out;
  }
  Status st = on_device ? feed_sample(seq, prompt.data(), static_cast<int64_t>(prompt.size()), rs, &next)
                        : feed(seq, prompt.data(), static_cast<int64_t>(prompt.size()), false, &logits);
  out.prefill_ms = ms_since(t0);
  Clock::time_point t_decode = t0;
  while (st.ok()) {
    const int32_t tok = on_device ? next : sampler.sample(logits.data(), vocab_size());
    out.output_ids.push_back(tok);
    if (out.output_ids.size() == 1) {
      out.ttft_ms = ms_since(t0);
      t_decode = Clock::now();
    }
    if (!options.ignore_eos && std::find(eos.begin(), eos.end(), tok) != eos.end()) {
      out.finish_reason = "stop";
      break;
    }
    if (static_cast<int64_t>(out.output_ids.size()) >= budget) break;
    rs.counter = out.output_ids.size();
    st = on_device ? feed_sample(seq, &tok, 1, rs, &next) : feed(seq, &tok, 1, false, &logits);
  }
  if (!out.output_ids.empty()) {
    out.decode_ms = ms_since(t_decode);
    out.decode_tokens = static_cast<int64_t>(out.output_ids.size()) - 1;
  }
  Status freed = kv_->free(seq.pages);
  DS_RETURN_IF_ERROR(st);
  DS_RETURN_IF_ERROR(freed);
  return out;
}

Result<std::vector<PositionScore>> Engine::score(const std::vector<int32_t>& ids, int64_t top_k) {
  DS_RETURN_IF_ERROR(check_ids(ids));
  if (top_k < 0) return Status::Error(StrCat() << "top_k " << top_k << " must be >= 0");
  const int64_t vocab = vocab_size();
  const int64_t k = std::min(top_k, vocab);
  Sequence seq;
  std::vector<float> logits;
  Status st = feed(seq, ids.data(), static_cast<int64_t>(ids.size()), true, &logits);
  Status freed = kv_->free(seq.pages);
  DS_RETURN_IF_ERROR(st);
  DS_RETURN_IF_ERROR(freed);
  std::vector<PositionScore> out(ids.size());
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  for (size_t i = 0; i < ids.size(); ++i) {
    const float* row = logits.data() + i * vocab;
    out[i].logsumexp = logsumexp(row, vocab);
    for (int64_t v = 0; v < vocab; ++v) order[v] = static_cast<int32_t>(v);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    for (int64_t j = 0; j < k; ++j) {
      out[i].top_ids.push_back(order[j]);
      out[i].top_logits.push_back(row[order[j]]);
    }
  }
  return out;
}

}  // namespace ds
