// Per-request token selection for the scheduler: penalties over the request's
// history, then temperature / top-k / top-p / min-p sampling (ds::Sampler, with
// the request's own seeded RNG), plus logprobs of the raw model distribution.
//
// Order (vLLM): repetition penalty (prompt + generated tokens), then frequency
// and presence penalties (generated tokens only), then sampling. Logprobs are
// computed from the logits as the model produced them (before penalties and
// temperature), which is vLLM's default "raw logprobs" mode.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "runtime/engine/sampler.h"
#include "runtime/scheduler/request.h"

namespace ds {

// The history the penalties look at.
struct PenaltyState {
  std::vector<uint8_t> seen;                       // [vocab]: token occurs in prompt or output
  std::unordered_map<int32_t, int32_t> out_counts;  // occurrences in the generated output

  void init(const std::vector<int32_t>& prompt, int64_t vocab);
  void add_output(int32_t token);
};

// Rewrites logits[vocab] in place:
//   repetition (r != 1), for tokens seen in prompt or output: l > 0 ? l / r : l * r
//   frequency f and presence p, for tokens generated c > 0 times: l -= f * c + p
void apply_penalties(const RequestSampling& s, const PenaltyState& state, float* logits, int64_t vocab);

// log_softmax(logits)[token] and, with k > 0, the k most likely tokens (best
// first, ties: lower id first).
TokenLogprob token_logprob(const float* logits, int64_t vocab, int32_t token, double logsumexp_value);
std::vector<TokenLogprob> top_logprobs(const float* logits, int64_t vocab, int32_t k, double logsumexp_value);

class RequestSampler {
 public:
  // `seed` is the resolved seed (the request's, or a random one).
  RequestSampler(const RequestSampling& s, uint64_t seed, const std::vector<int32_t>& prompt, int64_t vocab);

  // Picks the next token from one raw logits row and records it in the history.
  GeneratedToken next(const float* logits);
  // Records a token chosen elsewhere (the executor's step_sample) in the history.
  void record(int32_t token) { state_.add_output(token); }
  bool needs_penalties() const;

 private:
  RequestSampling s_;
  int64_t vocab_;
  Sampler sampler_;
  PenaltyState state_;
  std::vector<float> scratch_;
};

}  // namespace ds
