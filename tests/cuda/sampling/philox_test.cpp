// Philox4x32-10 against Random123's published known-answer vectors (host
// build of the same function the sampling kernel runs), and the uniform map.
#include "kernels/cuda/sampling/philox.h"

#include <gtest/gtest.h>

namespace ds::cuda {
namespace {

void expect_words(const Philox4x32& got, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  EXPECT_EQ(got.v[0], a);
  EXPECT_EQ(got.v[1], b);
  EXPECT_EQ(got.v[2], c);
  EXPECT_EQ(got.v[3], d);
}

TEST(Philox, KnownAnswerVectors) {
  expect_words(philox4x32_10(Philox4x32{{0, 0, 0, 0}}, 0, 0), 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
  expect_words(philox4x32_10(Philox4x32{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu,
                             0xffffffffu),
               0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
  expect_words(philox4x32_10(Philox4x32{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u,
                             0x299f31d0u),
               0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

TEST(Philox, SamplingWordsDependOnSeedCounterAndGroup) {
  const Philox4x32 base = sampling_random_words(7, 3, 11);
  const Philox4x32 same = sampling_random_words(7, 3, 11);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(base.v[i], same.v[i]);
  const Philox4x32 others[] = {sampling_random_words(8, 3, 11), sampling_random_words(7, 4, 11),
                               sampling_random_words(7, 3, 12), sampling_random_words(7 + (1ull << 32), 3, 11),
                               sampling_random_words(7, 3 + (1ull << 32), 11)};
  for (const Philox4x32& o : others) EXPECT_NE(base.v[0], o.v[0]);
}

TEST(Philox, ExponentialIsFiniteAndPositiveAtBothEnds) {
  EXPECT_NEAR(standard_exponential(0u), 22.8739f, 1e-3f);              // -log(2^-33)
  EXPECT_NEAR(standard_exponential(0xffffffffu), 1.16415e-10f, 1e-14f);  // -log(1 - 2^-33)
  EXPECT_GT(standard_exponential(0xffffffffu), 0.0f);
  EXPECT_NEAR(standard_exponential(0x80000000u), 0.693147f, 1e-5f);      // -log(1/2)
  EXPECT_NEAR(standard_exponential(0x7fffffffu), 0.693147f, 1e-5f);
  // Monotone decreasing in the bits.
  float prev = standard_exponential(0u);
  for (uint64_t x = 1; x <= 0xffffffffull; x += 0x01000193ull) {
    const float e = standard_exponential(static_cast<uint32_t>(x));
    EXPECT_LE(e, prev) << x;
    prev = e;
  }
}

}  // namespace
}  // namespace ds::cuda
