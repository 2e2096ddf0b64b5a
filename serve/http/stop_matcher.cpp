#include "serve/http/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace ds::http {

size_t partial_suffix_match(std::string_view text, std::string_view pattern) {
  size_t max_len = std::min(text.size(), pattern.empty() ? 0 : pattern.size() - 1);
  for (size_t len = max_len; len > 0; --len) {
    if (text.substr(text.size() - len) == pattern.substr(0, len)) return len;
  }
  return 0;
}

StopMatcher::StopMatcher(std::vector<std::string> stops, bool include_stop) : include_stop_(include_stop) {
  for (auto& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

StopMatcher::Update StopMatcher::push(std::string_view text) {
  Update update;
  if (stopped_) return update;
  if (stops_.empty()) {
    update.text.assign(text);
    return update;
  }
  held_.append(text);
  // Earliest match wins; at equal positions the longest stop string.
  size_t best_pos = std::string::npos;
  const std::string* best = nullptr;
  for (const auto& s : stops_) {
    size_t pos = held_.find(s);
    if (pos == std::string::npos) continue;
    if (pos < best_pos || (pos == best_pos && s.size() > best->size())) {
      best_pos = pos;
      best = &s;
    }
  }
  if (best != nullptr) {
    stopped_ = true;
    update.text = held_.substr(0, best_pos + (include_stop_ ? best->size() : 0));
    update.matched = *best;
    held_.clear();
    return update;
  }
  size_t hold = 0;
  for (const auto& s : stops_) hold = std::max(hold, partial_suffix_match(held_, s));
  update.text = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return update;
}

std::string StopMatcher::flush() {
  if (stopped_) return {};
  return std::exchange(held_, std::string());
}

}  // namespace ds::http
