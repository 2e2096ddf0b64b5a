// Speed report (no timed assertion): prints decode GB/s and prefill TFLOP/s
// at a few points of the 32B head shape so that GPU test logs carry them.
// The full grid is tools/bench/gpu/attention_bench.cpp (ds_attention_bench).
#include <gtest/gtest.h>

#include <cstdio>
#include <utility>
#include <vector>

#include "runtime/cuda/cuda_check.h"
#include "tools/bench/gpu/attention_timing.h"

namespace ds::cuda {
namespace {

TEST(PagedAttentionSpeed, PrintsDecodeAndPrefillRates) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";
  Result<Stream> stream = Stream::create();
  ASSERT_TRUE(stream.ok());
  const AttnShape shape{"32B", 40, 8, 128};
  for (auto [batch, kv_len] : {std::pair{1, 8192}, {32, 2048}, {128, 2048}, {256, 512}}) {
    Result<AttnTiming> t =
        time_paged_attention(shape, std::vector<int>(batch, 1), std::vector<int>(batch, kv_len), 10, stream.value());
    ASSERT_TRUE(t.ok()) << t.status().message();
    std::printf("speed 32B decode  batch %3d kv %5d: %8.1f us  %7.1f GB/s (K/V bytes)\n", batch, kv_len, t.value().us,
                t.value().gbps());
  }
  for (auto [q_len, kv_len] : {std::pair{4096, 4096}, {512, 4096}}) {
    Result<AttnTiming> t = time_paged_attention(shape, {q_len}, {kv_len}, 10, stream.value());
    ASSERT_TRUE(t.ok()) << t.status().message();
    std::printf("speed 32B prefill q %4d kv %5d: %8.1f us  %7.1f TFLOP/s\n", q_len, kv_len, t.value().us,
                t.value().tflops());
  }
  // Mixed step: 64 decode rows at 2k plus one 512-token chunk.
  std::vector<int> q(64, 1), kv(64, 2048);
  q.push_back(512);
  kv.push_back(1024);
  Result<AttnTiming> t = time_paged_attention(shape, q, kv, 10, stream.value());
  ASSERT_TRUE(t.ok()) << t.status().message();
  std::printf("speed 32B mixed 64x1/2048 + 512/1024: %8.1f us\n", t.value().us);
}

}  // namespace
}  // namespace ds::cuda
