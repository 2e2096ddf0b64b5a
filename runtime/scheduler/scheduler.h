// Continuous-batching scheduler (SGLang / mini-sglang style). A background
// loop repeats step(): schedule -> run -> postprocess.
//
// Overlap schedule (SchedulerOptions::overlap_schedule, executors that pipeline
// device sampling, overlap_schedule.cpp): step N + 1 is scheduled and queued
// before step N's samples reach the host, so the host's scheduling and
// postprocessing run while the device computes. A request sampled in step N
// feeds previous_sample_token(row) to step N + 1 (the device substitutes the
// id); step N's postprocess, after step N + 1 is queued, puts the real id in
// its place, streams it and checks the stop conditions. A request that
// finishes in step N has one extra row in step N + 1, whose sample is dropped.
// Steps fall back to the synchronous order (the queued step collected first)
// when a penalized request has a pending token (the device reads its history),
// while a request needs every prompt row's logits (prompt logprobs), or when KV
// pages are short enough that scheduling could preempt a request with a pending token.
//
//   schedule     (schedule_batch.cpp)  decode tokens of running requests first, then
//                continuing prefill chunks, then FCFS admissions from the waiting queue
//                (prefix-cache match, KV admission control), up to the per-step token
//                budget; preempts the newest running request when KV pages run out.
//   run          (scheduler.cpp)       one executor step for the whole batch.
//   postprocess  (postprocess.cpp)     prompt logprobs, sampling, stop checks, outputs,
//                                       prefix-cache insertion of finished requests.
//
// submit/abort/stats are thread-safe; sinks are called from the loop thread
// without the scheduler lock held.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <unordered_set>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/executor/executor.h"
#include "runtime/scheduler/radix_cache.h"
#include "runtime/scheduler/request.h"
#include "runtime/scheduler/sched_request.h"

namespace ds {

struct SchedulerOptions {
  int64_t max_running_requests = 64;
  int64_t chunked_prefill_size = 0;       // tokens per step; 0: the executor's token capacity
  int64_t max_model_len = 0;              // > 0
  std::vector<int32_t> eos_token_ids;     // the model's (plan generation defaults)
  bool enable_prefix_cache = true;
  // Admission reserves KV pages for this fraction of every running request's
  // remaining max_new_tokens (1: never preempt; 0: reserve nothing, preempt on demand).
  double new_token_reserve_ratio = 0.3;
  // Remaining max_new_tokens above this count as this much in that reserve (huge
  // defaults such as "the rest of the context" would otherwise block admission).
  int64_t reserve_clip_tokens = 4096;
  // Most logit rows a step may ask for (the executor's logits buffer, CUDA
  // max_logit_rows); 0: no cap beyond the token budget. A step samples one row
  // per sequence that reaches its last token, so the cap is at least
  // max_running_requests; prompt-logprob prefills (a row per prompt token) are
  // cut into chunks that fit the rows the step has left.
  int64_t max_logit_rows = 0;
  // Queue the next step before collecting the current one's samples, when the
  // executor pipelines device sampling (SGLang's overlap schedule;
  // --disable-overlap-schedule turns it off).
  bool overlap_schedule = true;

  Status validate(int64_t token_capacity) const;
};

class Scheduler : public ServingBackend {
 public:
  // `executor` and `kv` must outlive the scheduler. The loop thread starts with start();
  // without it, the owner drives the scheduler with step() (tests, offline runs).
  static Result<std::unique_ptr<Scheduler>> create(Executor& executor, KvCache& kv, const SchedulerOptions& options);
  ~Scheduler() override;

  void start();
  // Stops the loop; unfinished requests get a final kAbort update.
  void stop();

  // One scheduling iteration; returns false when there was nothing to do.
  // Only valid when the loop thread is not running.
  Result<bool> step();
  // step() until no request is left (manual mode).
  Status run_until_idle();

  Result<RequestId> submit(std::vector<int32_t> prompt, const RequestSampling& sampling,
                           std::shared_ptr<RequestSink> sink) override;
  void abort(RequestId id) override;
  Stats stats() const override;
  int64_t max_model_len() const override { return options_.max_model_len; }
  int64_t vocab_size() const override { return executor_.vocab_size(); }

  const RadixCache& prefix_cache() const { return *radix_; }
  int64_t token_budget() const { return budget_; }

