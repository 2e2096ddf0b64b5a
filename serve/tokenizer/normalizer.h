// Normalizers of tokenizer.json: Sequence, NFC, NFD, NFKC, NFKD, Lowercase,
// Prepend, Replace and Strip, with HF tokenizers semantics.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/common/status.h"
#include "serve/tokenizer/regex.h"

namespace ds::tok {

class Normalizer {
 public:
  // Builds from the "normalizer" value (null gives an identity normalizer).
  // `what` names the field in errors.
  static Result<Normalizer> from_json(const nlohmann::json& j, const std::string& what);

  Normalizer() = default;
  Normalizer(Normalizer&&) noexcept = default;
  Normalizer& operator=(Normalizer&&) noexcept = default;

  bool is_identity() const { return steps_.empty(); }
  // Writes the normalized form of `in` (valid UTF-8) to *out.
  Status normalize(std::string_view in, std::string* out) const;

 private:
  enum class Kind { kNfc, kNfd, kNfkc, kNfkd, kLowercase, kPrepend, kReplace, kStrip };
  struct Step {
    Kind kind;
    std::string text;     // Prepend: prefix; Replace: literal pattern
    std::string content;  // Replace: replacement
    std::optional<Regex> regex;  // Replace with a Regex pattern
    bool left = false, right = false;  // Strip
  };
  static Status add(const nlohmann::json& j, const std::string& what, std::vector<Step>* steps);
  static Status apply(const Step& step, std::string_view in, std::string* out);

  std::vector<Step> steps_;
};

}  // namespace ds::tok
