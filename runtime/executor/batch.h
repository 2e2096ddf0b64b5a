// The description of one forward step: the tokens of any number of sequences,
// concatenated, plus what the attention kernels need to find each sequence's
// KV pages.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace ds {

struct StepSequence {
  int64_t first_token = 0;        // index of its first token in StepBatch::tokens
  int64_t num_tokens = 0;         // tokens of this sequence in the step
  int64_t num_cached = 0;         // tokens already in the KV cache (history before this step)
  std::vector<int32_t> page_table;  // covers num_cached + num_tokens tokens
};

// A step token that the host does not know yet: the id that the executor's
// most recent device sampling (Executor::enqueue_step_sample / step_sample)
// chose for its logit row `row`, read on the device (pipelined decode).
constexpr int32_t previous_sample_token(int64_t row) { return static_cast<int32_t>(-1 - row); }

struct StepBatch {
  std::vector<int32_t> tokens;      // step input 0, [T]; ids, or previous_sample_token(r) where the executor allows
  std::vector<int32_t> positions;   // step input 1, [T]
  std::vector<int32_t> logit_rows;  // step input 2, [R]: rows of the step whose logits are returned
  std::vector<StepSequence> sequences;

  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t num_logit_rows() const { return static_cast<int64_t>(logit_rows.size()); }
};

// Sampling of one logit row on the executor's device (Executor::step_sample).
// Semantics are those of the scheduler's RequestSampler (token_sampler.h):
// repetition penalty over prompt + output, then frequency/presence over the
// output, then temperature, top-k, top-p, min-p and a draw; logprobs come from
// the raw logits (before penalties and temperature). The draw is a pure function
// of (seed, counter, logits): same seed and history -> same token.
struct RowSampling {
  float temperature = 1.0f;          // 0: greedy (lowest id on ties)
  float top_p = 1.0f;
  int32_t top_k = -1;                // <= 0: off
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;
  uint64_t counter = 0;              // e.g. the number of tokens generated so far
  int32_t logprobs = -1;             // -1: none; k >= 0: chosen token's logprob + top-k (k <= 20)
  const int32_t* prompt = nullptr;   // history for the repetition penalty (host memory,
  int64_t prompt_len = 0;            //   valid during the call)
  const int32_t* output = nullptr;   // generated tokens (frequency/presence and repetition)
  int64_t output_len = 0;
};

struct RowSample {
  int32_t id = 0;
  float logprob = 0.0f;                          // valid when logprobs >= 0
  std::vector<std::pair<int32_t, float>> top;    // logprobs > 0: best first, ties lower id first
};

}  // namespace ds
