// Stop strings over streamed text. Text that could still become a stop string
// is held back, so a stop string split across tokens never leaks into the
// output, and nothing after a match is emitted.
//
//   StopMatcher m({"###"}, /*include_stop=*/false);
//   m.push("a#")  -> {"a", false}     ("#" held back)
//   m.push("##b") -> {"", true, "###"}
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ds::http {

class StopMatcher {
 public:
  struct Update {
    std::string text;                        // safe to emit now
    std::optional<std::string> matched;      // the stop string that ended the output
  };

  // Empty stop strings are ignored (validation rejects them earlier).
  explicit StopMatcher(std::vector<std::string> stops, bool include_stop = false);

  // Feeds new text; after a match every further push returns nothing.
  Update push(std::string_view text);
  // End of output without a match: returns the held-back text.
  std::string flush();

  bool stopped() const { return stopped_; }
  bool active() const { return !stops_.empty(); }

 private:
  std::vector<std::string> stops_;
  bool include_stop_;
  bool stopped_ = false;
  std::string held_;
};

// Length of the longest suffix of `text` that is a proper prefix of `pattern`.
size_t partial_suffix_match(std::string_view text, std::string_view pattern);

}  // namespace ds::http
