// Host implementation of Executor::step_sample's per-row semantics
// (RowSampling in runtime/executor/batch.h), used by the CPU executor:
//   penalties (repetition over the distinct tokens of prompt + output, then
//   frequency/presence over the output counts), then temperature / top-k /
//   top-p / min-p and a draw (ds::Sampler) seeded with a hash of (seed, counter),
//   so that the token is a pure function of (seed, counter, logits, history).
//   Logprobs (the chosen token's and the top-k) come from the raw logits.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/common/status.h"
#include "runtime/executor/batch.h"

namespace ds {

// Checks the row's parameters (ranges as the scheduler's RequestSampling, k <= 20,
// history ids inside the vocabulary); the error names the field.
Status validate_row_sampling(const RowSampling& s, int64_t vocab);

// The seed ds::Sampler draws with for (seed, counter): splitmix64 of both.
uint64_t row_draw_seed(uint64_t seed, uint64_t counter);

// Samples one row of raw logits [vocab]; `scratch` holds the penalized copy.
RowSample sample_row(const float* logits, int64_t vocab, const RowSampling& s, std::vector<float>* scratch);

}  // namespace ds
