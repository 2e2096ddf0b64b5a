// The bulk GEMV's RMSNorm prologue (GemmArgs::norm at m = 1, sm_90+): every
// block computes x = bf16(h * rstd * gamma), rstd = rsqrt(mean(h^2) + eps),
// from the norm's source h (f32 or bf16) into its shared-memory x, then runs
// as without it, alone or with the SwiGLU epilogue (the warp kernels have no
// such pair). Checked against a host reference in double over kAuto's bulk
// layouts, decode shapes scaled down and odd ones, bias on / off, f32 and bf16
// out; kAuto (GemmRunner) must take a bulk layout for the norm + SwiGLU pair.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemm_choice.h"
#include "kernels/cuda/gemm/gemv.h"
#include "runtime/cuda/pdl.h"
#include "tests/cuda/gemm/gemm_test_util.h"

namespace ds::cuda {
namespace {

using testing::random_bf16;
using testing::upload;

constexpr detail::Choice kLayouts[] = {detail::Choice::kGemvBulkW8, detail::Choice::kGemvBulkW16,
                                       detail::Choice::kGemvBulkW16S6};

// The reference x: each element is bf16(h * rstd * gamma) computed in double.
// The kernel's f32 rstd and products differ by a few f32 ulps, so where that
// straddles a bf16 rounding boundary x may be either neighbour: x holds the
// midpoint and slack half the gap (0 elsewhere).
struct RefX {
  std::vector<double> x, slack;
};

RefX reference_x(const std::vector<float>& h, const std::vector<uint16_t>& gamma, float eps) {
  const size_t k = h.size();
  double ss = 0.0;
  for (float v : h) ss += static_cast<double>(v) * v;
  const double rstd = 1.0 / std::sqrt(ss / static_cast<double>(k) + eps);
  RefX r;
  r.x.resize(k);
  r.slack.resize(k);
  for (size_t i = 0; i < k; ++i) {
    const double v = h[i] * rstd * bf16_to_f32(gamma[i]);
    const double lo = bf16_to_f32(f32_to_bf16(static_cast<float>(v * (1.0 - 2e-6))));
    const double hi = bf16_to_f32(f32_to_bf16(static_cast<float>(v * (1.0 + 2e-6))));
    r.x[i] = 0.5 * (lo + hi);
    r.slack[i] = 0.5 * std::fabs(hi - lo);
  }
  return r;
}

struct Shape {
  const char* name;
  int64_t n, k;  // with SwiGLU, n = 2I
};
const Shape kShapes[] = {{"7B qkv/8", 576, 448},     {"7B gate_up/16", 2368, 3584}, {"32B gate_up/32", 1728, 5120},
                         {"long k", 67, 18944},      {"odd n", 1001, 264},          {"tiny", 2, 8}};

class BulkNormTest : public testing::RunnerTest {};

TEST_F(BulkNormTest, MatchesReference) {
  if (!detail::pdl_device_ok()) GTEST_SKIP() << "no sm_90+ device";
  int runs = 0;
  double worst = 0.0;
  for (const Shape& s : kShapes) {
    const int64_t n = s.n, k = s.k;
    for (bool src_f32 : {true, false}) {
      const uint32_t seed = static_cast<uint32_t>(7 * n + k + (src_f32 ? 1 : 0));
      // h: the residual stream's scale (values up to about 8), gamma near 1.
      std::vector<float> h(static_cast<size_t>(k));
      const std::vector<uint16_t> hb = random_bf16(h.size(), seed);
      for (size_t i = 0; i < h.size(); ++i) h[i] = 8.0f * bf16_to_f32(hb[i]) + (src_f32 ? 1e-3f * (i % 7) : 0.0f);
      std::vector<uint16_t> h16(h.size());
      for (size_t i = 0; i < h.size(); ++i) h16[i] = f32_to_bf16(h[i]);
      if (!src_f32)
        for (size_t i = 0; i < h.size(); ++i) h[i] = bf16_to_f32(h16[i]);
      std::vector<uint16_t> gamma = random_bf16(static_cast<size_t>(k), seed + 1);
      for (auto& g : gamma) g = f32_to_bf16(1.0f + 0.25f * bf16_to_f32(g));
      const std::vector<uint16_t> w = random_bf16(static_cast<size_t>(n * k), seed + 2);
      const std::vector<uint16_t> bias = random_bf16(static_cast<size_t>(n), seed + 3);
      const float eps = 1e-6f;
      const RefX rx = reference_x(h, gamma, eps);
      // Plain dots, their |x|·|w| (f32 summation error) and the x slack they carry.
      std::vector<double> dot(static_cast<size_t>(n)), absdot(static_cast<size_t>(n)), slack(static_cast<size_t>(n));
      for (int64_t r = 0; r < n; ++r) {
        double d = 0.0, a = 0.0, sl = 0.0;
        for (int64_t i = 0; i < k; ++i) {
          const double wv = bf16_to_f32(w[r * k + i]);
          d += wv * rx.x[i];
          a += std::fabs(wv * rx.x[i]);
          sl += std::fabs(wv) * rx.slack[i];
        }
        dot[r] = d, absdot[r] = a, slack[r] = sl;
      }
      DeviceBuffer dsrc = src_f32 ? upload(h) : upload(h16);
      DeviceBuffer dg = upload(gamma), dw = upload(w), db = upload(bias);
      auto y = DeviceBuffer::allocate(static_cast<size_t>(n) * 4);
      ASSERT_TRUE(y.ok());
      for (bool swiglu : {false, true}) {
        if (swiglu && n % 2 != 0) continue;  // gate and up rows: n = 2I
        const int64_t half = n / 2;
        for (bool with_bias : {false, true}) {
          for (DType out : {DType::kBF16, DType::kF32}) {
            if (swiglu && out == DType::kF32) continue;  // swiglu_out is bf16
            // Expected outputs and tolerances.
            const int64_t outs = swiglu ? half : n;
            std::vector<double> want(static_cast<size_t>(outs)), tol(static_cast<size_t>(outs));
            for (int64_t j = 0; j < outs; ++j) {
              auto lin = [&](int64_t r, double* e) {
                *e = k * 1.2e-7 * absdot[r] + slack[r] + 1e-6;
                return dot[r] + (with_bias ? bf16_to_f32(bias[r]) : 0.0);
              };
              if (!swiglu) {
                double e;
                want[j] = lin(j, &e);
                tol[j] = e + (out == DType::kBF16 ? std::fabs(want[j]) / 256.0 : 0.0);
              } else {
                double eg, eu;
                const double g = lin(j, &eg), u = lin(half + j, &eu);
                const double sg = g / (1.0 + std::exp(-g));
                want[j] = sg * u;
                tol[j] = 1.1 * std::fabs(u) * eg + std::fabs(sg) * eu + 1.1 * eg * eu + std::fabs(want[j]) / 256.0 + 1e-6;
              }
            }
            for (int li = -1; li < static_cast<int>(std::size(kLayouts)); ++li) {
              std::ostringstream what;
              what << s.name << " n=" << n << " k=" << k << " src " << (src_f32 ? "f32" : "bf16")
                   << (swiglu ? " swiglu" : "") << " bias=" << with_bias << " out " << dtype_name(out) << " "
                   << (li < 0 ? "kAuto" : detail::choice_name(kLayouts[li]));
              ASSERT_EQ(cudaMemsetAsync(y->data(), 0xff, y->bytes(), stream_.get()), cudaSuccess);
              GemmArgs a;
              a.w = dw.data();
              a.bias = with_bias ? db.data() : nullptr;
              a.m = 1, a.n = n, a.k = k, a.ldx = k, a.ldy = n;
              a.out_dtype = out;
              a.norm.src = dsrc.data();
              a.norm.src_dtype = src_f32 ? DType::kF32 : DType::kBF16;
              a.norm.gamma = dg.data();
              a.norm.eps = eps;
              if (swiglu) a.swiglu_out = y->data();
              else a.y = y->data();
              Status st;
              if (li < 0) {
                ASSERT_TRUE(runner_->supports_norm_prologue(a)) << what.str();
                if (swiglu) {
                  ASSERT_TRUE(runner_->supports_swiglu_epilogue(a)) << what.str();
                }
                st = runner_->run(a, stream_.get());
              } else {
                st = detail::launch_gemv_bulk(a, detail::bulk_config(kLayouts[li]), scratch_.scratch.num_sms,
                                              stream_.get());
              }
              ASSERT_TRUE(st.ok()) << what.str() << ": " << st.message();
              ASSERT_TRUE(stream_.synchronize().ok()) << what.str();
              // kAuto may take a warp kernel's prologue without the SwiGLU epilogue: it scales
              // its dots by rstd instead of rounding x to bf16 (up to a bf16 ulp of each term).
              const bool bulk = runner_->chosen_kernel(a).rfind("gemv-bulk", 0) == 0;
              if (li < 0 && swiglu) EXPECT_TRUE(bulk) << what.str() << ": kAuto took " << runner_->chosen_kernel(a);
              std::vector<double> tol_run = tol;
              if (li < 0 && !bulk)
                for (int64_t j = 0; j < outs; ++j) tol_run[j] += absdot[j] / 256.0;
              std::vector<double> got(static_cast<size_t>(outs));
              if (out == DType::kF32) {
                std::vector<float> g(static_cast<size_t>(outs));
                ASSERT_TRUE(y->copy_to_host(g.data(), g.size() * 4).ok());
                std::copy(g.begin(), g.end(), got.begin());
              } else {
                std::vector<uint16_t> g(static_cast<size_t>(outs));
                ASSERT_TRUE(y->copy_to_host(g.data(), g.size() * 2).ok());
                for (size_t i = 0; i < g.size(); ++i) got[i] = bf16_to_f32(g[i]);
              }
              int64_t bad = 0, first = -1;
              for (int64_t j = 0; j < outs; ++j) {
                const double err = std::fabs(got[j] - want[j]);
                if (!(err <= tol_run[j])) {
                  if (first < 0) first = j;
                  ++bad;
                }
                if (std::isfinite(err)) worst = std::max(worst, err / tol_run[j]);
              }
              ++runs;
              EXPECT_EQ(bad, 0) << what.str() << ": " << bad << " of " << outs << " off, first col " << first
                                << " got " << (first >= 0 ? got[first] : 0.0) << " want "
                                << (first >= 0 ? want[first] : 0.0) << " tol " << (first >= 0 ? tol[first] : 0.0);
            }
          }
        }
      }
    }
  }
  std::printf("BulkNormTest: %d GPU runs, worst |err| / tol = %.3g\n", runs, worst);
}

// What the prologue needs (host only): the source's alignment and dtype, no
// overlap of the source with swiglu_out; the norm + SwiGLU pair is the bulk
// GEMV's alone.
TEST(BulkNorm, UnsupportedCases) {
  GemmArgs a;
  a.m = 1, a.n = 16, a.k = 64;
  a.w = reinterpret_cast<const void*>(uintptr_t{1} << 20);
  a.y = reinterpret_cast<void*>(uintptr_t{2} << 20);
  a.norm.src = reinterpret_cast<const void*>(uintptr_t{3} << 20);
  a.norm.gamma = reinterpret_cast<const void*>(uintptr_t{4} << 20);
  EXPECT_EQ(detail::gemv_bulk_unsupported_reason(a), "") << "x is not read with the prologue";
  GemmArgs mis = a;
  mis.norm.src = reinterpret_cast<const void*>((uintptr_t{3} << 20) + 8);
  EXPECT_NE(detail::gemv_bulk_unsupported_reason(mis).find("RMSNorm prologue"), std::string::npos);
  GemmArgs f16 = a;
  f16.norm.src_dtype = DType::kF16;
  EXPECT_NE(detail::gemv_bulk_unsupported_reason(f16).find("dtype"), std::string::npos);
  GemmArgs sw = a;
  sw.y = nullptr;
  sw.swiglu_out = reinterpret_cast<void*>(uintptr_t{5} << 20);
  EXPECT_EQ(detail::gemv_bulk_unsupported_reason(sw), "");
  GemmArgs over = sw;
  over.swiglu_out = const_cast<void*>(a.norm.src);
  EXPECT_NE(detail::gemv_bulk_unsupported_reason(over).find("overlaps"), std::string::npos);
  for (detail::Choice c : {detail::Choice::kGemvWarp, detail::Choice::kGemvWarpS4, detail::Choice::kGemvAsync,
                           detail::Choice::kCublasLt, detail::Choice::kGemvMma})
    EXPECT_FALSE(detail::choice_can_run(c, 1, /*norm=*/true, /*swiglu=*/true)) << detail::choice_name(c);
  for (detail::Choice c : kLayouts) {
    EXPECT_TRUE(detail::choice_can_run(c, 1, /*norm=*/true, /*swiglu=*/true)) << detail::choice_name(c);
    EXPECT_FALSE(detail::choice_can_run(c, 2, /*norm=*/true, /*swiglu=*/false)) << detail::choice_name(c);
  }
  EXPECT_TRUE(detail::is_bulk_choice(detail::static_choice(sw)));
}

}  // namespace
}  // namespace ds::cuda
