// Token sampling: greedy (temperature 0) or temperature + top-k + top-p + min-p
// filtering, drawn with a seeded 64-bit Mersenne Twister so runs are reproducible.
#pragma once

#include <cstdint>
#include <random>

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

// Index of the largest logit (lowest index on ties).
int32_t argmax(const float* logits, int64_t vocab);
// log(sum(exp(logits))), computed stably.
double logsumexp(const float* logits, int64_t vocab);

}  // namespace ds
