#include "runtime/scheduler/token_sampler.h"

#include <algorithm>
#include <numeric>

namespace ds {

void PenaltyState::init(const std::vector<int32_t>& prompt, int64_t vocab) {
  seen.assign(static_cast<size_t>(vocab), 0);
  for (int32_t t : prompt)
    if (t >= 0 && t < vocab) seen[static_cast<size_t>(t)] = 1;
  out_counts.clear();
}

void PenaltyState::add_output(int32_t token) {
  if (token >= 0 && static_cast<size_t>(token) < seen.size()) seen[static_cast<size_t>(token)] = 1;  // empty: unused
  ++out_counts[token];
}

void apply_penalties(const RequestSampling& s, const PenaltyState& state, float* logits, int64_t vocab) {
  if (s.repetition_penalty != 1.0f) {
    const float r = s.repetition_penalty;
    const int64_t n = std::min<int64_t>(vocab, static_cast<int64_t>(state.seen.size()));
    for (int64_t v = 0; v < n; ++v)
      if (state.seen[static_cast<size_t>(v)]) logits[v] = logits[v] > 0.0f ? logits[v] / r : logits[v] * r;
  }
  if (s.frequency_penalty != 0.0f || s.presence_penalty != 0.0f) {
    for (const auto& [token, count] : state.out_counts) {
      if (token < 0 || token >= vocab || count <= 0) continue;
      logits[token] -= s.frequency_penalty * static_cast<float>(count) + s.presence_penalty;
    }
  }
}

TokenLogprob token_logprob(const float* logits, int64_t vocab, int32_t token, double logsumexp_value) {
  (void)vocab;
  return TokenLogprob{token, static_cast<float>(static_cast<double>(logits[token]) - logsumexp_value)};
}

std::vector<TokenLogprob> top_logprobs(const float* logits, int64_t vocab, int32_t k, double logsumexp_value) {
  std::vector<TokenLogprob> out;
  if (k <= 0) return out;
  const int64_t n = std::min<int64_t>(k, vocab);
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out.push_back(token_logprob(logits, vocab, order[i], logsumexp_value));
  return out;
}

namespace {
SamplingParams to_sampler_params(const RequestSampling& s, uint64_t seed) {
  SamplingParams p;
  p.temperature = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  p.seed = seed;
  return p;
}
}  // namespace

RequestSampler::RequestSampler(const RequestSampling& s, uint64_t seed, const std::vector<int32_t>& prompt,
                               int64_t vocab)
    : s_(s), vocab_(vocab), sampler_(to_sampler_params(s, seed)) {
  // The seen-token mask is only read by the repetition penalty.
  state_.init(s.repetition_penalty != 1.0f ? prompt : std::vector<int32_t>{}, s.repetition_penalty != 1.0f ? vocab : 0);
}

bool RequestSampler::needs_penalties() const {
  return s_.repetition_penalty != 1.0f || s_.frequency_penalty != 0.0f || s_.presence_penalty != 0.0f;
}

GeneratedToken RequestSampler::next(const float* logits) {
  GeneratedToken out;
  const float* row = logits;
  if (needs_penalties()) {
    scratch_.assign(logits, logits + vocab_);
    apply_penalties(s_, state_, scratch_.data(), vocab_);
    row = scratch_.data();
  }
  out.id = sampler_.sample(row, vocab_);
  if (s_.logprobs >= 0) {
    const double lse = logsumexp(logits, vocab_);
    out.logprob = token_logprob(logits, vocab_, out.id, lse).logprob;
    out.top = top_logprobs(logits, vocab_, s_.logprobs, lse);
  }
  state_.add_output(out.id);
  return out;
}

}  // namespace ds
