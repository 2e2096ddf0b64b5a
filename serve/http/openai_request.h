// Parsing and validation of OpenAI request bodies (/v1/chat/completions,
// /v1/completions) into one typed request. Every problem becomes a 400 ApiError
// naming the offending field (`param`), in vLLM's wording where it has one.
// Token-level limits that need the tokenized prompt (context length) are
// checked later, by resolve_max_tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/scheduler/request.h"
#include "serve/http/api_error.h"

namespace ds::http {

enum class Endpoint { kChat, kCompletion };

// One completions prompt: text to tokenize, or token ids as given.
struct PromptInput {
  std::string text;
  std::vector<int32_t> ids;
  bool is_ids = false;
};

// Upper bound of n and of top_logprobs / logprobs (vLLM's max_logprobs default).
constexpr int kMaxChoices = 128;
constexpr int kMaxLogprobs = 20;

struct OpenAIRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;  // "" when absent

  // Chat: messages with string contents (text parts joined with "\n").
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;                 // null when absent
  nlohmann::ordered_json chat_template_kwargs;  // object or null
  bool add_generation_prompt = true;

  // Completions: one or more prompts (a batch fans out like n).
  std::vector<PromptInput> prompts;
  bool echo = false;

  RequestSampling sampling;             // max_new_tokens set by resolve_max_tokens
  std::optional<int64_t> max_tokens;    // max_tokens / max_completion_tokens
  std::vector<std::string> stop;
  bool include_stop_str_in_output = false;
  int n = 1;
  bool stream = false;
  bool include_usage = false;           // stream_options.include_usage
  bool logprobs = false;                // chat: logprobs; completions: logprobs != null
  int top_logprobs = 0;                 // chat: top_logprobs; completions: logprobs value
  bool skip_special_tokens = true;
  bool add_special_tokens = false;      // chat default false, completions default true
};

// `body` must already be parsed JSON (malformed JSON is the caller's 400).
// `defaults` gives the sampling values of fields the request leaves out (the
// model's generation_config, as vLLM applies it); only its temperature, top_p,
// top_k, min_p and repetition_penalty are read.
ApiResult<OpenAIRequest> parse_chat_request(const nlohmann::ordered_json& body, int64_t vocab_size,
                                            const RequestSampling& defaults = {});
ApiResult<OpenAIRequest> parse_completion_request(const nlohmann::ordered_json& body, int64_t vocab_size,
                                                  const RequestSampling& defaults = {});

// Sets sampling.max_new_tokens: the requested max_tokens, or all of the context
// left. Errors (vLLM's message) if the prompt plus max_tokens exceed max_model_len.
std::optional<ApiError> resolve_max_tokens(OpenAIRequest& request, int64_t prompt_tokens, int64_t max_model_len);

// Chat message content normalization: string, null, or a list of {"type": "text"} parts.
ApiResult<nlohmann::ordered_json> normalize_messages(const nlohmann::ordered_json& messages);

}  // namespace ds::http
