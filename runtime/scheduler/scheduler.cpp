#include "runtime/scheduler/scheduler.h"

#include <algorithm>
#include <random>

namespace ds {

Status SchedulerOptions::validate(int64_t token_capacity) const {
  if (max_running_requests < 1)
    return Status::Error(StrCat() << "max_running_requests " << max_running_requests << " must be >= 1");
  if (chunked_prefill_size < 0 || chunked_prefill_size > token_capacity)
    return Status::Error(StrCat() << "chunked_prefill_size " << chunked_prefill_size
                                  << " must be in [1, the executor's token capacity " << token_capacity
                                  << "] (0: the capacity)");
  const int64_t budget = chunked_prefill_size > 0 ? chunked_prefill_size : token_capacity;
  if (max_running_requests > budget)
    return Status::Error(StrCat() << "max_running_requests " << max_running_requests
                                  << " exceeds the per-step token budget " << budget
                                  << " (every running request needs a decode slot per step)");
  if (max_model_len < 2) return Status::Error(StrCat() << "max_model_len " << max_model_len << " must be >= 2");
  if (!(new_token_reserve_ratio >= 0.0 && new_token_reserve_ratio <= 1.0))
    return Status::Error(StrCat() << "new_token_reserve_ratio " << new_token_reserve_ratio << " must be in [0, 1]");
  if (reserve_clip_tokens < 0)
    return Status::Error(StrCat() << "reserve_clip_tokens " << reserve_clip_tokens << " must be >= 0");
  if (max_logit_rows < 0) return Status::Error(StrCat() << "max_logit_rows " << max_logit_rows << " must be >= 0");
  if (max_logit_rows > 0 && max_logit_rows < max_running_requests)
    return Status::Error(StrCat() << "max_logit_rows " << max_logit_rows << " is below max_running_requests "
                                  << max_running_requests << " (every running request may sample a row per step)");
  return Status::Ok();
}

Scheduler::Scheduler(Executor& executor, KvCache& kv, const SchedulerOptions& options)
    : executor_(executor),
      kv_(kv),
      options_(options),
      page_size_(kv.page_size()),
      budget_(options.chunked_prefill_size > 0 ? options.chunked_prefill_size : executor.token_capacity()),
      radix_(std::make_unique<RadixCache>(kv)) {}

Result<std::unique_ptr<Scheduler>> Scheduler::create(Executor& executor, KvCache& kv, const SchedulerOptions& options) {
  DS_RETURN_IF_ERROR(options.validate(executor.token_capacity()));
  for (int32_t id : options.eos_token_ids)
    if (id < 0 || id >= executor.vocab_size())
      return Status::Error(StrCat() << "eos token id " << id << " is outside the vocabulary [0, "
                                    << executor.vocab_size() << ")");
  // A request of max_model_len tokens must fit alone, or it could never finish.
  if (kv.num_pages() * kv.page_size() < options.max_model_len)
    return Status::Error(StrCat() << "the KV cache holds " << kv.num_pages() * kv.page_size()
                                  << " tokens, fewer than max_model_len " << options.max_model_len
                                  << " (give it more pages or lower max_model_len)");
  std::unique_ptr<Scheduler> s(new Scheduler(executor, kv, options));
  s->publish_stats();
  return s;
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start() {
  std::lock_guard<std::mutex> lk(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { loop(); });
}

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Nothing runs any more: collect a queued step, abort whatever is left (from this thread).
  if (inflight_) (void)finish_inflight();
  drain_inbox();
  while (!running_.empty()) abort_now(running_.front()->id);
  while (!waiting_.empty()) abort_now(waiting_.front()->id);
  retired_.clear();
  publish_stats();
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] {
        return stop_ || !inbox_.empty() || !abort_inbox_.empty() || !running_.empty() || !waiting_.empty() ||
               inflight_.has_value();
      });
      if (stop_) return;
    }
    Result<bool> r = step();
    (void)r;  // step() reports executor failures to the affected requests
  }
}

void Scheduler::drain_inbox() {
  std::vector<ReqPtr> in;
  std::vector<RequestId> aborts;
  {
    std::lock_guard<std::mutex> lk(mu_);
    in.swap(inbox_);
    aborts.swap(abort_inbox_);
  }
  for (ReqPtr& r : in) waiting_.push_back(std::move(r));
  for (RequestId id : aborts) abort_now(id);
}

