// Pre-tokenizers of tokenizer.json: Sequence, Split (String or Regex pattern,
// every SplitDelimiterBehavior, invert) and ByteLevel (add_prefix_space,
// use_regex with the GPT-2 pattern). ByteLevel's byte -> unicode mapping is not
// applied here: words stay raw bytes and the BPE model maps them (byte_level()).
#pragma once

#include <deque>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/common/status.h"
#include "serve/tokenizer/regex.h"

namespace ds::tok {

// Pre-tokens of one input. Words point into the input or into `owned`.
struct WordList {
  std::vector<std::string_view> words;
  std::deque<std::string> owned;
  // Per-depth match buffers, reused between calls.
  std::vector<std::vector<std::pair<size_t, size_t>>> matches;
  std::vector<std::vector<std::tuple<size_t, size_t, bool>>> pieces;
  void clear() {
    words.clear();
    owned.clear();
  }
};

class PreTokenizer {
 public:
  // Builds from the "pre_tokenizer" value (null: the whole text is one word).
  static Result<PreTokenizer> from_json(const nlohmann::json& j, const std::string& what);

  PreTokenizer() = default;
  PreTokenizer(PreTokenizer&&) noexcept = default;
  PreTokenizer& operator=(PreTokenizer&&) noexcept = default;

  // True if the pipeline ends with ByteLevel: the model sees byte-level chars.
  bool byte_level() const { return byte_level_; }

  // Appends the non-empty pre-tokens of `text` (valid UTF-8) to out->words.
  Status split(std::string_view text, WordList* out) const;

 private:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    Regex regex;
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool byte_level = false;        // ByteLevel step
    bool add_prefix_space = false;  // ByteLevel
    bool use_regex = false;         // ByteLevel
  };
  static Status add(const nlohmann::json& j, const std::string& what, PreTokenizer* pt);
  Status run(size_t step, std::string_view piece, WordList* out) const;

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace ds::tok
