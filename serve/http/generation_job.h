// One chat / completions HTTP request in flight: its backend requests (one per
// prompt x n choice), their update queue, and the OpenAI response pieces built
// from them (stream chunks or the final body).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/scheduler/request.h"
#include "serve/http/api_error.h"
#include "serve/http/choice_output.h"
#include "serve/http/metrics.h"
#include "serve/http/openai_request.h"
#include "serve/tokenizer/tokenizer.h"

namespace ds::http {

// Updates of all choices of one job, in arrival order (filled by the scheduler thread).
class UpdateQueue {
 public:
  struct Item {
    size_t choice = 0;
    RequestOutput output;
  };
  void push(size_t choice, RequestOutput&& output);
  // Waits up to `timeout` for updates and moves all queued ones into `out`.
  void wait_take(std::chrono::milliseconds timeout, std::vector<Item>* out);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;
};

struct JobContext {
  ServingBackend* backend = nullptr;
  const Tokenizer* tokenizer = nullptr;
  ServerMetrics* metrics = nullptr;
  std::string model_name;
  std::string reasoning_parser;
};

class GenerationJob {
 public:
  using Clock = std::chrono::steady_clock;

  // `prompts[i]` are the token ids of prompt i, `prompt_texts[i]` its text (echo) and
  // `max_new_tokens[i]` its resolved token limit.
  GenerationJob(JobContext ctx, OpenAIRequest request, std::vector<std::vector<int32_t>> prompts,
                std::vector<std::string> prompt_texts, std::vector<int64_t> max_new_tokens, Clock::time_point arrival);
  ~GenerationJob();
  GenerationJob(const GenerationJob&) = delete;
  GenerationJob& operator=(const GenerationJob&) = delete;

  // Submits every choice; on a backend refusal aborts those already queued and returns a 400.
  std::optional<ApiError> submit();
  // Aborts every backend request that has not finished (client gone, shutdown) and
  // finishes its choice with finish_reason "abort"; streaming: appends the final chunks.
  void abort_all(std::vector<nlohmann::json>* chunks = nullptr);

  // Waits up to `timeout` for updates and applies them. Streaming: returns the SSE
  // payloads to send (chunks, and after the last choice the usage chunk). Non-stream: {}.
  std::vector<nlohmann::json> pump(std::chrono::milliseconds timeout);
  // Chunks that open a chat stream (role deltas); empty for completions.
  std::vector<nlohmann::json> opening_chunks();
  bool finished() const { return remaining_ == 0; }
  // The first error of a failed choice ("" if none).
  const std::string& error() const { return error_; }

  nlohmann::json response_body() const;   // non-stream response
  nlohmann::json usage() const;

 private:
  struct Choice {
    size_t prompt_index = 0;
    RequestId id = 0;
    bool submitted = false;
    std::unique_ptr<ChoiceOutput> out;
    bool got_token = false;
    bool echoed = false;
    Clock::time_point last_token;
    nlohmann::json logprobs;  // accumulated (non-stream)
    int64_t text_offset = 0;
  };

  nlohmann::json chunk_base() const;
  void apply(size_t index, const RequestOutput& output, std::vector<nlohmann::json>* chunks);
  nlohmann::json stream_chunk(size_t index, const ChoiceOutput::Delta& delta, bool first_delta);
  nlohmann::json final_chunk(size_t index) const;
  nlohmann::json choice_body(size_t index) const;
  void observe_tokens(Choice& c, size_t n);

  JobContext ctx_;
  OpenAIRequest req_;
  std::vector<std::vector<int32_t>> prompts_;
  std::vector<std::string> prompt_texts_;
  std::vector<int64_t> max_new_tokens_;
  Clock::time_point arrival_;
  std::string id_;
  int64_t created_ = 0;
  std::shared_ptr<UpdateQueue> queue_;
  std::vector<Choice> choices_;
  size_t remaining_ = 0;
  std::string error_;
  bool usage_sent_ = false;
  bool rejected_ = false;  // the backend refused a submit: the request never ran
};

}  // namespace ds::http
