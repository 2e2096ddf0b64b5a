// Post-processors of tokenizer.json: TemplateProcessing (single / pair
// templates with special_tokens), BertProcessing, RobertaProcessing, ByteLevel
// (no effect on ids) and Sequence of those.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/common/status.h"

namespace ds::tok {

class PostProcessor {
 public:
  // Builds from the "post_processor" value (null: plain concatenation).
  static Result<PostProcessor> from_json(const nlohmann::json& j, const std::string& what);

  // Combines one (or two, for a pair) encodings into *out, adding the
  // special tokens when `add_special_tokens`. Fails if a pair is given and
  // a template has no pair form.
  Status process(std::vector<std::vector<int32_t>> encodings, bool add_special_tokens,
                 std::vector<int32_t>* out) const;

 private:
  struct Piece {
    int sequence = -1;         // 0: $A, 1: $B, -1: special token
    std::vector<int32_t> ids;  // special token ids
  };
  enum class Kind { kByteLevel, kTemplate, kBert, kRoberta };
  struct Step {
    Kind kind;
    std::vector<Piece> single, pair;
    bool has_pair = false;
    int32_t cls = 0, sep = 0;
  };
  static Status add(const nlohmann::json& j, const std::string& what, std::vector<Step>* steps);

  std::vector<Step> steps_;
};

}  // namespace ds::tok
