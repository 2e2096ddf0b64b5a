// Deterministic dummy weights (--load-format dummy): element i of a weight is a
// pure function of (key, i), key = seed ^ hash(weight name), so the CPU loader
// and the GPU fill kernel produce bit-identical weights at any shape, and any
// element can be generated independently (in parallel).
#pragma once

#include <cstdint>
#include <string_view>

#if defined(__CUDACC__)
#define DS_HOST_DEVICE __host__ __device__
#else
#define DS_HOST_DEVICE
#endif

namespace ds {

// FNV-1a 64 of the weight name.
inline uint64_t dummy_name_hash(std::string_view name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

inline uint64_t dummy_weight_key(uint64_t seed, std::string_view name) { return seed ^ dummy_name_hash(name); }

// splitmix64 finalizer of (key, index) -> uniform float in [-scale, scale).
DS_HOST_DEVICE inline float dummy_weight_value(uint64_t key, uint64_t index, float scale) {
  uint64_t z = key + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
  return (2.0f * u - 1.0f) * scale;
}

}  // namespace ds
