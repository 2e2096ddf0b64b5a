// Shared by the reference-kernel tests: deterministic inputs in [-1, 1).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace ds::ref {

inline std::vector<float> rnd(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

}  // namespace ds::ref
