#include "tools/bench/dsbench/sse.h"

namespace ds::bench {

bool SseParser::feed(std::string_view bytes, const Callback& on_event) {
  size_t i = 0;
  if (after_cr_ && !bytes.empty()) {
    after_cr_ = false;
    if (bytes[0] == '\n') i = 1;
  }
  while (i < bytes.size()) {
    const size_t end = bytes.find_first_of("\r\n", i);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(i));
      break;
    }
    line_.append(bytes.substr(i, end - i));
    std::string line = std::move(line_);
    line_.clear();
    if (bytes[end] == '\r') {
      if (end + 1 < bytes.size()) {
        i = bytes[end + 1] == '\n' ? end + 2 : end + 1;
      } else {
        after_cr_ = true;
        i = end + 1;
      }
    } else {
      i = end + 1;
    }
    if (!process_line(line, on_event)) return false;
  }
  return true;
}

bool SseParser::finish(const Callback& on_event) {
  after_cr_ = false;
  if (!line_.empty()) {
    std::string line = std::move(line_);
    line_.clear();
    if (!process_line(line, on_event)) return false;
  }
  return dispatch(on_event);
}

bool SseParser::process_line(std::string_view line, const Callback& on_event) {
  if (line.empty()) return dispatch(on_event);
  if (line[0] == ':') return true;  // comment / keep-alive
  const size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  }
  return true;
}

bool SseParser::dispatch(const Callback& on_event) {
  if (!has_data_) return true;
  std::string data = std::move(data_);
  data_.clear();
  has_data_ = false;
  return on_event(data);
}

}  // namespace ds::bench
