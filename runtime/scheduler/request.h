// The contract between the HTTP layer (serve/http) and the scheduler
// (runtime/scheduler): a request is a prompt of token ids plus sampling
// parameters; results stream back, token by token, through a RequestSink.
//
// Text-level concerns (chat templates, stop strings, detokenization, reasoning
// parsing, n > 1 fan-out) belong to the HTTP layer; token-level ones
// (batching, KV pages, prefix cache, sampling, penalties, logprobs, stop token
// ids, max tokens) to the scheduler.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/common/status.h"

namespace ds {

using RequestId = uint64_t;

struct RequestSampling {
  float temperature = 1.0f;          // 0: greedy
  float top_p = 1.0f;                // (0, 1]
  int32_t top_k = -1;                // <= 0: off
  float min_p = 0.0f;                // [0, 1]
  float presence_penalty = 0.0f;     // [-2, 2], OpenAI semantics (over generated tokens)
  float frequency_penalty = 0.0f;    // [-2, 2]
  float repetition_penalty = 1.0f;   // > 0, HF/vLLM semantics (over prompt + generated tokens)
  std::optional<uint64_t> seed;      // same seed + same prompt -> same output
  int64_t max_new_tokens = 16;       // >= 1 (the HTTP layer resolves the default from the context left)
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;  // in addition to the model's eos ids (unless ignore_eos)
  int32_t logprobs = -1;             // -1: none; k >= 0: chosen token's logprob + top-k alternatives
                                     // (k <= kMaxLogprobs). Logprobs are those of the model's raw
                                     // distribution: log_softmax of the logits before penalties,
                                     // temperature and top-k/p filtering (vLLM's default).
  bool prompt_logprobs = false;      // echo: logprob of each prompt token given its prefix

  static constexpr int32_t kMaxLogprobs = 20;

  Status validate(int64_t vocab_size) const;  // names the offending parameter
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
};

struct GeneratedToken {
  int32_t id = 0;
  float logprob = 0.0f;                 // valid when logprobs >= 0
  std::vector<TokenLogprob> top;        // logprobs > 0: the top-k alternatives, best first
};

enum class FinishReason { kNone, kStop, kLength, kAbort, kError };

// One update for a request. Updates arrive in order, from the scheduler thread;
// the sink must not block (queue the update and return).
struct RequestOutput {
  RequestId id = 0;
  std::vector<GeneratedToken> tokens;           // new tokens since the last update
  std::vector<std::optional<TokenLogprob>> prompt_logprobs;  // once, first update, if asked (first is nullopt)
  FinishReason finish = FinishReason::kNone;    // != kNone: last update
  std::optional<int32_t> matched_stop_token;    // finish == kStop by a stop/eos token id; that token is
                                                // the last entry of `tokens` (drop its text if unwanted)
  std::string error;                            // finish == kError
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;             // served from the prefix cache
  int64_t completion_tokens = 0;                // total so far
};

class RequestSink {
 public:
  virtual ~RequestSink() = default;
  virtual void on_output(RequestOutput&& output) = 0;
};

// What the HTTP layer sees of the serving engine.
class ServingBackend {
 public:
  virtual ~ServingBackend() = default;
  // Queues a request (FCFS). Errors: invalid sampling, prompt longer than the context, empty prompt.
  virtual Result<RequestId> submit(std::vector<int32_t> prompt, const RequestSampling& sampling,
                                   std::shared_ptr<RequestSink> sink) = 0;
  // Cancels a request (client gone, stop string matched); frees its KV pages at once.
  // The sink gets a final kAbort update unless the request already finished.
  virtual void abort(RequestId id) = 0;

  struct Stats {
    int64_t running = 0, waiting = 0;
    int64_t kv_pages_used = 0, kv_pages_total = 0;
    int64_t prefix_cache_hit_tokens = 0, prefix_cache_query_tokens = 0;
    int64_t prompt_tokens_total = 0, generation_tokens_total = 0;
    int64_t preemptions_total = 0;
    // Steps whose batch was queued while the previous one ran (overlap schedule).
    int64_t overlap_steps_total = 0;
    // kv_pages_used counts pages held by requests (incl. prefix-cache pages they share);
    // kv_pages_cached: pages the prefix cache holds (unreferenced ones are evictable, i.e. free).
    int64_t kv_pages_cached = 0;
  };
  virtual Stats stats() const = 0;
  virtual int64_t max_model_len() const = 0;
  virtual int64_t vocab_size() const = 0;
};

}  // namespace ds
