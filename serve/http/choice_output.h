// The text pipeline of one choice: generated token ids -> incremental
// detokenization -> stop strings (held back while they may still match) ->
// reasoning / content split. Also the OpenAI logprob objects of its tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/scheduler/request.h"
#include "serve/http/reasoning_parser.h"
#include "serve/http/stop_matcher.h"
#include "serve/tokenizer/tokenizer.h"

namespace ds::http {

struct ChoiceConfig {
  std::vector<std::string> stop;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  std::string reasoning_parser;  // "" = none
};

class ChoiceOutput {
 public:
  struct Delta {
    std::string text;                       // output text released by this update
    ReasoningDelta split;                   // text split by the reasoning parser (if any)
    std::vector<GeneratedToken> tokens;     // tokens of this update that count as output
  };

  ChoiceOutput(const Tokenizer& tok, ChoiceConfig config);

  // Consumes one backend update. After a stop-string match the choice is
  // finished (the caller aborts the backend request) and later updates are ignored.
  Delta on_output(const RequestOutput& out);

  bool finished() const { return finished_; }
  bool stop_string_matched() const { return stop_string_matched_; }
  // "stop", "length", "abort" or "error"; empty while running.
  const std::string& finish_reason() const { return finish_reason_; }
  // vLLM's stop_reason: the matched stop string, the matched stop token id, or null.
  const nlohmann::json& stop_reason() const { return stop_reason_; }
  const std::string& error() const { return error_; }

  const std::string& text() const { return text_; }   // all released text
  const std::vector<GeneratedToken>& tokens() const { return tokens_; }
  const std::vector<std::optional<TokenLogprob>>& prompt_logprobs() const { return prompt_logprobs_; }
  int64_t prompt_tokens() const { return prompt_tokens_; }
  int64_t cached_prompt_tokens() const { return cached_prompt_tokens_; }
  int64_t completion_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  bool has_reasoning_parser() const { return parser_ != nullptr; }

 private:
  void release(std::string text, Delta* d);

  const Tokenizer& tok_;
  ChoiceConfig config_;
  IncrementalDecoder decoder_;
  StopMatcher stop_;
  std::unique_ptr<ReasoningParser> parser_;
  bool finished_ = false;
  bool stop_string_matched_ = false;
  std::string finish_reason_;
  nlohmann::json stop_reason_;
  std::string error_;
  std::string text_;
  std::vector<GeneratedToken> tokens_;
  std::vector<std::optional<TokenLogprob>> prompt_logprobs_;
  int64_t prompt_tokens_ = 0;
  int64_t cached_prompt_tokens_ = 0;
};

// The text of one token for logprob objects: its decoded bytes, with invalid
// UTF-8 (a token holding part of a character) replaced by U+FFFD.
struct TokenText {
  std::string text;
  std::vector<uint8_t> bytes;  // raw bytes
};
TokenText token_text(const Tokenizer& tok, int32_t id);
std::string to_valid_utf8(std::string_view bytes);
// Number of Unicode code points (OpenAI's text_offset unit).
int64_t utf8_length(std::string_view text);

// logprob values as JSON numbers: -inf becomes -9999.0 (vLLM's convention).
double clamp_logprob(float logprob);

// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]} entries for `tokens`.
nlohmann::json chat_logprobs_content(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens, int top_k);

// Completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}, appended to `out`
// (created when null). Prompt entries (echo) have a null logprob for the first token.
void append_completion_logprobs(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens, int top_k,
                                int64_t* text_offset, nlohmann::json* out);
void append_prompt_logprobs(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                            const std::vector<std::optional<TokenLogprob>>& logprobs, int64_t* text_offset,
                            nlohmann::json* out);

std::string finish_reason_name(FinishReason reason);

}  // namespace ds::http
