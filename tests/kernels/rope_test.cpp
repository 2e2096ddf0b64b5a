// rope against a complex-number formulation, and YaRN / linear inv_freq against
// values computed offline from the transformers formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <random>

#include "kernels/ref/rope.h"
#include "tests/kernels/random_inputs.h"

namespace ds::ref {
namespace {

class RopeGrid : public ::testing::TestWithParam<std::tuple<RopeStyle, int, int>> {};

TEST_P(RopeGrid, RotatesPairsByPositionTimesFrequency) {
  const auto [style, head_dim, rotary_dim] = GetParam();
  RopeParams p;
  p.num_heads = 3;
  p.head_dim = head_dim;
  p.rotary_dim = rotary_dim;
  p.theta = 10000;
  p.style = style;
  auto t = rope_tables(p);
  ASSERT_TRUE(t.ok()) << t.status().message();
  const int T = 5;
  std::vector<int32_t> pos{0, 1, 7, 100, 4095};
  auto x = rnd(T * 3 * head_dim, 1);
  std::vector<float> y(x.size());
  ASSERT_TRUE(rope(x.data(), pos.data(), T, p, *t, y.data()).ok());
  const int half = rotary_dim / 2;
  for (int tok = 0; tok < T; ++tok)
    for (int h = 0; h < 3; ++h) {
      const float* xi = &x[(tok * 3 + h) * head_dim];
      const float* yi = &y[(tok * 3 + h) * head_dim];
      for (int i = 0; i < half; ++i) {
        const int a = style == RopeStyle::kNeox ? i : 2 * i, b = style == RopeStyle::kNeox ? i + half : 2 * i + 1;
        const double freq = std::pow(10000.0, -2.0 * i / rotary_dim);
        const std::complex<double> z(xi[a], xi[b]), r = z * std::polar(1.0, pos[tok] * freq);
        const double tol = 2e-6 * (1 + pos[tok] * freq);
        EXPECT_NEAR(yi[a], r.real(), tol) << tok << " " << h << " " << i;
        EXPECT_NEAR(yi[b], r.imag(), tol) << tok << " " << h << " " << i;
      }
      for (int d = rotary_dim; d < head_dim; ++d) EXPECT_EQ(yi[d], xi[d]);
    }
  // In place gives the same result.
  std::vector<float> inplace = x;
  ASSERT_TRUE(rope(inplace.data(), pos.data(), T, p, *t, inplace.data()).ok());
  EXPECT_EQ(inplace, y);
}

INSTANTIATE_TEST_SUITE_P(Styles, RopeGrid,
                         ::testing::Values(std::make_tuple(RopeStyle::kNeox, 8, 8), std::make_tuple(RopeStyle::kNeox, 64, 64),
                                           std::make_tuple(RopeStyle::kNeox, 128, 64),
                                           std::make_tuple(RopeStyle::kInterleaved, 8, 8),
                                           std::make_tuple(RopeStyle::kInterleaved, 64, 32)));

TEST(Rope, YarnTablesMatchTransformers) {
  RopeParams p;
  p.num_heads = 1;
  p.head_dim = 32;
  p.rotary_dim = 32;
  p.theta = 10000;
  p.scaling = RopeScaling::kYarn;
  p.factor = 8;
  p.original_max_position = 2048;
  auto t = rope_tables(p);
  ASSERT_TRUE(t.ok()) << t.status().message();
  // From transformers' _compute_yarn_parameters (low = 4, high = 11).
  const double want[] = {1, 0.562341325, 0.316227766, 0.177827941, 0.1, 0.049204866, 0.0237170825, 0.0111142463,
                         0.005, 0.00210877997, 0.000790569415, 0.000222284926, 0.000125, 7.02926656e-05,
                         3.95284708e-05, 2.22284926e-05};
  ASSERT_EQ(t->inv_freq.size(), 16u);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(t->inv_freq[i], want[i], want[i] * 2e-6) << i;
  EXPECT_NEAR(t->attention_factor, 1.2079441541679836, 1e-6);
  p.mscale = 0.8;
  p.mscale_all_dim = 0.5;
  t = rope_tables(p);
  ASSERT_TRUE(t.ok());
  EXPECT_NEAR(t->attention_factor, 1.0565079928608092, 1e-6);
  // cos/sin carry the attention factor: |rope(x)| = factor * |x| for a rotated pair.
  std::vector<float> x(32, 0.0f), y(32);
  x[0] = 1.0f;
  int32_t pos = 3;
  ASSERT_TRUE(rope(x.data(), &pos, 1, p, *t, y.data()).ok());
  EXPECT_NEAR(std::hypot(y[0], y[16]), 1.0565079928608092, 1e-6);
}

TEST(Rope, LinearScalingDividesFrequencies) {
  RopeParams p;
  p.num_heads = 1;
  p.head_dim = 4;
  p.rotary_dim = 4;
  p.theta = 100;
  p.scaling = RopeScaling::kLinear;
  p.factor = 4;
  auto t = rope_tables(p);
  ASSERT_TRUE(t.ok());
  EXPECT_NEAR(t->inv_freq[0], 0.25, 1e-7);
  EXPECT_NEAR(t->inv_freq[1], 0.1 / 4, 1e-7);
  EXPECT_EQ(t->attention_factor, 1.0f);
}

TEST(Rope, RejectsBadParams) {
  RopeParams p;
  p.num_heads = 1;
  p.head_dim = 8;
  p.rotary_dim = 7;
  EXPECT_FALSE(rope_tables(p).ok());
  p.rotary_dim = 16;
  EXPECT_FALSE(rope_tables(p).ok());
  p.rotary_dim = 8;
  p.scaling = RopeScaling::kYarn;
  p.factor = 4;
  EXPECT_FALSE(rope_tables(p).ok());  // no original_max_position
  p.scaling = RopeScaling::kNone;
  auto t = rope_tables(p);
  ASSERT_TRUE(t.ok());
  std::vector<float> x(8), y(8);
  int32_t neg = -1;
  EXPECT_FALSE(rope(x.data(), &neg, 1, p, *t, y.data()).ok());
}

}  // namespace
}  // namespace ds::ref
