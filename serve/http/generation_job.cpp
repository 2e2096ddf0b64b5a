#include "serve/http/generation_job.h"

#include <atomic>
#include <chrono>
#include <random>
#include <utility>

namespace ds::http {

using json = nlohmann::json;

namespace {

class ChoiceSink : public RequestSink {
 public:
  ChoiceSink(std::shared_ptr<UpdateQueue> queue, size_t choice) : queue_(std::move(queue)), choice_(choice) {}
  void on_output(RequestOutput&& output) override { queue_->push(choice_, std::move(output)); }

 private:
  std::shared_ptr<UpdateQueue> queue_;
  size_t choice_;
};

std::string random_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  static const char kHex[] = "0123456789abcdef";
  std::string id = prefix;
  uint64_t a = rng() ^ (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull), b = rng();
  for (int i = 0; i < 16; ++i) id += kHex[(a >> (4 * i)) & 0xF];
  for (int i = 0; i < 16; ++i) id += kHex[(b >> (4 * i)) & 0xF];
  return id;
}

}  // namespace

void UpdateQueue::push(size_t choice, RequestOutput&& output) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    items_.push_back(Item{choice, std::move(output)});
  }
  cv_.notify_one();
}

void UpdateQueue::wait_take(std::chrono::milliseconds timeout, std::vector<Item>* out) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !items_.empty(); });
  while (!items_.empty()) {
    out->push_back(std::move(items_.front()));
    items_.pop_front();
  }
}

GenerationJob::GenerationJob(JobContext ctx, OpenAIRequest request, std::vector<std::vector<int32_t>> prompts,
                             std::vector<std::string> prompt_texts, std::vector<int64_t> max_new_tokens,
                             Clock::time_point arrival)
    : ctx_(std::move(ctx)),
      req_(std::move(request)),
      prompts_(std::move(prompts)),
      prompt_texts_(std::move(prompt_texts)),
      max_new_tokens_(std::move(max_new_tokens)),
      arrival_(arrival),
      queue_(std::make_shared<UpdateQueue>()) {
  id_ = random_id(req_.endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-");
  created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                 .count();
  ChoiceConfig config;
  config.stop = req_.stop;
  config.include_stop_str_in_output = req_.include_stop_str_in_output;
  config.skip_special_tokens = req_.skip_special_tokens;
  if (req_.endpoint == Endpoint::kChat) config.reasoning_parser = ctx_.reasoning_parser;
  for (size_t p = 0; p < prompts_.size(); ++p) {
    for (int j = 0; j < req_.n; ++j) {
      Choice c;
      c.prompt_index = p;
      c.out = std::make_unique<ChoiceOutput>(*ctx_.tokenizer, config);
      choices_.push_back(std::move(c));
    }
  }
  remaining_ = choices_.size();
  ctx_.metrics->http_requests_in_flight.fetch_add(1);
}

GenerationJob::~GenerationJob() {
  abort_all();
  ctx_.metrics->http_requests_in_flight.fetch_sub(1);
}

std::optional<ApiError> GenerationJob::submit() {
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    RequestSampling sampling = req_.sampling;
    sampling.max_new_tokens = max_new_tokens_[c.prompt_index];
    // n > 1 with a seed: distinct but reproducible samples per choice.
    if (sampling.seed) sampling.seed = *sampling.seed + static_cast<uint64_t>(i % static_cast<size_t>(req_.n));
    auto id = ctx_.backend->submit(prompts_[c.prompt_index], sampling, std::make_shared<ChoiceSink>(queue_, i));
    if (!id.ok()) {
      for (size_t k = 0; k < i; ++k) ctx_.backend->abort(choices_[k].id);
      for (auto& other : choices_) other.submitted = false;
      rejected_ = true;
      remaining_ = 0;
      return ApiError::bad_request(id.status().message(),
                                   req_.endpoint == Endpoint::kChat ? "messages" : "prompt");
    }
    c.id = *id;
    c.submitted = true;
  }
  return std::nullopt;
}

void GenerationJob::abort_all(std::vector<json>* chunks) {
  if (rejected_) return;  // nothing runs
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    if (c.out->finished()) continue;
    if (c.submitted) ctx_.backend->abort(c.id);
    c.submitted = false;
    // Finish the choice here: nobody may pump the queue again (client gone), and
    // the backend's own final update, if it still comes, is ignored.
    RequestOutput aborted;
    aborted.finish = FinishReason::kAbort;
    apply(i, aborted, chunks);
  }
}