 private:
  Scheduler(Executor& executor, KvCache& kv, const SchedulerOptions& options);
  using ReqPtr = std::unique_ptr<SchedRequest>;
  struct BatchEntry {
    SchedRequest* req = nullptr;
    int64_t start = 0;   // first token index (== req->num_computed before the step)
    int64_t count = 0;   // tokens fed this step
    std::vector<int64_t> rows;  // token index of each logit row requested for this entry
    int64_t first_row = 0;      // its first row in the step's logits
    int64_t sample_index = -1;  // overlap: index in req->tokens of the placeholder of its sampled token
  };
  // A step queued with Executor::enqueue_step_sample and not yet collected.
  struct InFlight {
    std::vector<BatchEntry> batch;
    int64_t rows = 0;
    uint64_t seq = 0;  // enqueued_seq_ when it was queued
  };

  void loop();
  // Moves submitted requests and abort requests in from the HTTP threads.
  void drain_inbox();
  // The executor step of `batch`: tokens, positions, page tables and logit rows
  // (sets each entry's first_row); returns the number of rows.
  int64_t build_step(std::vector<BatchEntry>& batch, StepBatch* sb) const;
  // overlap_schedule.cpp
  bool overlap_step_possible() const;
  // Queues `batch` (placeholders for its sampled tokens), then collects and
  // postprocesses the step queued before it.
  Status run_overlapped(std::vector<BatchEntry>& batch, const StepBatch& sb, int64_t rows);
  // Collects and postprocesses the queued step (inflight_ is empty afterwards).
  Status finish_inflight();
  Status collect_and_postprocess(InFlight& f);
  // Removes finished requests from running_: destroyed, or kept in retired_
  // while a queued step names them.
  void drop_finished(const std::vector<SchedRequest*>& done);
  // Drops r's pending token (its queued step's sample), if it has one.
  void drop_placeholder(SchedRequest& r);
  // schedule_batch.cpp
  std::vector<BatchEntry> schedule();
  bool try_admit(SchedRequest& r, int64_t budget_left, int64_t rows_left, std::vector<BatchEntry>& batch);
  // Logit rows that feeding r's tokens [start, start + n) asks for (as add_entry
  // picks them), and the most tokens n' <= n whose rows fit in rows_left.
  static int64_t rows_of(const SchedRequest& r, int64_t start, int64_t n);
  static int64_t fit_rows(const SchedRequest& r, int64_t n, int64_t rows_left);
  bool ensure_pages(SchedRequest& r, int64_t num_tokens);
  bool ensure_pages_or_preempt(SchedRequest& r, int64_t num_tokens);
  int64_t growth_reserve_tokens(const SchedRequest& r) const;
  int64_t reserved_pages(const SchedRequest& r) const;
  void preempt(SchedRequest& r);
  void add_entry(SchedRequest& r, int64_t count, std::vector<BatchEntry>& batch);
  // postprocess.cpp
  // Exactly one of `logits` (host sampling: the rows' f32 logits) and `samples`
  // (the executor sampled each row: step_sample) is set. `overlapped`: a step of
  // the overlap schedule (num_computed was advanced when it was queued, sampled
  // tokens replace their placeholders, finished requests may still be queued).
  void postprocess(std::vector<BatchEntry>& batch, const std::vector<float>* logits,
                   const std::vector<RowSample>* samples, bool overlapped = false);
  // The RowSampling of r's next token (step_sample): its parameters, resolved
  // seed, counter = tokens generated so far, and its prompt/output history.
  static RowSampling row_sampling_of(const SchedRequest& r);
  void fail_batch(std::vector<BatchEntry>& batch, const Status& error);
  void finish(SchedRequest& r, FinishReason reason, RequestOutput out, bool cache_prefix);
  void release_kv(SchedRequest& r, bool cache_prefix);
  void abort_now(RequestId id);
  void publish_stats();

  int64_t pages_for(int64_t tokens) const { return (tokens + page_size_ - 1) / page_size_; }

  Executor& executor_;
  KvCache& kv_;
  const SchedulerOptions options_;
  const int64_t page_size_;
  const int64_t budget_;
  std::unique_ptr<RadixCache> radix_;

  // Loop-owned state.
  std::deque<ReqPtr> waiting_;
  std::vector<ReqPtr> running_;  // admission order: the newest last
  std::vector<float> logits_;
  std::vector<RowSample> samples_;
  Stats counters_;
  std::optional<InFlight> inflight_;  // overlap schedule: the queued step
  uint64_t enqueued_seq_ = 0;         // steps queued so far
  // Finished requests a queued step may still name, with the enqueued_seq_ after
  // whose collection they can go.
  std::vector<std::pair<uint64_t, ReqPtr>> retired_;

  // Shared with the HTTP threads (mu_).
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ReqPtr> inbox_;
  std::vector<RequestId> abort_inbox_;
  std::unordered_set<RequestId> live_;  // submitted and not finished
  RequestId next_id_ = 1;
  Stats published_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ds
