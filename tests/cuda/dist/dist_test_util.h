// Helpers for the NCCL tests: one thread per rank, exact test values, host
// encode/decode of bf16/f16/f32 buffers.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "runtime/common/dtype.h"
#include "runtime/common/parallel_for.h"
#include "runtime/common/status.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/dist/cuda/device_communicator.h"

namespace ds::cuda::testing {

// Skips the test unless NCCL is built in and at least `min` GPUs are visible.
#define DS_REQUIRE_GPUS(min)                                                               \
  do {                                                                                     \
    if (!::ds::cuda::have_device_collectives()) GTEST_SKIP() << "built without NCCL";      \
    if (::ds::cuda::device_count() < (min))                                                \
      GTEST_SKIP() << "needs " << (min) << " GPUs, " << ::ds::cuda::device_count() << " visible"; \
  } while (0)

// Group sizes to test: 2 and the GPU count (when more).
inline std::vector<int> group_sizes() {
  const int n = device_count();
  std::vector<int> sizes;
  if (n >= 2) sizes.push_back(2);
  if (n > 2) sizes.push_back(n);
  return sizes;
}

inline std::vector<int> first_devices(int n) {
  std::vector<int> d(n);
  for (int i = 0; i < n; ++i) d[i] = i;
  return d;
}

// Runs fn(rank) on one thread per rank (ranks [first, last)); returns each status.
inline std::vector<Status> run_ranks(int first, int last, const std::function<Status(int)>& fn) {
  std::vector<Status> status(last - first);
  parallel_for_each(status.size(), [&](size_t i) { status[i] = fn(first + static_cast<int>(i)); });
  return status;
}

inline void expect_all_ok(const std::vector<Status>& status, const std::string& what) {
  for (size_t r = 0; r < status.size(); ++r)
    EXPECT_TRUE(status[r].ok()) << what << ": rank " << r << ": " << status[r].message();
}

// Small multiples of 1/4 in [-2, 2]: sums over <= 64 ranks are exact in bf16, f16 and f32.
inline float test_value(int rank, size_t i, int seed) {
  return static_cast<float>(static_cast<int>((i * 7 + static_cast<size_t>(rank) * 13 + seed) % 17) - 8) * 0.25f;
}

// n elements value(i) as dtype t (bf16, f16 or f32).
inline std::vector<uint8_t> encode(size_t n, DType t, const std::function<float(size_t)>& value) {
  std::vector<uint8_t> out(n * dtype_size(t));
  for (size_t i = 0; i < n; ++i) {
    const float v = value(i);
    if (t == DType::kF32) {
      std::memcpy(&out[i * 4], &v, 4);
    } else {
      uint16_t h = t == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

inline float decode_at(const std::vector<uint8_t>& b, DType t, size_t i) {
  if (t == DType::kF32) {
    float f;
    std::memcpy(&f, &b[i * 4], 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, &b[i * 2], 2);
  return t == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// Compares got[i] with want(i) exactly; a message with the mismatch count and
// the first few mismatches, empty when all match.
inline std::string compare_exact(const std::vector<uint8_t>& got, DType t, size_t n,
                                 const std::function<float(size_t)>& want) {
  size_t bad = 0;
  StrCat msg;
  for (size_t i = 0; i < n; ++i) {
    float g = decode_at(got, t, i), w = want(i);
    if (g == w) continue;
    if (bad < 5) msg << " [" << i << "] got " << g << " want " << w << ";";
    ++bad;
  }
  if (bad == 0) return std::string();
  return StrCat() << bad << " of " << n << " " << dtype_name(t) << " elements differ:" << msg.str();
}

}  // namespace ds::cuda::testing
