// Philox4x32-10 counter-based random numbers (Salmon, Moraes, Dror, Shaw:
// "Parallel random numbers: as easy as 1, 2, 3", SC 2011), host and device.
// A draw is a pure function of (key, counter): the GPU sampler keys it by the
// row's seed and addresses it by (token index, row counter), so any element's
// random number is computed independently, in any order, on any thread.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DS_HOST_DEVICE inline
#endif

namespace ds::cuda {

struct Philox4x32 {
  uint32_t v[4];
};

DS_HOST_DEVICE void philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}

// Ten rounds of the Philox S-box/P-box network with the Weyl key schedule.
DS_HOST_DEVICE Philox4x32 philox4x32_10(Philox4x32 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(kMul0, ctr.v[0], &hi0, &lo0);
    philox_mulhilo(kMul1, ctr.v[2], &hi1, &lo1);
    ctr = Philox4x32{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
  }
  return ctr;
}

// The four 32-bit words for token group `group` (tokens 4*group .. 4*group+3)
// of a row with `seed` and `counter`. Word 3 of the counter tags the sampler's
// stream so other users of the same seed get independent numbers.
DS_HOST_DEVICE Philox4x32 sampling_random_words(uint64_t seed, uint64_t counter, uint32_t group) {
  constexpr uint32_t kSamplingStream = 0x53414D50u;  // "SAMP"
  const Philox4x32 ctr{{group, static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32),
                        kSamplingStream}};
  return philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// A standard exponential variate -log(u), u = (bits + 0.5) / 2^32 in (0, 1),
// accurate at both ends (log1p near u = 1), so -log of it is a Gumbel variate
// whose tails are cut only beyond probability 2^-33.
DS_HOST_DEVICE float standard_exponential(uint32_t bits) {
  constexpr float kInv2To32 = 2.3283064365386963e-10f;
  if (bits < 0x80000000u) return -logf((static_cast<float>(bits) + 0.5f) * kInv2To32);
  return -log1pf(-(static_cast<float>(~bits) + 0.5f) * kInv2To32);
}

}  // namespace ds::cuda
