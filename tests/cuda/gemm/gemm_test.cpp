// GemmRunner vs ds::ref::linear over a grid of shapes, both kernels (cuBLASLt
// and the small-M GEMV), with/without bias, bf16 and f32 outputs, strided x/y.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemv.h"
#include "kernels/ref/linear.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "tests/cuda/gemm/gemm_test_util.h"

namespace ds::cuda {
namespace {

using testing::random_bf16;
using testing::upload;

// One way of computing the product: through the runner (a GemmPath) or one
// GEMV kernel directly (detail::launch_gemv), k_splits 0 = automatic.
struct Variant {
  std::string name;
  bool direct = false;
  GemmPath path = GemmPath::kAuto;
  detail::GemvKernel kernel = detail::GemvKernel::kAuto;
  int k_splits = 0;
};

class GemmTest : public testing::RunnerTest {
 protected:

  void TearDown() override {
    if (runs_ > 0)
      std::printf("%s: %d GPU runs, worst max_abs=%.3g max_rel=%.3g (rel to the row's max |y|)\n",
                  ::testing::UnitTest::GetInstance()->current_test_info()->name(), runs_, worst_abs_, worst_rel_);
  }

  // Runs y = x·wᵀ (+b) on the GPU with every applicable path and output dtype
  // and compares with ref::linear on the same bf16 values. ldx/ldy 0 = dense.
  void check(int64_t m, int64_t n, int64_t k, bool bias, int64_t ldx = 0, int64_t ldy = 0) {
    const int64_t lx = ldx ? ldx : k, ly = ldy ? ldy : n;
    const uint32_t seed = static_cast<uint32_t>(m * 1000003 + n * 1009 + k * 17 + (bias ? 1 : 0));
    auto x = random_bf16(static_cast<size_t>(m * lx), seed);
    auto w = random_bf16(static_cast<size_t>(n * k), seed + 1);
    auto b = random_bf16(static_cast<size_t>(n), seed + 2);
    // Reference on the f32 values of the dense part of x.
    std::vector<float> xf(static_cast<size_t>(m * k));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < k; ++c) xf[r * k + c] = bf16_to_f32(x[r * lx + c]);
    std::vector<float> ref(static_cast<size_t>(m * n));
    ref::LinearParams lp;
    lp.rows = m;
    lp.in = k;
    lp.out = n;
    ASSERT_TRUE(ref::linear(xf.data(), w.data(), DType::kBF16, bias ? b.data() : nullptr, DType::kBF16, lp, ref.data())
                    .ok());

    DeviceBuffer dx = upload(x), dw = upload(w), db = upload(b);
    auto dy = DeviceBuffer::allocate(static_cast<size_t>(m * ly) * 4 + 16);
    ASSERT_TRUE(dy.ok());

