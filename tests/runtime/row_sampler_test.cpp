// Executor::step_sample semantics on the host (runtime/engine/row_sampler.h) and
// the CPU executor's step_sample.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "runtime/engine/row_sampler.h"
#include "runtime/engine/sampler.h"

namespace ds {
namespace {

std::vector<float> ramp(int64_t vocab) {
  std::vector<float> l(static_cast<size_t>(vocab));
  for (int64_t v = 0; v < vocab; ++v) l[static_cast<size_t>(v)] = std::sin(0.7f * static_cast<float>(v)) * 3.0f;
  return l;
}

TEST(RowSampler, GreedyIsArgmaxAndLogprobsAreRaw) {
  const std::vector<float> l = ramp(50);
  RowSampling s;
  s.temperature = 0.0f;
  s.logprobs = 3;
  std::vector<float> scratch;
  const RowSample r = sample_row(l.data(), 50, s, &scratch);
  EXPECT_EQ(r.id, argmax(l.data(), 50));
  const double lse = logsumexp(l.data(), 50);
  EXPECT_NEAR(r.logprob, l[static_cast<size_t>(r.id)] - lse, 1e-6);
  ASSERT_EQ(r.top.size(), 3u);
  EXPECT_EQ(r.top[0].first, r.id);
  EXPECT_GE(r.top[0].second, r.top[1].second);
  EXPECT_GE(r.top[1].second, r.top[2].second);
}

TEST(RowSampler, PenaltiesChangeTheGreedyPick) {
  std::vector<float> l(8, 0.0f);
  l[3] = 2.0f;
  l[5] = 1.5f;
  l[6] = -1.0f;
  const int32_t prompt[] = {3, 3, 6};
  const int32_t output[] = {5, 5};
  RowSampling s;
  s.temperature = 0.0f;
  s.logprobs = 0;
  std::vector<float> scratch;
  EXPECT_EQ(sample_row(l.data(), 8, s, &scratch).id, 3);
  s.repetition_penalty = 2.0f;  // token 3 seen in the prompt (once, although twice there): 2 -> 1
  s.prompt = prompt;
  s.prompt_len = 3;
  EXPECT_EQ(sample_row(l.data(), 8, s, &scratch).id, 5);
  s.output = output;  // 5 seen in the output too: 1.5 -> 0.75; 3 stays 1.0
  s.output_len = 2;
  EXPECT_EQ(sample_row(l.data(), 8, s, &scratch).id, 3);
  s.repetition_penalty = 1.0f;
  s.frequency_penalty = 0.2f;  // 1.5 - 0.2 x 2 = 1.1 < 2 (3 is not in the output)
  EXPECT_EQ(sample_row(l.data(), 8, s, &scratch).id, 3);
  // Logprobs stay those of the raw logits.
  const RowSample r = sample_row(l.data(), 8, s, &scratch);
  EXPECT_NEAR(r.logprob, 2.0 - logsumexp(l.data(), 8), 1e-6);
}

TEST(RowSampler, DrawIsAPureFunctionOfSeedAndCounter) {
  const std::vector<float> l(16, 0.0f);  // uniform: every token possible
  RowSampling s;
  s.temperature = 1.0f;
  s.seed = 42;
  std::vector<float> scratch;
  std::set<int32_t> seen;
  for (uint64_t c = 0; c < 64; ++c) {
    s.counter = c;
    const int32_t a = sample_row(l.data(), 16, s, &scratch).id;
    EXPECT_EQ(a, sample_row(l.data(), 16, s, &scratch).id) << c;
    seen.insert(a);
  }
  EXPECT_GT(seen.size(), 8u);  // counters vary the draw
  s.top_k = 2;                 // filters still apply
  std::vector<float> peaked = l;
  peaked[4] = 5.0f;
  peaked[9] = 5.0f;
  for (uint64_t c = 0; c < 32; ++c) {
    s.counter = c;
    const int32_t id = sample_row(peaked.data(), 16, s, &scratch).id;
    EXPECT_TRUE(id == 4 || id == 9) << id;
  }
}

TEST(RowSampler, ValidationNamesTheField) {
  RowSampling s;
  EXPECT_TRUE(validate_row_sampling(s, 10).ok());
  s.top_p = 0.0f;
  EXPECT_NE(validate_row_sampling(s, 10).message().find("top_p"), std::string::npos);
  s = RowSampling{};
  s.logprobs = 21;
  EXPECT_NE(validate_row_sampling(s, 10).message().find("logprobs 21"), std::string::npos);
  s = RowSampling{};
  const int32_t bad[] = {3, 10};
  s.output = bad;
  s.output_len = 2;
  EXPECT_NE(validate_row_sampling(s, 10).message().find("output token 10"), std::string::npos);
  s = RowSampling{};
  s.repetition_penalty = 0.0f;
  EXPECT_NE(validate_row_sampling(s, 10).message().find("repetition_penalty"), std::string::npos);
}

}  // namespace
}  // namespace ds
