#include "serve/http/reasoning_parser.h"

#include "serve/http/stop_matcher.h"

namespace ds::http {
namespace {
constexpr std::string_view kThinkStart = "<think>";
constexpr std::string_view kThinkEnd = "</think>";
}  // namespace

ReasoningDelta DeepSeekR1ReasoningParser::push(std::string_view text) {
  ReasoningDelta out;
  held_.append(text);
  if (state_ == State::kStart) {
    if (held_.size() < kThinkStart.size() && kThinkStart.substr(0, held_.size()) == held_) {
      return out;  // could still be "<think>"
    }
    if (held_.compare(0, kThinkStart.size(), kThinkStart) == 0) held_.erase(0, kThinkStart.size());
    state_ = State::kReasoning;
  }
  if (state_ == State::kReasoning) {
    size_t end = held_.find(kThinkEnd);
    if (end == std::string::npos) {
      size_t hold = partial_suffix_match(held_, kThinkEnd);
      out.reasoning = held_.substr(0, held_.size() - hold);
      held_.erase(0, held_.size() - hold);
      return out;
    }
    out.reasoning = held_.substr(0, end);
    held_.erase(0, end + kThinkEnd.size());
    state_ = State::kContent;
  }
  out.content += held_;
  held_.clear();
  return out;
}

ReasoningDelta DeepSeekR1ReasoningParser::flush() {
  ReasoningDelta out;
  if (state_ == State::kContent) {
    out.content = std::move(held_);
  } else {
    out.reasoning = std::move(held_);  // an unfinished tag is plain reasoning text
  }
  held_.clear();
  if (state_ == State::kStart) state_ = State::kReasoning;
  return out;
}

std::unique_ptr<ReasoningParser> make_reasoning_parser(const std::string& name) {
  if (name == "deepseek_r1") return std::make_unique<DeepSeekR1ReasoningParser>();
  return nullptr;
}

bool is_known_reasoning_parser(const std::string& name) { return name == "deepseek_r1"; }

ReasoningDelta parse_reasoning(ReasoningParser& parser, std::string_view text) {
  ReasoningDelta all = parser.push(text);
  ReasoningDelta rest = parser.flush();
  all.reasoning += rest.reasoning;
  all.content += rest.content;
  return all;
}

}  // namespace ds::http
