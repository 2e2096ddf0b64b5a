#include "serve/http/choice_output.h"

#include <cmath>
#include <utility>

namespace ds::http {

using json = nlohmann::json;

std::string finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kError: return "error";
    case FinishReason::kNone: break;
  }
  return "";
}

ChoiceOutput::ChoiceOutput(const Tokenizer& tok, ChoiceConfig config)
    : tok_(tok),
      config_(std::move(config)),
      decoder_(tok, config_.skip_special_tokens),
      stop_(config_.stop, config_.include_stop_str_in_output),
      parser_(make_reasoning_parser(config_.reasoning_parser)) {}

void ChoiceOutput::release(std::string text, Delta* d) {
  if (text.empty()) return;
  text_ += text;
  if (parser_) {
    ReasoningDelta r = parser_->push(text);
    d->split.reasoning += r.reasoning;
    d->split.content += r.content;
  }
  d->text += text;
}

ChoiceOutput::Delta ChoiceOutput::on_output(const RequestOutput& out) {
  Delta d;
  if (finished_) return d;
  if (out.prompt_tokens > 0) prompt_tokens_ = out.prompt_tokens;
  if (out.cached_prompt_tokens > 0) cached_prompt_tokens_ = out.cached_prompt_tokens;
  if (!out.prompt_logprobs.empty()) prompt_logprobs_ = out.prompt_logprobs;

  for (size_t i = 0; i < out.tokens.size(); ++i) {
    const GeneratedToken& t = out.tokens[i];
    tokens_.push_back(t);
    d.tokens.push_back(t);
    // A matched stop / eos token id ends the output without contributing text (as in vLLM).
    const bool is_stop_token = out.finish == FinishReason::kStop && out.matched_stop_token &&
                               i + 1 == out.tokens.size() && t.id == *out.matched_stop_token;
    if (is_stop_token) continue;
    StopMatcher::Update u = stop_.push(decoder_.push(t.id));
    release(std::move(u.text), &d);
    if (u.matched) {
      finished_ = true;
      stop_string_matched_ = true;
      finish_reason_ = "stop";
      stop_reason_ = *u.matched;
      break;
    }
  }
  if (!finished_ && out.finish != FinishReason::kNone) {
    StopMatcher::Update u = stop_.push(decoder_.flush());
    release(std::move(u.text), &d);
    if (u.matched) {
      stop_string_matched_ = true;
      finish_reason_ = "stop";
      stop_reason_ = *u.matched;
    } else {
      release(stop_.flush(), &d);
      finish_reason_ = finish_reason_name(out.finish);
      if (out.finish == FinishReason::kStop && out.matched_stop_token) stop_reason_ = *out.matched_stop_token;
      if (out.finish == FinishReason::kError) error_ = out.error.empty() ? "generation failed" : out.error;
    }
    finished_ = true;
  }
  if (finished_ && parser_) {
    ReasoningDelta r = parser_->flush();
    d.split.reasoning += r.reasoning;
    d.split.content += r.content;
  }
  return d;
}

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && len == 2) ok = c >= 0xC2;
    if (ok && len == 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
    }
    if (ok && len == 4) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = c <= 0xF4 && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

int64_t utf8_length(std::string_view text) {
  int64_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

TokenText token_text(const Tokenizer& tok, int32_t id) {
  TokenText t;
  std::string raw;
  tok.append_token_bytes(id, /*skip_special_tokens=*/false, /*first=*/true, &raw);
  t.bytes.assign(raw.begin(), raw.end());
  t.text = to_valid_utf8(raw);
  return t;
}

double clamp_logprob(float logprob) {
  if (std::isnan(logprob)) return -9999.0;
  return std::max(static_cast<double>(logprob), -9999.0);
}

json chat_logprobs_content(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens, int top_k) {
  json content = json::array();
  for (const auto& t : tokens) {
    TokenText tt = token_text(tok, t.id);
    json entry = {{"token", tt.text}, {"logprob", clamp_logprob(t.logprob)}, {"bytes", tt.bytes}};
    json top = json::array();
    for (size_t k = 0; k < t.top.size() && static_cast<int>(k) < top_k; ++k) {
      TokenText alt = token_text(tok, t.top[k].id);
      top.push_back({{"token", alt.text}, {"logprob", clamp_logprob(t.top[k].logprob)}, {"bytes", alt.bytes}});
    }
    entry["top_logprobs"] = std::move(top);
    content.push_back(std::move(entry));
  }
  return content;
}

namespace {

void ensure_completion_logprobs(json* out) {
  if (out->is_null()) {
    *out = {{"text_offset", json::array()}, {"token_logprobs", json::array()}, {"tokens", json::array()},
            {"top_logprobs", json::array()}};
  }
}

}  // namespace

void append_completion_logprobs(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens, int top_k,
                                int64_t* text_offset, json* out) {
  ensure_completion_logprobs(out);
  for (const auto& t : tokens) {
    TokenText tt = token_text(tok, t.id);
    (*out)["tokens"].push_back(tt.text);
    (*out)["token_logprobs"].push_back(clamp_logprob(t.logprob));
    (*out)["text_offset"].push_back(*text_offset);
    *text_offset += utf8_length(tt.text);
    json top = json::object();
    if (top_k > 0) {
      // vLLM lists the sampled token too.
      top[tt.text] = clamp_logprob(t.logprob);
      for (size_t k = 0; k < t.top.size() && static_cast<int>(k) < top_k; ++k) {
        std::string alt = token_text(tok, t.top[k].id).text;
        if (!top.contains(alt)) top[alt] = clamp_logprob(t.top[k].logprob);
      }
      (*out)["top_logprobs"].push_back(std::move(top));
    } else {
      (*out)["top_logprobs"].push_back(nullptr);
    }
  }
}

void append_prompt_logprobs(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                            const std::vector<std::optional<TokenLogprob>>& logprobs, int64_t* text_offset,
                            json* out) {
  ensure_completion_logprobs(out);
  for (size_t i = 0; i < prompt.size(); ++i) {
    TokenText tt = token_text(tok, prompt[i]);
    (*out)["tokens"].push_back(tt.text);
    const bool has = i < logprobs.size() && logprobs[i].has_value();
    (*out)["token_logprobs"].push_back(has ? json(clamp_logprob(logprobs[i]->logprob)) : json(nullptr));
    (*out)["text_offset"].push_back(*text_offset);
    *text_offset += utf8_length(tt.text);
    if (has) {
      (*out)["top_logprobs"].push_back(json{{tt.text, clamp_logprob(logprobs[i]->logprob)}});
    } else {
      (*out)["top_logprobs"].push_back(nullptr);
    }
  }
}

}  // namespace ds::http
