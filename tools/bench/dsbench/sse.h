// Incremental Server-Sent Events parser (the WHATWG event-stream format) for
// OpenAI-style streaming responses: bytes arrive in arbitrary pieces; every
// complete event that carries data is handed to a callback.
//
//   SseParser p;
//   p.feed(piece, [&](std::string_view data) { ...; return true; });
//   p.finish(cb);  // at end of stream: an event not closed by a blank line
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace ds::bench {

class SseParser {
 public:
  // Return false to stop parsing (feed/finish then return false too).
  using Callback = std::function<bool(std::string_view data)>;

  // Lines end with "\n", "\r\n" or "\r" (also split across pieces). "data:"
  // fields (one optional space after the colon) of one event are joined with
  // "\n"; the event is dispatched at the blank line that ends it. Comments
  // (":...") and other fields (event, id, retry) are ignored.
  bool feed(std::string_view bytes, const Callback& on_event);
  // Dispatches a pending event at end of stream (an unterminated last line
  // counts as complete).
  bool finish(const Callback& on_event);

  // Bytes buffered in an incomplete line (bounded by the caller if needed).
  size_t buffered() const { return line_.size() + data_.size(); }

 private:
  bool process_line(std::string_view line, const Callback& on_event);
  bool dispatch(const Callback& on_event);

  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool after_cr_ = false;  // the last byte seen was '\r' (a following '\n' belongs to it)
};

}  // namespace ds::bench
