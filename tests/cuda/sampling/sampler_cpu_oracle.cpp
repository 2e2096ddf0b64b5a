#include "tests/cuda/sampling/sampler_cpu_oracle.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/scheduler/request.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/engine/sampler.h"
#include "runtime/scheduler/token_sampler.h"

namespace ds::cuda::testing {

bool AllowedSet::contains(int32_t id) const { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

AllowedSet cpu_allowed_set(const float* logits, int64_t vocab, const RowSampling& s) {
  AllowedSet out;
  if (s.temperature == 0.0f || s.top_k == 1) {
    out.ids = {argmax(logits, vocab)};
    out.probs = {1.0};
    return out;
  }
  // ds::Sampler's own filtering (order, top-k, probabilities, top-p prefix, min-p).
  SamplingParams p;
  p.temperature = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  FilteredDistribution d = filtered_distribution(logits, vocab, p);
  const double mass = std::accumulate(d.probs.begin(), d.probs.end(), 0.0);
  out.ids = std::move(d.ids);
  for (double q : d.probs) out.probs.push_back(q / mass);
  return out;
}

std::vector<float> cpu_penalized(const float* logits, int64_t vocab, const RowSampling& s) {
  std::vector<float> row(logits, logits + vocab);
  RequestSampling rs;
  rs.repetition_penalty = s.repetition_penalty;
  rs.frequency_penalty = s.frequency_penalty;
  rs.presence_penalty = s.presence_penalty;
  std::vector<int32_t> prompt(s.prompt, s.prompt + s.prompt_len);
  PenaltyState state;
  const bool rep = s.repetition_penalty != 1.0f;
  state.init(rep ? prompt : std::vector<int32_t>{}, rep ? vocab : 0);
  for (int64_t i = 0; i < s.output_len; ++i) state.add_output(s.output[i]);
  apply_penalties(rs, state, row.data(), vocab);
  return row;
}

std::vector<float> random_logits(int64_t rows, int64_t vocab, uint32_t seed, float scale, float step) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(rows * vocab));
  for (float& x : v) {
    x = nd(rng);
    if (step > 0.0f) x = std::round(x / step) * step;
  }
  return v;
}

std::unique_ptr<SamplerHarness> SamplerHarness::create(int64_t vocab, int64_t max_rows, bool cluster) {
  auto h = std::make_unique<SamplerHarness>();
  h->vocab_ = vocab;
  auto s = DeviceSampler::create(vocab, max_rows, true, cluster);
  if (!s.ok()) return nullptr;
  h->sampler_ = std::move(s.value());
  auto st = Stream::create();
  if (!st.ok()) return nullptr;
  h->stream_ = std::move(st.value());
  return h;
}

Status SamplerHarness::run(const std::vector<float>& logits, const std::vector<RowSampling>& rows,
                           std::vector<RowSample>* out, std::vector<float>* logits_after) {
  const size_t bytes = logits.size() * sizeof(float);
  if (logits_.bytes() < bytes) {
    logits_.reset();
    DS_ASSIGN_OR_RETURN(logits_, DeviceBuffer::allocate(bytes));
  }
  // Stream-ordered upload: a plain cudaMemcpy from pageable memory may return
  // before its DMA lands, and the sampler's stream is non-blocking (not ordered
  // after the legacy stream), so the kernel could read the previous logits.
  DS_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(logits_.data(), logits.data(), bytes, cudaMemcpyHostToDevice, stream_.get()));
  DS_RETURN_IF_ERROR(sampler_->sample(static_cast<float*>(logits_.data()), rows, out, stream_.get()));
  if (logits_after) {
    logits_after->resize(logits.size());
    DS_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(logits_after->data(), logits_.data(), bytes, cudaMemcpyDeviceToHost, stream_.get()));
    DS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_.get()));
  }
  return Status::Ok();
}

}  // namespace ds::cuda::testing
