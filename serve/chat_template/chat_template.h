// Chat templates: a Jinja2 interpreter for the `chat_template` of Hugging Face tokenizer
// configs, rendering exactly as transformers' apply_chat_template does (sandboxed environment
// with trim_blocks, lstrip_blocks, loop controls, HF's tojson, raise_exception, strftime_now).
//
//   DS_ASSIGN_OR_RETURN(auto tmpl, ds::ChatTemplate::parse(source));
//   DS_ASSIGN_OR_RETURN(std::string prompt, tmpl->render(context));
//
// Context as transformers builds it: {"messages": [...], "tools": [...] or null,
// "documents": null, "add_generation_prompt": bool, "bos_token": "...", "eos_token": "...",
// plus extra template kwargs such as "enable_thinking"}. Templates test `tools is defined` /
// `tools is none`, so pass null rather than omitting keys transformers always passes.
//
// Differences from Python Jinja2 (none affect the supported model templates): integers are
// 64-bit (overflow is an error, JSON integers above INT64_MAX become floats); `safe`/`escape`
// return plain strings (no Markup type, so no auto-escaping on concatenation); no
// include/import/extends (no loader); ranges are capped at 100000 items as in Jinja's sandbox;
// macro calls and recursive loops nest at most 100 deep.
//
// A parsed template is immutable; render() may be called concurrently from several threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "runtime/common/status.h"

namespace ds {

namespace jinja {
struct Stmt;
}

class ChatTemplate {
 public:
  // Parses once; syntax errors name line and column ("syntax error at line 3, column 12: ...").
  static Result<std::unique_ptr<ChatTemplate>> parse(std::string_view source);

  // Renders with a JSON context (messages, add_generation_prompt, bos_token, eos_token, tools,
  // ...). Template runtime errors (raise_exception, type errors, undefined values used where
  // Jinja fails) come back as a Status with the message; raise_exception's message verbatim.
  Result<std::string> render(const nlohmann::json& context) const;
  // Same, keeping the key order of JSON objects (Python dicts are insertion ordered, so
  // `tools | tojson` prints keys in request order only through this overload).
  Result<std::string> render(const nlohmann::ordered_json& context) const;

  ~ChatTemplate();
  ChatTemplate(const ChatTemplate&) = delete;
  ChatTemplate& operator=(const ChatTemplate&) = delete;

 private:
  ChatTemplate();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds
