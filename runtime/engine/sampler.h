// Token sampling: greedy (temperature 0) or temperature + top-k + top-p + min-p
// filtering, drawn with a seeded 64-bit Mersenne Twister so runs are reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "runtime/common/status.h"

namespace ds {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  int32_t top_k = -1;        // <= 0: off
  float top_p = 1.0f;        // (0, 1]
  float min_p = 0.0f;        // [0, 1]
  uint64_t seed = 0;

  Status validate() const;
  bool greedy() const { return temperature == 0.0f || top_k == 1; }
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}
  // Picks a token from float32 logits [vocab]. Greedy ties go to the lowest id.
  int32_t sample(const float* logits, int64_t vocab);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

// The tokens a non-greedy Sampler may draw, best first (ties: lower id first),
// with their probabilities at `params.temperature` after top-k, then the top-p
// prefix, then min-p. Probabilities are normalized before the top-p/min-p cuts,
// so they sum to at most 1 (the draw is over their sum).
struct FilteredDistribution {
  std::vector<int32_t> ids;
  std::vector<double> probs;
};
FilteredDistribution filtered_distribution(const float* logits, int64_t vocab, const SamplingParams& params);

// Index of the largest logit (lowest index on ties).
int32_t argmax(const float* logits, int64_t vocab);
// log(sum(exp(logits))), computed stably.
double logsumexp(const float* logits, int64_t vocab);

}  // namespace ds
