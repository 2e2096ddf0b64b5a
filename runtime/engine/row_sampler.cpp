#include "runtime/engine/row_sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "runtime/engine/sampler.h"

namespace ds {
namespace {

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Status check_ids(const int32_t* ids, int64_t n, int64_t vocab, const char* what) {
  if (n < 0 || (n > 0 && !ids)) return Status::Error(StrCat() << "row sampling: invalid " << what << " history");
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      return Status::Error(StrCat() << "row sampling: " << what << " token " << ids[i] << " at " << i
                                    << " is outside the vocabulary [0, " << vocab << ")");
  return Status::Ok();
}

}  // namespace

uint64_t row_draw_seed(uint64_t seed, uint64_t counter) { return splitmix64(seed ^ splitmix64(counter)); }

Status validate_row_sampling(const RowSampling& s, int64_t vocab) {
  SamplingParams p;
  p.temperature = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  DS_RETURN_IF_ERROR(p.validate());
  if (!(s.repetition_penalty > 0.0f) || !std::isfinite(s.repetition_penalty))
    return Status::Error(StrCat() << "repetition_penalty " << s.repetition_penalty << " must be positive");
  if (!std::isfinite(s.frequency_penalty) || !std::isfinite(s.presence_penalty))
    return Status::Error("frequency_penalty and presence_penalty must be finite");
  if (s.logprobs < -1 || s.logprobs > 20)
    return Status::Error(StrCat() << "logprobs " << s.logprobs << " must be in [-1, 20]");
  DS_RETURN_IF_ERROR(check_ids(s.prompt, s.prompt_len, vocab, "prompt"));
  return check_ids(s.output, s.output_len, vocab, "output");
}

RowSample sample_row(const float* logits, int64_t vocab, const RowSampling& s, std::vector<float>* scratch) {
  RowSample out;
  const float* row = logits;
  const bool repetition = s.repetition_penalty != 1.0f;
  const bool freq = s.frequency_penalty != 0.0f || s.presence_penalty != 0.0f;
  if (repetition || freq) {
    scratch->assign(logits, logits + vocab);
    float* l = scratch->data();
    if (repetition) {  // each distinct token of prompt + output once
      std::vector<uint8_t> seen(static_cast<size_t>(vocab), 0);
      auto mark = [&](const int32_t* ids, int64_t n) {
        for (int64_t i = 0; i < n; ++i) seen[static_cast<size_t>(ids[i])] = 1;
      };
      mark(s.prompt, s.prompt_len);
      mark(s.output, s.output_len);
      const float r = s.repetition_penalty;
      for (int64_t v = 0; v < vocab; ++v)
        if (seen[static_cast<size_t>(v)]) l[v] = l[v] > 0.0f ? l[v] / r : l[v] * r;
    }
    if (freq) {
      std::unordered_map<int32_t, int32_t> counts;
      for (int64_t i = 0; i < s.output_len; ++i) ++counts[s.output[i]];
      for (const auto& [token, count] : counts)
        l[token] -= s.frequency_penalty * static_cast<float>(count) + s.presence_penalty;
    }
    row = l;
  }
  SamplingParams p;
  p.temperature = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  p.seed = row_draw_seed(s.seed, s.counter);
  Sampler sampler(p);
  out.id = sampler.sample(row, vocab);
  if (s.logprobs >= 0) {
    const double lse = logsumexp(logits, vocab);
    out.logprob = static_cast<float>(static_cast<double>(logits[out.id]) - lse);
    const int64_t k = std::min<int64_t>(s.logprobs, vocab);
    if (k > 0) {
      std::vector<int32_t> order(static_cast<size_t>(vocab));
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
      });
      for (int64_t i = 0; i < k; ++i)
        out.top.emplace_back(order[static_cast<size_t>(i)],
                             static_cast<float>(static_cast<double>(logits[order[static_cast<size_t>(i)]]) - lse));
    }
  }
  return out;
}

}  // namespace ds
