// The engine drives an executor for whole requests: it owns the KV cache and
// the executor, prefills prompts in chunks of the token capacity, then decodes
// one token per step. `generate` samples; `score` is teacher-forced.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/dist/communicator.h"
#include "runtime/engine/sampler.h"
#include "runtime/executor/executor.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/weight_loader.h"

namespace ds {

struct EngineOptions {
  int64_t token_capacity = 0;  // tokens per step (chunked prefill size); 0: min(512, max_model_len)
  int64_t kv_tokens = 0;       // KV cache capacity in tokens; 0: max_model_len
  Communicator* dist = nullptr;  // multi-process TP group (this process is rank 0); null: in-process
};

struct GenerateOptions {
  int64_t max_new_tokens = 16;
  SamplingParams sampling;
  bool ignore_eos = false;
  std::vector<int32_t> eos_token_ids;  // empty: the plan's generation/tokenizer eos ids
};

struct GenerateResult {
  std::vector<int32_t> output_ids;
  std::string finish_reason;  // "stop" (eos) or "length"
};

struct PositionScore {
  std::vector<int32_t> top_ids;      // by decreasing logit (ties: lower id first)
  std::vector<float> top_logits;
  double logsumexp = 0.0;
};

class Engine {
 public:
  // `plan` and `weights` must outlive the engine.
  static Result<std::unique_ptr<Engine>> create(const LoadedPlan& plan, const LoadedWeights& weights,
                                                const EngineOptions& options);

  Result<GenerateResult> generate(const std::vector<int32_t>& prompt, const GenerateOptions& options);
  // One entry per input id: the logits after reading ids[0..i] (predicting ids[i+1]).
  Result<std::vector<PositionScore>> score(const std::vector<int32_t>& ids, int64_t top_k);

  int64_t token_capacity() const { return executor_->token_capacity(); }
  int64_t vocab_size() const { return executor_->vocab_size(); }
  int64_t max_model_len() const { return max_model_len_; }
  const KvCache& kv_cache() const { return *kv_; }
  // eos ids from the plan (generation defaults, else tokenizer).
  std::vector<int32_t> default_eos_ids() const;

 private:
  Engine() = default;
  struct Sequence {
    PageTable pages;
    int64_t num_cached = 0;
  };
  // Feeds `tokens` to the sequence in steps of at most the token capacity. With
  // all_logits, returns logits for every token; otherwise for the last one only.
  Status feed(Sequence& seq, const int32_t* tokens, int64_t n, bool all_logits, std::vector<float>* logits);
  Status check_ids(const std::vector<int32_t>& ids) const;

  const LoadedPlan* plan_ = nullptr;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<Executor> executor_;
  int64_t max_model_len_ = 0;
};

// The executor for the plan's target ("cpu" today). A plan with tp_size N > 1
// gets a TpExecutor running N in-process ranks (rank 0 on `weights` and `kv`).
// With `dist` (a multi-process group of tp_size ranks, this process rank 0) a
// LeaderExecutor broadcasts each step to the other processes.
// `on_group_failure` (with `dist`) runs when a step fails because the group broke.
Result<std::unique_ptr<Executor>> make_executor(const LoadedPlan& plan, const LoadedWeights& weights, KvCache& kv,
                                                int64_t token_capacity, Communicator* dist = nullptr,
                                                std::function<void(const Status&)> on_group_failure = nullptr);

}  // namespace ds
