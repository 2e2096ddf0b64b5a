// Server-sent events framing of OpenAI streams: one `data: <json>\n\n` event per
// chunk, and the `data: [DONE]\n\n` terminator.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ds::http {

// Serializes `payload` compactly; invalid UTF-8 inside strings is replaced, never thrown on.
std::string sse_event(const nlohmann::json& payload);
std::string sse_done();

// Splits an SSE byte stream into the payloads of its `data:` events (the
// inverse of sse_event, for tests and clients). Incomplete trailing events are
// left in `buffer`.
class SseParser {
 public:
  // Appends bytes; returns the complete events' data fields (multi-line data joined with '\n').
  std::vector<std::string> feed(std::string_view bytes);
  const std::string& pending() const { return buffer_; }

 private:
  std::string buffer_;
};

// JSON text of a value, replacing invalid UTF-8 (never throws).
std::string dump_json(const nlohmann::json& value);

}  // namespace ds::http