json GenerationJob::chunk_base() const {
  json j = {{"id", id_},
            {"object", req_.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
            {"created", created_},
            {"model", ctx_.model_name}};
  return j;
}

std::vector<json> GenerationJob::opening_chunks() {
  std::vector<json> chunks;
  if (req_.endpoint != Endpoint::kChat) return chunks;
  for (size_t i = 0; i < choices_.size(); ++i) {
    json chunk = chunk_base();
    chunk["choices"] = json::array({json{{"index", i},
                                          {"delta", {{"role", "assistant"}, {"content", ""}}},
                                          {"logprobs", nullptr},
                                          {"finish_reason", nullptr}}});
    if (req_.include_usage) chunk["usage"] = nullptr;
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

void GenerationJob::observe_tokens(Choice& c, size_t n) {
  if (n == 0) return;
  const auto now = Clock::now();
  if (!c.got_token) {
    ctx_.metrics->ttft_seconds.observe(std::chrono::duration<double>(now - arrival_).count());
    c.got_token = true;
    if (n > 1) {
      // Several tokens in the first update: they arrived together.
      for (size_t k = 1; k < n; ++k) ctx_.metrics->itl_seconds.observe(0.0);
    }
  } else {
    const double dt = std::chrono::duration<double>(now - c.last_token).count() / static_cast<double>(n);
    for (size_t k = 0; k < n; ++k) ctx_.metrics->itl_seconds.observe(dt);
  }
  c.last_token = now;
}

json GenerationJob::stream_chunk(size_t index, const ChoiceOutput::Delta& d, bool first_delta) {
  Choice& c = choices_[index];
  const bool want_logprobs = req_.logprobs && !d.tokens.empty();
  json choice = {{"index", index}};
  if (req_.endpoint == Endpoint::kChat) {
    json delta = json::object();
    if (c.out->has_reasoning_parser()) {
      if (!d.split.reasoning.empty()) delta["reasoning_content"] = d.split.reasoning;
      if (!d.split.content.empty()) delta["content"] = d.split.content;
    } else if (!d.text.empty()) {
      delta["content"] = d.text;
    }
    if (delta.empty() && !want_logprobs) return nullptr;
    choice["delta"] = std::move(delta);
    choice["logprobs"] = want_logprobs
                             ? json{{"content", chat_logprobs_content(*ctx_.tokenizer, d.tokens, req_.top_logprobs)}}
                             : json(nullptr);
  } else {
    std::string text;
    json logprobs;
    if (first_delta && req_.echo && !c.echoed) {
      c.echoed = true;
      text = prompt_texts_[c.prompt_index];
      if (req_.logprobs) {
        append_prompt_logprobs(*ctx_.tokenizer, prompts_[c.prompt_index], c.out->prompt_logprobs(), &c.text_offset,
                               &logprobs);
      }
    }
    text += d.text;
    if (want_logprobs) {
      append_completion_logprobs(*ctx_.tokenizer, d.tokens, req_.top_logprobs, &c.text_offset, &logprobs);
    }
    if (text.empty() && logprobs.is_null()) return nullptr;
    choice["text"] = std::move(text);
    choice["logprobs"] = std::move(logprobs);
  }
  choice["finish_reason"] = nullptr;
  json chunk = chunk_base();
  chunk["choices"] = json::array({std::move(choice)});
  if (req_.include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json GenerationJob::final_chunk(size_t index) const {
  const Choice& c = choices_[index];
  json choice = {{"index", index}};
  if (req_.endpoint == Endpoint::kChat) {
    choice["delta"] = json::object();
  } else {
    choice["text"] = "";
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = c.out->finish_reason();
  choice["stop_reason"] = c.out->stop_reason();
  json chunk = chunk_base();
  chunk["choices"] = json::array({std::move(choice)});
  if (req_.include_usage) chunk["usage"] = nullptr;
  return chunk;
}

void GenerationJob::apply(size_t index, const RequestOutput& output, std::vector<json>* chunks) {
  if (index >= choices_.size()) return;
  Choice& c = choices_[index];
  if (c.out->finished()) return;  // e.g. the kAbort that follows a stop-string abort
  const bool first_delta = !c.got_token && !c.echoed;
  ChoiceOutput::Delta d = c.out->on_output(output);
  observe_tokens(c, d.tokens.size());
  if (req_.stream) {
    json chunk = stream_chunk(index, d, first_delta);
    if (!chunk.is_null() && chunks != nullptr) chunks->push_back(std::move(chunk));
  } else if (req_.logprobs && !d.tokens.empty() && req_.endpoint == Endpoint::kCompletion) {
    append_completion_logprobs(*ctx_.tokenizer, d.tokens, req_.top_logprobs, &c.text_offset, &c.logprobs);
  } else if (req_.logprobs && !d.tokens.empty()) {
    if (c.logprobs.is_null()) c.logprobs = json{{"content", json::array()}};
    for (auto& e : chat_logprobs_content(*ctx_.tokenizer, d.tokens, req_.top_logprobs)) {
      c.logprobs["content"].push_back(std::move(e));
    }
  }
  if (!c.out->finished()) return;
  --remaining_;
  if (c.out->stop_string_matched() && c.submitted) {
    ctx_.backend->abort(c.id);  // stop string: free the KV pages now
  }
  c.submitted = false;
  if (!c.out->error().empty() && error_.empty()) error_ = c.out->error();
  ctx_.metrics->count_finished(c.out->finish_reason());
  ctx_.metrics->e2e_seconds.observe(std::chrono::duration<double>(Clock::now() - arrival_).count());
  if (req_.stream && chunks != nullptr) {
    if (req_.echo && !c.echoed) {
      // Echo of a request that produced no token update (finished at once).
      ChoiceOutput::Delta empty;
      json chunk = stream_chunk(index, empty, true);
      if (!chunk.is_null()) chunks->push_back(std::move(chunk));
    }
    chunks->push_back(final_chunk(index));
  }
}

std::vector<json> GenerationJob::pump(std::chrono::milliseconds timeout) {
  std::vector<UpdateQueue::Item> items;
  queue_->wait_take(timeout, &items);
  std::vector<json> chunks;
  for (auto& item : items) apply(item.choice, item.output, &chunks);
  if (req_.stream && finished() && req_.include_usage && !usage_sent_ && error_.empty()) {
    usage_sent_ = true;
    json chunk = chunk_base();
    chunk["choices"] = json::array();
    chunk["usage"] = usage();
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

json GenerationJob::usage() const {
  int64_t prompt = 0, completion = 0, cached = 0;
  for (const auto& p : prompts_) prompt += static_cast<int64_t>(p.size());
  for (size_t i = 0; i < choices_.size(); ++i) {
    completion += choices_[i].out->completion_tokens();
    if (i % static_cast<size_t>(req_.n) == 0) cached += choices_[i].out->cached_prompt_tokens();
  }
  return json{{"prompt_tokens", prompt},
              {"total_tokens", prompt + completion},
              {"completion_tokens", completion},
              {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

json GenerationJob::choice_body(size_t index) const {
  const Choice& c = choices_[index];
  json choice = {{"index", index}};
  if (req_.endpoint == Endpoint::kChat) {
    json message = {{"role", "assistant"}};
    if (c.out->has_reasoning_parser()) {
      auto parser = make_reasoning_parser(ctx_.reasoning_parser);
      ReasoningDelta split = parse_reasoning(*parser, c.out->text());
      message["reasoning_content"] = split.reasoning.empty() ? json(nullptr) : json(split.reasoning);
      message["content"] = split.content.empty() ? json(nullptr) : json(split.content);
    } else {
      message["content"] = c.out->text();
    }
    message["tool_calls"] = json::array();
    choice["message"] = std::move(message);
    choice["logprobs"] = req_.logprobs && c.logprobs.is_null() ? json{{"content", json::array()}} : c.logprobs;
  } else {
    std::string text;
    json logprobs;
    if (req_.echo) {
      text = prompt_texts_[c.prompt_index];
      if (req_.logprobs) {
        int64_t offset = 0;
        append_prompt_logprobs(*ctx_.tokenizer, prompts_[c.prompt_index], c.out->prompt_logprobs(), &offset,
                               &logprobs);
        // Shift the generated tokens' offsets past the echoed prompt.
        if (!c.logprobs.is_null()) {
          for (size_t k = 0; k < c.logprobs["tokens"].size(); ++k) {
            logprobs["tokens"].push_back(c.logprobs["tokens"][k]);
            logprobs["token_logprobs"].push_back(c.logprobs["token_logprobs"][k]);
            logprobs["top_logprobs"].push_back(c.logprobs["top_logprobs"][k]);
            logprobs["text_offset"].push_back(c.logprobs["text_offset"][k].get<int64_t>() + offset);
          }
        }
      }
    } else {
      logprobs = c.logprobs;
    }
    text += c.out->text();
    choice["text"] = std::move(text);
    choice["logprobs"] = req_.logprobs && logprobs.is_null()
                             ? json{{"text_offset", json::array()}, {"token_logprobs", json::array()},
                                    {"tokens", json::array()}, {"top_logprobs", json::array()}}
                             : logprobs;
  }
  choice["finish_reason"] = c.out->finish_reason();
  choice["stop_reason"] = c.out->stop_reason();
  return choice;
}

json GenerationJob::response_body() const {
  json body = {{"id", id_},
               {"object", req_.endpoint == Endpoint::kChat ? "chat.completion" : "text_completion"},
               {"created", created_},
               {"model", ctx_.model_name}};
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) choices.push_back(choice_body(i));
  body["choices"] = std::move(choices);
  body["usage"] = usage();
  return body;
}

}  // namespace ds::http
