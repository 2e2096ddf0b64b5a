// The parts of OpenAI chat/completions responses that the benchmark reads:
// generated text, usage and errors, from streamed chunks and whole bodies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/common/status.h"

namespace ds::bench {

enum class ApiEndpoint { kChat, kCompletions };

struct ResponsePiece {
  bool done = false;                 // the "[DONE]" sentinel
  std::string text;                  // generated text of choice 0 (chat: reasoning_content + content)
  std::optional<int64_t> prompt_tokens;      // usage, when present
  std::optional<int64_t> completion_tokens;
  std::optional<std::string> finish_reason;
  std::optional<std::string> error;  // {"error": {...}} or vLLM's {"object": "error", ...}
};

// One SSE data payload of a streamed response. An error for data that is not
// a JSON object (a protocol error, not a server-reported one).
Result<ResponsePiece> parse_stream_data(std::string_view data, ApiEndpoint endpoint);

// A whole non-streamed response body (choice 0's message / text, usage).
Result<ResponsePiece> parse_response_body(std::string_view body, ApiEndpoint endpoint);

// The message of an error body ({"error": {"message"}}, {"message"} or
// {"detail"}), else the body itself truncated to `max_len` bytes.
std::string error_message_from_body(std::string_view body, size_t max_len = 300);

}  // namespace ds::bench
