// Helpers shared by the ds_cuda_gemm tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemv.h"
#include "runtime/common/dtype.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda::testing {

inline std::vector<uint16_t> random_bf16(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<uint16_t> v(n);
  for (auto& e : v) e = f32_to_bf16(dist(rng));
  return v;
}

template <typename T>
DeviceBuffer upload(const std::vector<T>& h) {
  auto buf = DeviceBuffer::allocate(std::max<size_t>(h.size() * sizeof(T), 16));
  EXPECT_TRUE(buf.ok()) << buf.status().message();
  EXPECT_TRUE(buf->copy_from_host(h.data(), h.size() * sizeof(T)).ok());
  return std::move(buf.value());
}

// Split-k scratch for direct detail::launch_gemv calls (zeroed).
struct ScratchBuffer {
  DeviceBuffer buf;
  detail::GemvScratch scratch;
  void init() {
    auto b = DeviceBuffer::allocate(detail::gemv_scratch_bytes());
    ASSERT_TRUE(b.ok()) << b.status().message();
    buf = std::move(b.value());
    ASSERT_EQ(cudaMemset(buf.data(), 0, buf.bytes()), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    int device = 0;
    ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
    ASSERT_EQ(cudaDeviceGetAttribute(&scratch.num_sms, cudaDevAttrMultiProcessorCount, device), cudaSuccess);
    scratch.partials = static_cast<float*>(buf.data());
    scratch.counters = reinterpret_cast<unsigned*>(scratch.partials + detail::kGemvMaxSplitBlocks * 128);
  }
};

// A stream, a GemmRunner and split-k scratch; skips without a GPU.
class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device";
    auto s = Stream::create();
    ASSERT_TRUE(s.ok()) << s.status().message();
    stream_ = std::move(s.value());
    auto r = GemmRunner::create();
    ASSERT_TRUE(r.ok()) << r.status().message();
    runner_ = std::move(r.value());
    scratch_.init();
  }
  Stream stream_;
  std::unique_ptr<GemmRunner> runner_;
  ScratchBuffer scratch_;
};

}  // namespace ds::cuda::testing