    std::vector<Variant> variants = {{"auto", false, GemmPath::kAuto}, {"cublaslt", false, GemmPath::kCublasLt}};
    if (m <= kGemvMaxM && k % 8 == 0 && lx % 8 == 0) {
      variants.push_back({"gemv", false, GemmPath::kGemv});
      if (m <= detail::kGemvWarpMaxM)
        variants.push_back({"gemv-warp", true, GemmPath::kGemv, detail::GemvKernel::kWarpRows});
      if (m <= detail::kGemvWarpMaxM && k >= 1024) {
        variants.push_back({"gemv-warp-split2", true, GemmPath::kGemv, detail::GemvKernel::kWarpRows, 2});
        variants.push_back({"gemv-warp-split4", true, GemmPath::kGemv, detail::GemvKernel::kWarpRows, 4});
      }
      if (m == 1) variants.push_back({"gemv-warp-deep", true, GemmPath::kGemv, detail::GemvKernel::kWarpRowsDeep});
      if (m <= detail::kGemvWarpMaxM) {
        variants.push_back({"gemv-async", true, GemmPath::kGemv, detail::GemvKernel::kWarpAsync});
        if (k >= 1024)
          variants.push_back({"gemv-async-split4", true, GemmPath::kGemv, detail::GemvKernel::kWarpAsync, 4});
      }
      variants.push_back({"gemv-mma", true, GemmPath::kGemv, detail::GemvKernel::kMmaTiles, 1});
      if (k >= 96) variants.push_back({"gemv-mma-split3", true, GemmPath::kGemv, detail::GemvKernel::kMmaTiles, 3});
    }
    for (DType out : {DType::kBF16, DType::kF32}) {
      for (const Variant& v : variants) {
        ASSERT_EQ(cudaMemsetAsync(dy->data(), 0xff, dy->bytes(), stream_.get()), cudaSuccess);  // NaN fill
        GemmArgs a;
        a.x = dx.data();
        a.w = dw.data();
        a.bias = bias ? db.data() : nullptr;
        a.y = dy->data();
        a.m = m;
        a.n = n;
        a.k = k;
        a.ldx = ldx;
        a.ldy = ldy;
        a.out_dtype = out;
        GemmArgs resolved = a;
        resolved.ldx = lx;
        resolved.ldy = ly;
        Status st = v.direct ? detail::launch_gemv(resolved, scratch_.scratch, stream_.get(), v.k_splits, v.kernel)
                             : runner_->run(a, stream_.get(), v.path);
        ASSERT_TRUE(st.ok()) << st.message();
        ASSERT_TRUE(stream_.synchronize().ok());
        std::vector<float> y(static_cast<size_t>(m * ly));
        if (out == DType::kF32) {
          ASSERT_TRUE(dy->copy_to_host(y.data(), y.size() * 4).ok());
        } else {
          std::vector<uint16_t> yb(y.size());
          ASSERT_TRUE(dy->copy_to_host(yb.data(), yb.size() * 2).ok());
          for (size_t i = 0; i < y.size(); ++i) y[i] = bf16_to_f32(yb[i]);
        }
        double max_abs = 0.0, max_rel = 0.0;
        int64_t bad = 0, first_bad = -1;
        for (int64_t r = 0; r < m; ++r) {
          float row_max = 0.0f;
          for (int64_t c = 0; c < n; ++c) row_max = std::max(row_max, std::fabs(ref[r * n + c]));
          for (int64_t c = 0; c < n; ++c) {
            const double got = y[r * ly + c], want = ref[r * n + c];
            const double err = std::fabs(got - want);
            const double tol = 1e-2 * row_max + 1e-3;
            if (!(err <= tol)) {  // also catches NaN (unwritten outputs)
              if (first_bad < 0) first_bad = r * n + c;
              ++bad;
            }
            if (std::isfinite(err)) {
              max_abs = std::max(max_abs, err);
              max_rel = std::max(max_rel, err / (row_max + 1e-6));
            } else {
              max_abs = max_rel = INFINITY;
            }
          }
        }
        ++runs_;
        worst_abs_ = std::max(worst_abs_, max_abs);
        worst_rel_ = std::max(worst_rel_, max_rel);
        EXPECT_EQ(bad, 0) << bad << " bad outputs, first at row " << first_bad / n << " col " << first_bad % n
                          << " got " << y[(first_bad / n) * ly + first_bad % n] << " want " << ref[first_bad]
                          << " (m=" << m << " n=" << n << " k=" << k << " out=" << dtype_name(out)
                          << " variant=" << v.name << " bias=" << bias << " ldx=" << lx << " ldy=" << ly
                          << "; max_abs=" << max_abs << " max_rel=" << max_rel << ")";
      }
    }
  }

