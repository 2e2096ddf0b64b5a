#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/engine/sampler.h"

namespace ds {
namespace {

TEST(Sampler, GreedyPicksArgmaxLowestOnTies) {
  std::vector<float> l{0.1f, 2.0f, -1.0f, 2.0f};
  Sampler s(SamplingParams{});
  EXPECT_EQ(s.sample(l.data(), 4), 1);
  EXPECT_EQ(argmax(l.data(), 4), 1);
}

TEST(Sampler, LogSumExpIsStable) {
  std::vector<float> l{1000.0f, 1000.0f};
  EXPECT_NEAR(logsumexp(l.data(), 2), 1000.0 + std::log(2.0), 1e-9);
}

std::map<int, int> histogram(const SamplingParams& p, const std::vector<float>& l, int n) {
  Sampler s(p);
  std::map<int, int> h;
  for (int i = 0; i < n; ++i) ++h[s.sample(l.data(), static_cast<int64_t>(l.size()))];
  return h;
}

TEST(Sampler, SeededAndReproducible) {
  std::vector<float> l{1.0f, 1.1f, 0.9f, 1.05f};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  EXPECT_EQ(histogram(p, l, 200), histogram(p, l, 200));
  p.seed = 43;
  Sampler a(p), b(SamplingParams{1.0f, -1, 1.0f, 0.0f, 42});
  std::vector<int> xa, xb;
  for (int i = 0; i < 50; ++i) {
    xa.push_back(a.sample(l.data(), 4));
    xb.push_back(b.sample(l.data(), 4));
  }
  EXPECT_NE(xa, xb);
}

TEST(Sampler, FollowsTheDistribution) {
  // p = softmax(log([0.5, 0.3, 0.2])).
  std::vector<float> l{std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 7;
  auto h = histogram(p, l, 20000);
  EXPECT_NEAR(h[0] / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(h[1] / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(h[2] / 20000.0, 0.2, 0.02);
}

TEST(Sampler, TopKTopPMinPFilter) {
  std::vector<float> l{std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 3;
  p.top_k = 2;
  auto h = histogram(p, l, 4000);
  EXPECT_EQ(h.count(2) + h.count(3), 0u);
  EXPECT_NEAR(h[0] / 4000.0, 0.4 / 0.7, 0.03);
  p.top_k = -1;
  p.top_p = 0.65f;  // 0.4 + 0.3 reaches it
  h = histogram(p, l, 4000);
  EXPECT_EQ(h.count(2) + h.count(3), 0u);
  p.top_p = 1.0f;
  p.min_p = 0.6f;  // keeps p >= 0.24: tokens 0 and 1
  h = histogram(p, l, 4000);
  EXPECT_EQ(h.count(2) + h.count(3), 0u);
  EXPECT_GT(h[1], 0);
  p.min_p = 0.0f;
  p.temperature = 0.01f;  // nearly greedy
  h = histogram(p, l, 500);
  EXPECT_EQ(h[0], 500);
}

TEST(Sampler, ValidatesParams) {
  EXPECT_TRUE(SamplingParams{}.validate().ok());
  EXPECT_FALSE((SamplingParams{-1.0f}).validate().ok());
  EXPECT_FALSE((SamplingParams{1.0f, -1, 0.0f}).validate().ok());
  EXPECT_FALSE((SamplingParams{1.0f, -1, 1.0f, 2.0f}).validate().ok());
}

}  // namespace
}  // namespace ds