Result<bool> Scheduler::step() {
  if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id())
    return Status::Error("Scheduler::step() called while the loop thread runs");
  drain_inbox();
  const bool overlap = overlap_step_possible();
  auto collect_queued = [&]() -> Status {
    const Status st = finish_inflight();
    publish_stats();
    return st.ok() ? st : st.with_context("executor step");
  };
  // A synchronous step, or nothing else to run: the queued step comes first.
  if (inflight_ && (!overlap || (running_.empty() && waiting_.empty()))) {
    DS_RETURN_IF_ERROR(collect_queued());
    if (overlap) return true;
  }
  if (running_.empty() && waiting_.empty()) {
    publish_stats();
    return false;
  }
  std::vector<BatchEntry> batch = schedule();
  if (batch.empty()) {
    if (inflight_) {  // the running requests wait for the queued step (their last token)
      DS_RETURN_IF_ERROR(collect_queued());
      return true;
    }
    // Unreachable with a pool of at least max_model_len tokens; never spin on it.
    if (running_.empty() && !waiting_.empty()) {
      SchedRequest& r = *waiting_.front();
      RequestOutput out;
      out.error = StrCat() << "request " << r.id << " cannot be scheduled (" << r.num_tokens() << " tokens, "
                           << kv_.num_free_pages() << " free KV pages)";
      ReqPtr owned = std::move(waiting_.front());
      waiting_.pop_front();
      finish(*owned, FinishReason::kError, std::move(out), false);
    }
    publish_stats();
    return true;
  }
  // Run: one executor step over the whole batch.
  StepBatch sb;
  const int64_t rows = build_step(batch, &sb);
  if (overlap) {
    const Status st = run_overlapped(batch, sb, rows);
    publish_stats();
    if (!st.ok()) return st.with_context("executor step");
    return true;
  }
  // Executors that sample on their device do so when no entry needs prompt
  // logprobs (those need every row's logits on the host).
  bool device_sampling = executor_.samples_on_device();
  for (const BatchEntry& e : batch)
    if (e.req->needs_prompt_logits()) device_sampling = false;
  Status st;
  if (device_sampling) {
    std::vector<RowSampling> row_sampling;
    row_sampling.reserve(static_cast<size_t>(rows));
    for (const BatchEntry& e : batch)
      for (size_t i = 0; i < e.rows.size(); ++i) row_sampling.push_back(row_sampling_of(*e.req));
    st = executor_.step_sample(sb, row_sampling, &samples_);
    if (st.ok() && static_cast<int64_t>(samples_.size()) != rows)
      st = Status::Error(StrCat() << "step_sample returned " << samples_.size() << " samples for " << rows << " rows");
  } else {
    logits_.resize(static_cast<size_t>(rows * executor_.vocab_size()));
    st = executor_.step(sb, logits_.data());
  }
  if (!st.ok()) {
    fail_batch(batch, st);
    publish_stats();
    return st.with_context("executor step");
  }
  postprocess(batch, device_sampling ? nullptr : &logits_, device_sampling ? &samples_ : nullptr);
  publish_stats();
  return true;
}

int64_t Scheduler::build_step(std::vector<BatchEntry>& batch, StepBatch* sb) const {
  int64_t rows = 0;
  for (BatchEntry& e : batch) {
    SchedRequest& r = *e.req;
    const int64_t first = sb->num_tokens();
    sb->sequences.push_back(StepSequence{first, e.count, e.start, r.pages.pages});
    for (int64_t t = e.start; t < e.start + e.count; ++t) {
      sb->tokens.push_back(r.tokens[static_cast<size_t>(t)]);
      sb->positions.push_back(static_cast<int32_t>(t));
    }
    e.first_row = rows;
    for (int64_t t : e.rows) sb->logit_rows.push_back(static_cast<int32_t>(first + t - e.start));
    rows += static_cast<int64_t>(e.rows.size());
  }
  return rows;
}

Status Scheduler::run_until_idle() {
  for (;;) {
    Result<bool> r = step();
    if (!r.ok()) return r.status();
    if (!r.value()) return Status::Ok();
  }
}

Result<RequestId> Scheduler::submit(std::vector<int32_t> prompt, const RequestSampling& sampling,
                                    std::shared_ptr<RequestSink> sink) {
  const int64_t vocab = executor_.vocab_size();
  DS_RETURN_IF_ERROR(sampling.validate(vocab));
  if (prompt.empty()) return Status::Error("the prompt has no tokens");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= vocab)
      return Status::Error(StrCat() << "prompt token id " << prompt[i] << " at position " << i
                                    << " is outside the vocabulary [0, " << vocab << ")");
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n >= options_.max_model_len)
    return Status::Error(StrCat() << "the prompt has " << n << " tokens; max_model_len " << options_.max_model_len
                                  << " leaves no room for new tokens");
  if (!sink) return Status::Error("submit without a sink");
  auto r = std::make_unique<SchedRequest>();
  r->sink = std::move(sink);
  r->sampling = sampling;
  r->prompt_len = n;
  r->max_new_tokens = std::min(sampling.max_new_tokens, options_.max_model_len - n);
  uint64_t seed = 0;
  if (sampling.seed) {
    seed = *sampling.seed;
  } else {
    std::random_device rd;
    seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  r->seed = seed;
  r->sampler = std::make_unique<RequestSampler>(sampling, seed, prompt, vocab);
  if (sampling.prompt_logprobs) r->prompt_logprobs.assign(1, std::nullopt);
  r->tokens = std::move(prompt);
  RequestId id;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) return Status::Error("the scheduler is shutting down");
    id = next_id_++;
    r->id = id;
    live_.insert(id);
    inbox_.push_back(std::move(r));
  }
  cv_.notify_all();
  return id;
}

void Scheduler::abort(RequestId id) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!live_.count(id)) return;  // unknown or already finished
    abort_inbox_.push_back(id);
  }
  cv_.notify_all();
}

ServingBackend::Stats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  Stats s = published_;
  s.waiting += static_cast<int64_t>(inbox_.size());
  return s;
}

void Scheduler::publish_stats() {
  Stats s = counters_;
  s.running = static_cast<int64_t>(running_.size());
  s.waiting = static_cast<int64_t>(waiting_.size());
  s.kv_pages_total = kv_.num_pages();
  s.kv_pages_cached = radix_->cached_pages();
  s.kv_pages_used = kv_.usage().used_pages - radix_->evictable_pages();
  std::lock_guard<std::mutex> lk(mu_);
  published_ = s;
}

}  // namespace ds
