// Percentiles and summaries (numpy.percentile "linear" semantics).
#include <gtest/gtest.h>

#include "tools/bench/dsbench/stats.h"

namespace ds::bench {
namespace {

TEST(Percentile, EmptyIsZero) {
  EXPECT_EQ(percentile({}, 50), 0.0);
  Summary s = summarize({});
  EXPECT_EQ(s.count, 0);
  EXPECT_EQ(s.mean, 0.0);
  EXPECT_EQ(s.p99, 0.0);
}

TEST(Percentile, SingleValue) {
  EXPECT_EQ(percentile({7.5}, 0), 7.5);
  EXPECT_EQ(percentile({7.5}, 99), 7.5);
}

TEST(Percentile, LinearInterpolationLikeNumpy) {
  // numpy.percentile([1, 2, 3, 4], q) for q = 0, 25, 50, 90, 99, 100.
  const std::vector<double> v = {4, 1, 3, 2};  // order must not matter
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(v, 25), 1.75);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile(v, 90), 3.7);
  EXPECT_DOUBLE_EQ(percentile(v, 99), 3.97);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4.0);
}

TEST(Percentile, P99OfHundredValues) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  // rank = 0.99 * 99 = 98.01 -> 99 + 0.01 * (100 - 99)
  EXPECT_NEAR(percentile(v, 99), 99.01, 1e-9);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 50.5);
}

TEST(Percentile, OutOfRangeIsClamped) {
  EXPECT_EQ(percentile({1, 2, 3}, -5), 1.0);
  EXPECT_EQ(percentile({1, 2, 3}, 500), 3.0);
}

TEST(Summary, MeanMedianStdMinMax) {
  Summary s = summarize({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_EQ(s.count, 8);
  EXPECT_DOUBLE_EQ(s.mean, 5.0);
  EXPECT_DOUBLE_EQ(s.stddev, 2.0);  // population std
  EXPECT_DOUBLE_EQ(s.median, 4.5);
  EXPECT_DOUBLE_EQ(s.min, 2.0);
  EXPECT_DOUBLE_EQ(s.max, 9.0);
  EXPECT_DOUBLE_EQ(s.p90, 7.6);  // rank 6.3: 7 + 0.3 * 2
}

}  // namespace
}  // namespace ds::bench