  int runs_ = 0;
  double worst_abs_ = 0.0, worst_rel_ = 0.0;
};

struct Shape {
  int64_t n, k;
};

TEST_F(GemmTest, GridSmallShapes) {
  const Shape shapes[] = {{64, 64}, {136, 72}, {152, 8}, {24, 40}, {17, 24}, {33, 264}};
  for (int64_t m : {1, 2, 3, 4, 7, 8, 9, 16, 33, 128, 1000})
    for (const Shape& s : shapes)
      for (bool bias : {false, true}) check(m, s.n, s.k, bias);
}

TEST_F(GemmTest, GridLargerShapes) {
  const Shape shapes[] = {{1000, 512}, {4096, 1024}};
  for (int64_t m : {1, 2, 3, 4, 7, 8, 9, 16, 33, 128})
    for (const Shape& s : shapes)
      for (bool bias : {false, true})
        if (m * s.n * s.k <= (int64_t{64} << 20)) check(m, s.n, s.k, bias);
}

TEST_F(GemmTest, RealisticDecodeShapes) {
  // Odd k split across the GEMV kernel's warps, long k (down_proj-like), a
  // vocabulary-sized n with a partial last row tile.
  check(1, 3584, 18944, false);
  check(4, 4608, 3584, true);
  check(8, 1000, 27648, false);
  check(1, 9998, 512, false);
}

TEST_F(GemmTest, StridedInputAndOutput) {
  for (int64_t m : {1, 3, 8, 20}) {
    check(m, 136, 72, true, /*ldx=*/80, /*ldy=*/144);
    check(m, 64, 64, false, /*ldx=*/72, /*ldy=*/65);
  }
}

TEST_F(GemmTest, KNotMultipleOf8FallsBackToCublasLt) {
  check(1, 64, 60, true);
  check(5, 30, 30, false);
}

TEST_F(GemmTest, PrepareThenRunAndZeroRows) {
  ASSERT_TRUE(runner_->prepare(64, 256, 128, DType::kBF16, true).ok());
  ASSERT_TRUE(runner_->prepare(1, 256, 128, DType::kF32, false).ok());
  check(64, 256, 128, true);
  GemmArgs a;
  a.m = 0;
  a.n = 16;
  a.k = 16;
  EXPECT_TRUE(runner_->run(a, stream_.get()).ok());  // no tokens: nothing to do
  EXPECT_GT(runner_->workspace_bytes(), 0u);
}

// prepare(args, stream) times the candidates and caches one; kAuto then uses it
// (also inside a graph capture) and stays correct.
TEST_F(GemmTest, MeasuredChoiceIsCachedAndCorrect) {
  for (int64_t m : {1, 3, 8}) {
    // A shape no other test uses: timed choices are shared by every runner of the process.
    const int64_t n = 2040, k = 1016;
    auto x = random_bf16(static_cast<size_t>(m * k), 11);
    auto w = random_bf16(static_cast<size_t>(n * k), 12);
    DeviceBuffer dx = upload(x), dw = upload(w);
    auto dy = DeviceBuffer::allocate(static_cast<size_t>(m * n) * 2);
    ASSERT_TRUE(dy.ok());
    GemmArgs a;
    a.x = dx.data();
    a.w = dw.data();
    a.y = dy->data();
    a.m = m;
    a.n = n;
    a.k = k;
    EXPECT_EQ(runner_->chosen_kernel(a).rfind("unmeasured", 0), 0u) << runner_->chosen_kernel(a);
    ASSERT_TRUE(runner_->prepare(a, stream_.get()).ok());
    const std::string chosen = runner_->chosen_kernel(a);
    std::printf("m=%lld n=%lld k=%lld: kAuto uses %s\n", (long long)m, (long long)n, (long long)k, chosen.c_str());
    EXPECT_TRUE(chosen == "cublaslt" || chosen.rfind("gemv-warp", 0) == 0 || chosen == "gemv-async" ||
                chosen == "gemv-mma")
        << chosen;
  }
  check(3, 2040, 1016, false);  // same shape as measured above, now through the cached choice
}

TEST_F(GemmTest, BadArgumentsReturnErrors) {
  auto buf = DeviceBuffer::allocate(1 << 16);
  ASSERT_TRUE(buf.ok());
  GemmArgs good;
  good.x = good.w = buf->data();
  good.y = buf->data();
  good.m = 2;
  good.n = 16;
  good.k = 16;
  auto expect_error = [&](GemmArgs a, GemmPath path, const char* what) {
    Status st = runner_->run(a, stream_.get(), path);
    EXPECT_FALSE(st.ok()) << what;
    std::printf("%s -> %s\n", what, st.message().c_str());
  };
  GemmArgs a = good;
  a.x = nullptr;
  expect_error(a, GemmPath::kAuto, "null x");
  a = good;
  a.w = nullptr;
  expect_error(a, GemmPath::kAuto, "null w");
  a = good;
  a.y = nullptr;
  expect_error(a, GemmPath::kAuto, "null y");
  a = good;
  a.out_dtype = DType::kF16;
  expect_error(a, GemmPath::kAuto, "f16 output");
  a = good;
  a.out_dtype = DType::kI32;
  expect_error(a, GemmPath::kAuto, "i32 output");
  a = good;
  a.ldx = 8;  // smaller than k
  expect_error(a, GemmPath::kAuto, "ldx < k");
  a = good;
  a.ldy = 15;
  expect_error(a, GemmPath::kAuto, "ldy < n");
  a = good;
  a.k = 0;
  expect_error(a, GemmPath::kAuto, "k = 0");
  a = good;
  a.n = -1;
  expect_error(a, GemmPath::kAuto, "n < 0");
  a = good;
  a.k = 12;
  expect_error(a, GemmPath::kGemv, "gemv with k % 8 != 0");
  a = good;
  a.m = kGemvMaxM + 1;
  expect_error(a, GemmPath::kGemv, "gemv with m > kGemvMaxM");
  a = good;
  a.x = static_cast<char*>(buf->data()) + 8;
  expect_error(a, GemmPath::kGemv, "gemv with unaligned x");
  a = good;
  a.w = static_cast<char*>(buf->data()) + 1;
  expect_error(a, GemmPath::kAuto, "odd w pointer");
  EXPECT_TRUE(stream_.synchronize().ok());
}

}  // namespace
}  // namespace ds::cuda
