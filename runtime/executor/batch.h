// The description of one forward step: the tokens of any number of sequences,
// concatenated, plus what the attention kernels need to find each sequence's
// KV pages.
#pragma once

#include <cstdint>
#include <vector>

namespace ds {

struct StepSequence {
  int64_t first_token = 0;        // index of its first token in StepBatch::tokens
  int64_t num_tokens = 0;         // tokens of this sequence in the step
  int64_t num_cached = 0;         // tokens already in the KV cache (history before this step)
  std::vector<int32_t> page_table;  // covers num_cached + num_tokens tokens
};

struct StepBatch {
  std::vector<int32_t> tokens;      // step input 0, [T]
  std::vector<int32_t> positions;   // step input 1, [T]
  std::vector<int32_t> logit_rows;  // step input 2, [R]: rows of the step whose logits are returned
  std::vector<StepSequence> sequences;

  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t num_logit_rows() const { return static_cast<int64_t>(logit_rows.size()); }
};

}  // namespace ds
