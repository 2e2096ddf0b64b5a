// Per-request sampling: penalties exactly as specified, raw logprobs, seeds,
// and RequestSampling::validate naming the offending parameter.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/scheduler/token_sampler.h"

namespace ds {
namespace {

TEST(Penalties, RepetitionScalesSeenTokensBySign) {
  RequestSampling s;
  s.repetition_penalty = 2.0f;
  PenaltyState st;
  st.init({0, 1}, 4);  // prompt tokens 0 and 1
  st.add_output(3);    // generated token 3
  std::vector<float> l = {4.0f, -4.0f, 4.0f, -1.0f};
  apply_penalties(s, st, l.data(), 4);
  EXPECT_FLOAT_EQ(l[0], 2.0f);   // positive: divided
  EXPECT_FLOAT_EQ(l[1], -8.0f);  // negative: multiplied
  EXPECT_FLOAT_EQ(l[2], 4.0f);   // never seen: unchanged
  EXPECT_FLOAT_EQ(l[3], -2.0f);  // generated counts too
}

TEST(Penalties, FrequencyAndPresenceUseGeneratedCountsOnly) {
  RequestSampling s;
  s.frequency_penalty = 0.5f;
  s.presence_penalty = 1.5f;
  PenaltyState st;
  st.init({2, 2, 2}, 4);  // prompt tokens do not count
  st.add_output(1);
  st.add_output(1);
  st.add_output(1);
  st.add_output(0);
  std::vector<float> l = {1.0f, 1.0f, 1.0f, 1.0f};
  apply_penalties(s, st, l.data(), 4);
  EXPECT_FLOAT_EQ(l[0], 1.0f - 0.5f - 1.5f);
  EXPECT_FLOAT_EQ(l[1], 1.0f - 3 * 0.5f - 1.5f);
  EXPECT_FLOAT_EQ(l[2], 1.0f);
  EXPECT_FLOAT_EQ(l[3], 1.0f);
}

TEST(Penalties, NegativePenaltiesEncourageRepeats) {
  RequestSampling s;
  s.presence_penalty = -2.0f;
  PenaltyState st;
  st.init({}, 3);
  st.add_output(2);
  std::vector<float> l = {0.0f, 1.0f, 0.0f};
  apply_penalties(s, st, l.data(), 3);
  EXPECT_FLOAT_EQ(l[2], 2.0f);
}

TEST(RequestSampler, PresencePenaltyChangesTheGreedyChoice) {
  RequestSampling s;
  s.temperature = 0.0f;
  s.presence_penalty = 2.0f;
  RequestSampler sampler(s, 0, {}, 3);
  const std::vector<float> logits = {5.0f, 4.0f, 0.0f};
  EXPECT_EQ(sampler.next(logits.data()).id, 0);
  EXPECT_EQ(sampler.next(logits.data()).id, 1);  // 0 is now at 3.0
  EXPECT_EQ(sampler.next(logits.data()).id, 0);  // 0 at 3.0, 1 at 2.0: both penalized once
  EXPECT_EQ(sampler.next(logits.data()).id, 0);  // presence does not grow with the count
  RequestSampling plain;
  plain.temperature = 0.0f;
  RequestSampler unpenalized(plain, 0, {}, 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(unpenalized.next(logits.data()).id, 0);
}

TEST(RequestSampler, LogprobsAreOfTheRawDistribution) {
  RequestSampling s;
  s.temperature = 0.0f;
  s.repetition_penalty = 3.0f;  // must not change the reported logprobs
  s.logprobs = 2;
  RequestSampler sampler(s, 0, {0}, 3);
  const std::vector<float> logits = {3.0f, 2.0f, 1.0f};
  const double z = std::log(std::exp(3.0) + std::exp(2.0) + std::exp(1.0));
  GeneratedToken t = sampler.next(logits.data());
  EXPECT_EQ(t.id, 1);  // 3 / 3 = 1 < 2: the penalty moved the choice
  EXPECT_NEAR(t.logprob, 2.0 - z, 1e-6);
  ASSERT_EQ(t.top.size(), 2u);
  EXPECT_EQ(t.top[0].id, 0);
  EXPECT_NEAR(t.top[0].logprob, 3.0 - z, 1e-6);
  EXPECT_EQ(t.top[1].id, 1);
  RequestSampling none;
  none.temperature = 0.0f;
  RequestSampler quiet(none, 0, {}, 3);
  GeneratedToken q = quiet.next(logits.data());
  EXPECT_TRUE(q.top.empty());
}

TEST(RequestSampler, SameSeedSameStreamOtherSeedDiffers) {
  RequestSampling s;
  s.temperature = 1.0f;
  std::vector<float> logits(64, 0.0f);  // uniform: every draw is random
  auto draw = [&](uint64_t seed) {
    RequestSampler r(s, seed, {}, 64);
    std::vector<int32_t> out;
    for (int i = 0; i < 32; ++i) out.push_back(r.next(logits.data()).id);
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(RequestSamplingValidate, NamesTheOffendingParameter) {
  auto msg = [](RequestSampling s) { return s.validate(100).message(); };
  EXPECT_TRUE(RequestSampling{}.validate(100).ok());
  RequestSampling s;
  s.temperature = -1.0f;
  EXPECT_NE(msg(s).find("temperature"), std::string::npos);
  s = {};
  s.top_p = 1.5f;
  EXPECT_NE(msg(s).find("top_p"), std::string::npos);
  s = {};
  s.min_p = -0.1f;
  EXPECT_NE(msg(s).find("min_p"), std::string::npos);
  s = {};
  s.presence_penalty = 2.5f;
  EXPECT_NE(msg(s).find("presence_penalty"), std::string::npos);
  s = {};
  s.frequency_penalty = NAN;
  EXPECT_NE(msg(s).find("frequency_penalty"), std::string::npos);
  s = {};
  s.repetition_penalty = 0.0f;
  EXPECT_NE(msg(s).find("repetition_penalty"), std::string::npos);
  s = {};
  s.max_new_tokens = 0;
  EXPECT_NE(msg(s).find("max_new_tokens"), std::string::npos);
  s = {};
  s.logprobs = 21;
  EXPECT_NE(msg(s).find("logprobs"), std::string::npos);
  s = {};
  s.stop_token_ids = {5, 100};
  EXPECT_NE(msg(s).find("stop_token_ids[1]"), std::string::npos);
}

}  // namespace
}  // namespace ds
