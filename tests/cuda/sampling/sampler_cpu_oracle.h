// CPU oracles for the GPU sampler tests: the allowed set and filtered
// distribution of ds::Sampler (runtime/engine/sampler.cpp, same order and tie
// rules), penalties through the scheduler's own apply_penalties, and a small
// harness that uploads logits and runs a DeviceSampler call.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "kernels/cuda/sampling/device_sampler.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/executor/batch.h"

namespace ds::cuda::testing {

// Tokens ds::Sampler may return for `s` (temperature/top-k/top-p/min-p), in
// the sampler's order, with their filtered probabilities (summing to 1).
struct AllowedSet {
  std::vector<int32_t> ids;
  std::vector<double> probs;
  bool contains(int32_t id) const;
};
AllowedSet cpu_allowed_set(const float* logits, int64_t vocab, const RowSampling& s);

// The row after the scheduler's penalties (RequestSampler's setup: the prompt
// counts only for the repetition penalty).
std::vector<float> cpu_penalized(const float* logits, int64_t vocab, const RowSampling& s);

// Random logits: N(0, scale), quantized to multiples of `step` when step > 0
// (then many exact ties).
std::vector<float> random_logits(int64_t rows, int64_t vocab, uint32_t seed, float scale = 3.0f, float step = 0.0f);

// Uploads logits [rows, vocab] and runs one sample() call; `logits_after`
// (optional) receives the row data after the call (penalties are in place).
class SamplerHarness {
 public:
  // cluster: DeviceSampler::create's (false: always the per-row kernel).
  static std::unique_ptr<SamplerHarness> create(int64_t vocab, int64_t max_rows, bool cluster = true);
  Status run(const std::vector<float>& logits, const std::vector<RowSampling>& rows, std::vector<RowSample>* out,
             std::vector<float>* logits_after = nullptr);
  DeviceSampler& sampler() { return *sampler_; }
  int64_t vocab() const { return vocab_; }

 private:
  int64_t vocab_ = 0;
  std::unique_ptr<DeviceSampler> sampler_;
  Stream stream_;
  DeviceBuffer logits_;
};

}  // namespace ds::cuda::testing
