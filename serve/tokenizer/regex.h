// PCRE2 (UTF + UCP + JIT) regex with the match iteration semantics of the
// Oniguruma binding used by HF tokenizers: non-overlapping, leftmost-first,
// and an empty match right after the previous match is skipped.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/common/status.h"

namespace ds::tok {

class Regex {
 public:
  // `what` names the pattern in errors (e.g. "pre_tokenizer.pretokenizers[0].pattern").
  static Result<Regex> compile(std::string_view pattern, const std::string& what);
  // A pattern matching `literal` verbatim.
  static std::string escape(std::string_view literal);

  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Appends the [start, end) byte ranges of all matches in `subject` (valid
  // UTF-8) to *out. Fails only on a PCRE2 resource limit.
  Status find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>* out) const;

 private:
  struct Impl;
  explicit Regex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds::tok
