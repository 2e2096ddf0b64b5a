// The serving engine: builds, from a loaded plan and weights, the KV cache, the
// executor and the scheduler, and serves requests through ds::ServingBackend.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/dist/communicator.h"
#include "runtime/engine/engine.h"
#include "runtime/executor/executor.h"
#include "runtime/executor/memory_plan.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/scheduler/scheduler.h"
#include "runtime/weights/weight_loader.h"

namespace ds {

struct ServingOptions {
  int64_t max_running_requests = 64;
  int64_t chunked_prefill_size = 0;  // per-step token budget = executor capacity;
                                     // 0: default_chunked_prefill_size()
  int64_t max_model_len = 0;         // 0: the plan's; at most the plan's
  // KV budget, first that applies: kv_pages > 0; else kv_memory_fraction of
  // kv_memory_bytes (> 0); else enough pages for max(max_model_len,
  // max_running_requests * 256) tokens.
  int64_t kv_pages = 0;
  int64_t kv_memory_bytes = 0;
  double kv_memory_fraction = 0.9;   // (0, 1]
  // Logit rows per step (the CUDA logits buffer, f32 [rows, vocab], counted by
  // the memory plan); prompt-logprob prefills are chunked to fit. 0:
  // min(chunk, max(max_running_requests, kDefaultMaxLogitRows)); at least
  // max_running_requests (one sampled row per running request).
  int64_t max_logit_rows = 0;
  bool enable_prefix_cache = true;
  double new_token_reserve_ratio = 0.3;
  int64_t reserve_clip_tokens = 4096;
  bool start_loop = true;            // false: drive scheduler().step() yourself
  bool overlap_schedule = true;      // SchedulerOptions::overlap_schedule (--disable-overlap-schedule)
  // Multi-process tensor parallelism: this process is rank 0 of `dist`; each
  // step is broadcast to the other ranks. `on_group_failure` runs when the group breaks.
  Communicator* dist = nullptr;
  std::function<void(const Status&)> on_group_failure;
  // CUDA plans (sm_*): the KV pool comes from the device memory plan
  // (runtime/executor/memory_plan.h); kv_pages > 0 caps it. The kv_memory_* knobs are CPU-only.
  double mem_fraction_static = 0;      // 0: kDefaultMemFractionStatic (0.88)
  DeviceOptions gpu{.dist_timeout = std::chrono::milliseconds(60000)};
  std::function<void(const std::string&)> log;           // one line per memory-plan decision

  Status validate() const;
};

// The plan's eos token ids: generation defaults, else the tokenizer's.
std::vector<int32_t> plan_eos_token_ids(const LoadedPlan& plan);

// Pages the KV budget of `options` gives for this plan.
Result<int64_t> resolve_kv_pages(const LoadedPlan& plan, const ServingOptions& options, int64_t max_model_len);

// The per-step token budget when --chunked-prefill-size is not given:
// max(min(B, max_model_len), max_running_requests) with B = 4096 on a GPU of at
// least kLargeGpuBytes (H100 / H200 class: larger prefill GEMMs, fewer steps;
// 32B / 7B serving 256 x (512 in / 128 out) on an H200: +2.8% / +2.6% total
// tok/s over 2048, docs/PERF.md session 16), else 2048 (smaller GPUs, the CPU
// backend: gpu_total_bytes = 0). Creation falls back to 2048 when the larger
// budget's activations do not fit the device memory plan.
constexpr size_t kLargeGpuBytes = size_t{60} << 30;
int64_t default_chunked_prefill_size(int64_t max_model_len, int64_t max_running_requests, size_t gpu_total_bytes);

// Logit rows per step under `options` with steps of `chunked_prefill_size` tokens.
int64_t resolve_max_logit_rows(const ServingOptions& options, int64_t chunked_prefill_size);

// The device memory plan of a CUDA plan under `options` (queries the GPU).
Result<MemoryPlan> plan_cuda_memory(const LoadedPlan& plan, const ServingOptions& options, int64_t max_model_len,
                                    int64_t chunked_prefill_size);

class ServingEngine : public ServingBackend {
 public:
  // `plan` and `weights` must outlive the engine.
  static Result<std::unique_ptr<ServingEngine>> create(const LoadedPlan& plan, const LoadedWeights& weights,
                                                       const ServingOptions& options);
  ~ServingEngine() override;

  Result<RequestId> submit(std::vector<int32_t> prompt, const RequestSampling& sampling,
                           std::shared_ptr<RequestSink> sink) override {
    return scheduler_->submit(std::move(prompt), sampling, std::move(sink));
  }
  void abort(RequestId id) override { scheduler_->abort(id); }
  Stats stats() const override { return scheduler_->stats(); }
  int64_t max_model_len() const override { return scheduler_->max_model_len(); }
  int64_t vocab_size() const override { return scheduler_->vocab_size(); }

  Scheduler& scheduler() { return *scheduler_; }
  Executor& executor() { return *executor_; }
  const KvCache& kv_cache() const { return *kv_; }
  // Where the executor's startup went (weights, kernels, graphs; CUDA plans).
  const ExecutorStartup& startup() const { return startup_; }

 private:
  ServingEngine() = default;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<Executor> executor_;
  ExecutorStartup startup_;
  std::unique_ptr<Scheduler> scheduler_;  // declared last: stopped and destroyed first
};

}  // namespace ds
