// DeepSeek-R1 reasoning parser: splits generated text into reasoning_content
// (inside <think> ... </think>) and content (after </think>), incrementally.
//
// The R1 chat template opens "<think>\n" in the prompt, so the model usually
// emits only "</think>": text before it is reasoning, text after it content.
// An explicit "<think>" at the very start of the output is dropped. If
// "</think>" never comes, everything is reasoning. Tags split across pushes are
// held back until they are complete (or can no longer be a tag).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace ds::http {

struct ReasoningDelta {
  std::string reasoning;
  std::string content;
  bool empty() const { return reasoning.empty() && content.empty(); }
};

class ReasoningParser {
 public:
  virtual ~ReasoningParser() = default;
  virtual ReasoningDelta push(std::string_view text) = 0;
  virtual ReasoningDelta flush() = 0;
  // True once the parser has left the reasoning section.
  virtual bool in_content() const = 0;
};

class DeepSeekR1ReasoningParser : public ReasoningParser {
 public:
  ReasoningDelta push(std::string_view text) override;
  ReasoningDelta flush() override;
  bool in_content() const override { return state_ == State::kContent; }

 private:
  enum class State { kStart, kReasoning, kContent };
  State state_ = State::kStart;
  std::string held_;
};

// "deepseek_r1" -> parser; "" -> nullptr. Names are checked by ServerOptions::validate.
std::unique_ptr<ReasoningParser> make_reasoning_parser(const std::string& name);
bool is_known_reasoning_parser(const std::string& name);

// Whole-text parse (non-streaming responses).
ReasoningDelta parse_reasoning(ReasoningParser& parser, std::string_view text);

}  // namespace ds::http
