#include "runtime/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace ds {

Status SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    return Status::Error(StrCat() << "temperature " << temperature << " must be a finite number >= 0");
  if (!(top_p > 0.0f && top_p <= 1.0f)) return Status::Error(StrCat() << "top_p " << top_p << " must be in (0, 1]");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return Status::Error(StrCat() << "min_p " << min_p << " must be in [0, 1]");
  return Status::Ok();
}

int32_t argmax(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

double logsumexp(const float* logits, int64_t vocab) {
  float mx = logits[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, logits[i]);
  if (std::isinf(mx)) return mx;
  double s = 0.0;
  for (int64_t i = 0; i < vocab; ++i) s += std::exp(static_cast<double>(logits[i]) - mx);
  return mx + std::log(s);
}

FilteredDistribution filtered_distribution(const float* logits, int64_t vocab, const SamplingParams& params) {
  // Probabilities at the given temperature, sorted by decreasing probability.
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = vocab;
  if (params.top_k > 0 && params.top_k < vocab) {
    keep = params.top_k;
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
  } else {
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
  }
  order.resize(static_cast<size_t>(keep));
  const double inv_t = 1.0 / params.temperature;
  const double mx = logits[order[0]] * inv_t;
  std::vector<double> probs(order.size());
  double total = 0.0;
  for (size_t i = 0; i < order.size(); ++i) {
    probs[i] = std::exp(logits[order[i]] * inv_t - mx);
    total += probs[i];
  }
  for (double& p : probs) p /= total;
  // top-p: smallest prefix whose mass reaches top_p (always at least one token).
  if (params.top_p < 1.0f) {
    double cum = 0.0;
    size_t n = 0;
    while (n < probs.size()) {
      cum += probs[n++];
      if (cum >= params.top_p) break;
    }
    probs.resize(n);
  }
  // min-p: drop tokens below min_p * the top probability.
  if (params.min_p > 0.0f) {
    const double floor = params.min_p * probs[0];
    size_t n = 1;
    while (n < probs.size() && probs[n] >= floor) ++n;
    probs.resize(n);
  }
  order.resize(probs.size());
  return FilteredDistribution{std::move(order), std::move(probs)};
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  if (params_.greedy()) return argmax(logits, vocab);
  const FilteredDistribution d = filtered_distribution(logits, vocab, params_);
  double mass = std::accumulate(d.probs.begin(), d.probs.end(), 0.0);
  std::uniform_real_distribution<double> u(0.0, mass);
  double r = u(rng_);
  for (size_t i = 0; i < d.probs.size(); ++i) {
    r -= d.probs[i];
    if (r < 0.0) return d.ids[i];
  }
  return d.ids.back();
}

}  // namespace ds
