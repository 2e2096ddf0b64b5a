// Programmatic dependent launch (runtime/cuda/pdl.h) over the GEMV kernels:
// a chain of dependent GEMVs (each reads the previous one's output, every
// kernel variant, split-k included) captured into a CUDA graph with PDL must
// give bit-identical results to the eager chain without PDL. Outputs are reset
// to NaN before each run, so a kernel that read its input before the previous
// kernel finished (a missing or misplaced griddepcontrol.wait) shows up.
// A second chain has the decode layer's shape: GEMVs with the RMSNorm prologue
// reading an f32 residual stream that the GEMV before them updated in place.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/gemm/gather.h"
#include "kernels/cuda/gemm/gemv.h"
#include "runtime/cuda/pdl.h"
#include "tests/cuda/gemm/gemm_test_util.h"

namespace ds::cuda {
namespace {

using PdlTest = testing::RunnerTest;

constexpr int kLinks = 12;

struct Chain {
  int64_t m = 1, n = 0;
  std::vector<DeviceBuffer> w, y, g;  // y[0] input, y[i + 1] = x_i · w[i]ᵀ (+ bias); g[i]: y[i + 1] rows reversed
  DeviceBuffer bias, rows;
};

detail::GemvKernel kernel_of(int link, int64_t m) {
  static const detail::GemvKernel kinds[] = {detail::GemvKernel::kWarpRows, detail::GemvKernel::kMmaTiles,
                                             detail::GemvKernel::kWarpAsync, detail::GemvKernel::kWarpRowsDeep};
  detail::GemvKernel k = kinds[link % 4];
  if (m > detail::kGemvWarpMaxM) k = detail::GemvKernel::kMmaTiles;
  return k;
}

// The chain's launches on `stream`: x_i = y[i], except after every third link,
// where the output goes through a row gather (also PDL-aware, rows reversed)
// into g[i - 1] first; odd links add a bias. prefetch: links 0, 1, 4, 5, 8, 9
// also prefetch their own weights into L2 first (GemmArgs::prefetch_weights).
Status run_chain(const Chain& c, const detail::GemvScratch& scratch, cudaStream_t stream, bool prefetch = false) {
  for (int i = 0; i < kLinks; ++i) {
    GemmArgs a;
    a.m = c.m, a.n = c.n, a.k = c.n, a.ldx = c.n, a.ldy = c.n;
    a.x = i > 0 && (i - 1) % 3 == 2 ? c.g[static_cast<size_t>(i - 1)].data() : c.y[static_cast<size_t>(i)].data();
    a.w = c.w[static_cast<size_t>(i)].data();
    a.y = c.y[static_cast<size_t>(i + 1)].data();
    a.bias = i % 2 == 1 ? c.bias.data() : nullptr;
    a.prefetch_weights = prefetch && i % 4 < 2;
    DS_RETURN_IF_ERROR(detail::launch_gemv(a, scratch, stream, 0, kernel_of(i, c.m)));
    if (i % 3 == 2)
      DS_RETURN_IF_ERROR(gather_rows(c.y[static_cast<size_t>(i + 1)].data(), c.n, 2,
                                     static_cast<const int32_t*>(c.rows.data()), c.m,
                                     c.g[static_cast<size_t>(i)].data(), stream));
  }
  return Status::Ok();
}

std::vector<uint16_t> result(const Chain& c) {
  std::vector<uint16_t> h(static_cast<size_t>(c.m * c.n));
  EXPECT_TRUE(c.y[kLinks].copy_to_host(h.data(), h.size() * 2).ok());
  return h;
}

void reset_outputs(const Chain& c) {
  for (size_t i = 1; i < c.y.size(); ++i) ASSERT_EQ(cudaMemset(c.y[i].data(), 0xff, c.y[i].bytes()), cudaSuccess);
  for (const DeviceBuffer& b : c.g) ASSERT_EQ(cudaMemset(b.data(), 0xff, b.bytes()), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

TEST_F(PdlTest, GraphChainWithPdlEqualsEagerWithout) {
  std::printf("PDL on this device: %s\n", pdl_supported(0) ? "yes" : "no (the PDL runs launch without it)");
  for (int64_t m : {1, 3, 8}) {
    Chain c;
    c.m = m;
    c.n = 2048;
    for (int i = 0; i < kLinks; ++i) {
      std::vector<uint16_t> w = testing::random_bf16(static_cast<size_t>(c.n * c.n), 100 + i);
      for (auto& e : w) e = f32_to_bf16(bf16_to_f32(e) * 0.04f);  // keeps |y| near 1 along the chain
      c.w.push_back(testing::upload(w));
    }
    for (int i = 0; i <= kLinks; ++i) {
      c.y.push_back(testing::upload(testing::random_bf16(static_cast<size_t>(m * c.n), 7 + i)));
      c.g.push_back(testing::upload(testing::random_bf16(static_cast<size_t>(m * c.n), 50 + i)));
    }
    c.bias = testing::upload(testing::random_bf16(static_cast<size_t>(c.n), 99));
    std::vector<int32_t> rows(static_cast<size_t>(m));
    for (int64_t r = 0; r < m; ++r) rows[static_cast<size_t>(r)] = static_cast<int32_t>(m - 1 - r);
    c.rows = testing::upload(rows);

    reset_outputs(c);
    {
      PdlScope off(false);
      ASSERT_TRUE(run_chain(c, scratch_.scratch, stream_.get()).ok());
    }
    ASSERT_TRUE(stream_.synchronize().ok());
    const std::vector<uint16_t> ref = result(c);
    size_t finite = 0;
    for (uint16_t v : ref) finite += std::isfinite(bf16_to_f32(v)) ? 1 : 0;
    ASSERT_EQ(finite, ref.size()) << "m=" << m << ": the reference chain has non-finite outputs";

    // Eager with PDL.
    reset_outputs(c);
    {
      PdlScope on(true);
      ASSERT_TRUE(run_chain(c, scratch_.scratch, stream_.get()).ok());
    }
    ASSERT_TRUE(stream_.synchronize().ok());
    EXPECT_EQ(0, std::memcmp(ref.data(), result(c).data(), ref.size() * 2)) << "m=" << m << ": eager with PDL";

    // Eager with PDL, links of every kernel prefetching their weights: a hint only.
    reset_outputs(c);
    {
      PdlScope on(true);
      ASSERT_TRUE(run_chain(c, scratch_.scratch, stream_.get(), /*prefetch=*/true).ok());
    }
    ASSERT_TRUE(stream_.synchronize().ok());
    EXPECT_EQ(0, std::memcmp(ref.data(), result(c).data(), ref.size() * 2)) << "m=" << m << ": with L2 prefetch";

    // Captured with PDL, replayed three times.
    Result<GraphExec> exec = capture_graph(stream_.get(), [&] {
      PdlScope on(true);
      return run_chain(c, scratch_.scratch, stream_.get(), /*prefetch=*/m != 3);
    });
    ASSERT_TRUE(exec.ok()) << exec.status().message();
    for (int rep = 0; rep < 3; ++rep) {
      reset_outputs(c);
      ASSERT_TRUE(exec->launch(stream_).ok());
      ASSERT_TRUE(stream_.synchronize().ok());
      const std::vector<uint16_t> got = result(c);
      size_t diff = 0;
      for (size_t i = 0; i < got.size(); ++i) diff += got[i] != ref[i] ? 1 : 0;
      EXPECT_EQ(diff, 0u) << "m=" << m << " replay " << rep << ": " << diff << " of " << got.size()
                          << " outputs differ from the eager chain without PDL";
    }
  }
}

// The decode layer's data flow: an f32 residual stream h; link 2i computes
// t = rms_norm(h) * gamma · w (prologue, src = h, bf16 out), link 2i + 1
// h = t · w + h (in-place residual, f32 out), each with another warp/mma
// kernel. Eager without PDL, eager with PDL and a PDL graph must agree bit for
// bit: a prologue or residual read before pdl_wait() would see a stale h.
TEST_F(PdlTest, PrologueAndInPlaceResidualChain) {
  for (int64_t m : {1, 2}) {
    const int64_t n = 2048;
    std::vector<DeviceBuffer> w;
    for (int i = 0; i < kLinks; ++i) {
      std::vector<uint16_t> h = testing::random_bf16(static_cast<size_t>(n * n), 300 + i);
      for (auto& e : h) e = f32_to_bf16(bf16_to_f32(e) * 0.04f);
      w.push_back(testing::upload(h));
    }
    std::vector<uint16_t> gamma_h = testing::random_bf16(static_cast<size_t>(n), 299);
    for (auto& e : gamma_h) e = f32_to_bf16(1.0f + 0.25f * bf16_to_f32(e));
    DeviceBuffer gamma = testing::upload(gamma_h);
    std::vector<float> h0(static_cast<size_t>(m * n));
    std::mt19937 rng(17);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    for (auto& v : h0) v = dist(rng);
    DeviceBuffer h = testing::upload(h0);
    DeviceBuffer t = testing::upload(std::vector<uint16_t>(static_cast<size_t>(m * n), 0));
    const detail::GemvKernel norm_kernels[] = {detail::GemvKernel::kWarpRows, detail::GemvKernel::kWarpAsync,
                                               detail::GemvKernel::kWarpRowsDeep};
    const detail::GemvKernel res_kernels[] = {detail::GemvKernel::kWarpRows, detail::GemvKernel::kMmaTiles,
                                              detail::GemvKernel::kWarpAsync, detail::GemvKernel::kWarpRowsDeep};
    auto run = [&](cudaStream_t stream) -> Status {
      for (int i = 0; i < kLinks; ++i) {
        GemmArgs a;
        a.m = m, a.n = n, a.k = n, a.ldx = n, a.ldy = n;
        a.w = w[static_cast<size_t>(i)].data();
        if (i % 2 == 0) {
          a.y = t.data();
          a.out_dtype = DType::kBF16;
          a.norm.src = h.data();
          a.norm.src_dtype = DType::kF32;
          a.norm.gamma = gamma.data();
          a.norm.eps = 1e-6f;
          DS_RETURN_IF_ERROR(detail::launch_gemv(a, scratch_.scratch, stream, 0, norm_kernels[(i / 2) % 3]));
        } else {
          a.x = t.data();
          a.y = h.data();
          a.residual = h.data();
          a.out_dtype = DType::kF32;
          DS_RETURN_IF_ERROR(detail::launch_gemv(a, scratch_.scratch, stream, 0, res_kernels[(i / 2) % 4]));
        }
      }
      return Status::Ok();
    };
    auto reset = [&]() {
      ASSERT_TRUE(h.copy_from_host(h0.data(), h0.size() * 4).ok());
      ASSERT_EQ(cudaMemset(t.data(), 0xff, t.bytes()), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    };
    auto final_h = [&]() {
      std::vector<float> out(h0.size());
      EXPECT_TRUE(h.copy_to_host(out.data(), out.size() * 4).ok());
      return out;
    };
    reset();
    {
      PdlScope off(false);
      ASSERT_TRUE(run(stream_.get()).ok());
    }
    ASSERT_TRUE(stream_.synchronize().ok());
    const std::vector<float> ref = final_h();
    size_t finite = 0;
    for (float v : ref) finite += std::isfinite(v) ? 1 : 0;
    ASSERT_EQ(finite, ref.size()) << "m=" << m << ": the reference chain has non-finite outputs";
    std::printf("prologue/residual chain m=%lld: h[0] %.4f -> %.4f\n", (long long)m, h0[0], ref[0]);

    reset();
    {
      PdlScope on(true);
      ASSERT_TRUE(run(stream_.get()).ok());
    }
    ASSERT_TRUE(stream_.synchronize().ok());
    EXPECT_EQ(0, std::memcmp(ref.data(), final_h().data(), ref.size() * 4)) << "m=" << m << ": eager with PDL";

    Result<GraphExec> exec = capture_graph(stream_.get(), [&] {
      PdlScope on(true);
      return run(stream_.get());
    });
    ASSERT_TRUE(exec.ok()) << exec.status().message();
    for (int rep = 0; rep < 3; ++rep) {
      reset();
      ASSERT_TRUE(exec->launch(stream_).ok());
      ASSERT_TRUE(stream_.synchronize().ok());
      const std::vector<float> got = final_h();
      size_t diff = 0;
      for (size_t i = 0; i < got.size(); ++i) diff += std::memcmp(&got[i], &ref[i], 4) != 0 ? 1 : 0;
      EXPECT_EQ(diff, 0u) << "m=" << m << " replay " << rep << ": " << diff << " of " << got.size()
                          << " residual-stream values differ from the eager chain without PDL";
    }
  }
}

}  // namespace
}  // namespace ds::cuda
