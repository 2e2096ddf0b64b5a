// Seeded Poisson arrivals and request length sampling.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tools/bench/dsbench/random.h"

namespace ds::bench {
namespace {

TEST(Rng, MatchesTheStandardMt19937_64Sequence) {
  // The C++ standard fixes mt19937_64's 10000th output for the default seed.
  Rng rng(std::mt19937_64::default_seed);
  uint64_t x = 0;
  for (int i = 0; i < 10000; ++i) x = rng.next();
  EXPECT_EQ(x, 9981545732273789042ull);
}

TEST(Rng, UniformIntStaysInRangeAndCoversIt) {
  Rng rng(3);
  std::vector<int> hits(5, 0);
  for (int i = 0; i < 5000; ++i) {
    const int64_t v = rng.uniform_int(10, 14);
    ASSERT_GE(v, 10);
    ASSERT_LE(v, 14);
    ++hits[static_cast<size_t>(v - 10)];
  }
  for (int h : hits) EXPECT_GT(h, 800);  // ~1000 each
  EXPECT_EQ(rng.uniform_int(7, 7), 7);
}

TEST(PoissonArrivals, InfiniteRateSendsAllAtOnce) {
  for (double rate : {std::numeric_limits<double>::infinity(), 0.0, -1.0}) {
    auto t = poisson_arrival_offsets(5, rate, 1);
    ASSERT_EQ(t.size(), 5u);
    for (double x : t) EXPECT_EQ(x, 0.0);
  }
}

TEST(PoissonArrivals, SeededAndReproducible) {
  auto a = poisson_arrival_offsets(50, 4.0, 42);
  auto b = poisson_arrival_offsets(50, 4.0, 42);
  auto c = poisson_arrival_offsets(50, 4.0, 43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a[0], 0.0);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_GT(a[i], a[i - 1]);
}

TEST(PoissonArrivals, GapsAreExponentialWithTheRate) {
  const double rate = 8.0;
  const int n = 20001;
  auto t = poisson_arrival_offsets(n, rate, 7);
  // Mean gap 1/rate; the standard deviation of an exponential equals its mean.
  std::vector<double> gaps;
  for (size_t i = 1; i < t.size(); ++i) gaps.push_back(t[i] - t[i - 1]);
  double mean = 0;
  for (double g : gaps) mean += g;
  mean /= static_cast<double>(gaps.size());
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  var /= static_cast<double>(gaps.size());
  EXPECT_NEAR(mean, 1.0 / rate, 0.05 / rate);
  EXPECT_NEAR(std::sqrt(var), 1.0 / rate, 0.05 / rate);
  // P(gap > mean) = e^-1 for an exponential.
  int above = 0;
  for (double g : gaps) above += g > 1.0 / rate;
  EXPECT_NEAR(static_cast<double>(above) / static_cast<double>(gaps.size()), std::exp(-1.0), 0.02);
}

TEST(SampleLengths, RatioOneIsExact) {
  Rng rng(1);
  for (int64_t v : sample_lengths(20, 128, 1.0, rng)) EXPECT_EQ(v, 128);
}

TEST(SampleLengths, RangeFollowsSglang) {
  Rng rng(1);
  auto v = sample_lengths(2000, 100, 0.5, rng);
  int64_t lo = 1000, hi = 0;
  for (int64_t x : v) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  EXPECT_EQ(lo, 50);
  EXPECT_EQ(hi, 100);
  Rng rng0(2);
  for (int64_t x : sample_lengths(500, 10, 0.0, rng0)) {
    EXPECT_GE(x, 1);
    EXPECT_LE(x, 10);
  }
}

}  // namespace
}  // namespace ds::bench
