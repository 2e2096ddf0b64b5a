// Harness of the residual-epilogue / RMSNorm-prologue tests (epilogue_test.cpp):
// one case's data on the host and the device, the CPU reference in f32, and a
// run of one kernel variant checked element by element.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemv.h"
#include "kernels/ref/elementwise.h"
#include "kernels/ref/linear.h"
#include "tests/cuda/gemm/gemm_test_util.h"

namespace ds::cuda::testing {

enum class Res { kNone, kSeparate, kInPlace };
inline const char* res_name(Res r) { return r == Res::kNone ? "none" : r == Res::kSeparate ? "separate" : "in-place"; }

// One way of computing a case: through the runner (a GemmPath) or one GEMV
// kernel directly (detail::launch_gemv; k_splits 0 = automatic).
struct Variant {
  std::string name;
  bool direct = false;
  GemmPath path = GemmPath::kAuto;
  detail::GemvKernel kernel = detail::GemvKernel::kAuto;
  int k_splits = 0;
};

struct Case {
  std::string name;
  int64_t m = 1, n = 1, k = 8, ldy = 0;  // ldy: y and residual row stride (0: n)
  bool bias = false;
  DType out = DType::kBF16;
  Res res = Res::kNone;
  bool norm = false;             // RMSNorm prologue: x = rms_norm(src) * gamma, x not read
  DType src_dtype = DType::kF32;
  int64_t ld_src = 0;            // 0: k
  float eps = 1e-6f;
  std::string describe() const {
    std::ostringstream o;
    o << "case '" << name << "' m=" << m << " n=" << n << " k=" << k << " ldy=" << (ldy ? ldy : n)
      << " bias=" << bias << " out=" << dtype_name(out) << " residual=" << res_name(res);
    if (norm) o << " norm src=" << dtype_name(src_dtype) << " ld_src=" << (ld_src ? ld_src : k) << " eps=" << eps;
    return o.str();
  }
};

class EpilogueHarness : public RunnerTest {
 protected:
  // Random data of the case's shape (bias, out and res are chosen per run).
  // Padding of strided rows holds NaN, so a kernel reading it shows.
  void prepare_case(const Case& c, uint32_t seed) {
    const int64_t m = c.m, n = c.n, k = c.k, ldy = c.ldy ? c.ldy : c.n;
    std::mt19937 rng(seed * 7919u + static_cast<uint32_t>(n * 31 + k));
    std::uniform_real_distribution<float> sym(-1.0f, 1.0f);
    w_ = random_bf16(static_cast<size_t>(n * k), seed + 1);
    bias_ = random_bf16(static_cast<size_t>(n), seed + 2);
    std::vector<float> xf(static_cast<size_t>(m * k));
    if (c.norm) {
      const int64_t ld = c.ld_src ? c.ld_src : k;
      std::vector<float> src_f(static_cast<size_t>(m * k));
      for (auto& v : src_f) v = 2.0f * sym(rng);
      if (c.src_dtype == DType::kBF16)
        for (auto& v : src_f) v = bf16_to_f32(f32_to_bf16(v));
      std::vector<uint16_t> gamma(static_cast<size_t>(k));
      for (auto& g : gamma) g = f32_to_bf16(1.0f + 0.5f * sym(rng));
      ASSERT_TRUE(ref::rms_norm(src_f.data(), m, k, gamma.data(), DType::kBF16, c.eps, xf.data()).ok());
      if (c.src_dtype == DType::kF32) {
        std::vector<float> s(static_cast<size_t>(m * ld), NAN);
        for (int64_t r = 0; r < m; ++r) std::copy_n(&src_f[r * k], k, &s[r * ld]);
        dsrc_ = upload(s);
      } else {
        std::vector<uint16_t> s(static_cast<size_t>(m * ld), 0x7fc0);  // bf16 NaN
        for (int64_t r = 0; r < m; ++r)
          for (int64_t j = 0; j < k; ++j) s[r * ld + j] = f32_to_bf16(src_f[r * k + j]);
        dsrc_ = upload(s);
      }
      dgamma_ = upload(gamma);
    } else {
      std::vector<uint16_t> x = random_bf16(static_cast<size_t>(m * k), seed + 3);
      for (size_t i = 0; i < x.size(); ++i) xf[i] = bf16_to_f32(x[i]);
      dx_ = upload(x);
    }
    // lin = x·wᵀ in f32; absdot = |x|·|w|ᵀ bounds what rounding x to bf16 can change.
    ref::LinearParams lp;
    lp.rows = m;
    lp.in = k;
    lp.out = n;
    lin_.assign(static_cast<size_t>(m * n), 0.0f);
    ASSERT_TRUE(ref::linear(xf.data(), w_.data(), DType::kBF16, nullptr, DType::kBF16, lp, lin_.data()).ok());
    absdot_.clear();
    if (c.norm) {
      std::vector<float> ax(xf.size());
      for (size_t i = 0; i < xf.size(); ++i) ax[i] = std::fabs(xf[i]);
      std::vector<uint16_t> aw(w_.size());
      for (size_t i = 0; i < w_.size(); ++i) aw[i] = static_cast<uint16_t>(w_[i] & 0x7fffu);
      absdot_.assign(static_cast<size_t>(m * n), 0.0f);
      ASSERT_TRUE(ref::linear(ax.data(), aw.data(), DType::kBF16, nullptr, DType::kBF16, lp, absdot_.data()).ok());
    }
    // Residual rows (stride ldy; padding NaN) as f32 and as bf16.
    res_f32_.assign(static_cast<size_t>(m * ldy), NAN);
    res_bf16_.assign(static_cast<size_t>(m * ldy), 0x7fc0);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) {
        const float v = 4.0f * sym(rng);
        res_f32_[r * ldy + j] = v;
        res_bf16_[r * ldy + j] = f32_to_bf16(v);
      }
    dw_ = upload(w_);
    db_ = upload(bias_);
    dres_f32_ = upload(res_f32_);
    dres_bf16_ = upload(res_bf16_);
    auto y = DeviceBuffer::allocate(static_cast<size_t>(m * ldy) * 4 + 16);
    ASSERT_TRUE(y.ok()) << y.status().message();
    dy_ = std::move(y.value());
  }

  const void* residual_buffer(const Case& c) const {
    return c.out == DType::kF32 ? dres_f32_.data() : dres_bf16_.data();
  }

  GemmArgs make_args(const Case& c, const Variant& v) {
    GemmArgs a;
    a.x = c.norm ? nullptr : dx_.data();
    a.w = dw_.data();
    a.bias = c.bias ? db_.data() : nullptr;
    a.y = dy_.data();
    a.m = c.m;
    a.n = c.n;
    a.k = c.k;
    a.ldx = v.direct ? c.k : 0;
    a.ldy = v.direct ? (c.ldy ? c.ldy : c.n) : c.ldy;
    a.out_dtype = c.out;
    if (c.res == Res::kSeparate) a.residual = residual_buffer(c);
    if (c.res == Res::kInPlace) a.residual = a.y;
    if (c.norm) {
      a.norm.src = dsrc_.data();
      a.norm.src_dtype = c.src_dtype;
      a.norm.ld_src = c.ld_src;
      a.norm.gamma = dgamma_.data();
      a.norm.eps = c.eps;
    }
    return a;
  }

  // Runs variant v on case c and compares every element (and the row padding,
  // which must keep its bits) with the reference.
  void run_and_check(const Case& c, const Variant& v) {
    const int64_t m = c.m, n = c.n, ldy = c.ldy ? c.ldy : c.n;
    const size_t esize = c.out == DType::kF32 ? 4 : 2;
    const size_t bytes = static_cast<size_t>(m * ldy) * esize;
    // In place: y starts as the residual. Otherwise NaN, so an unwritten output shows.
    if (c.res == Res::kInPlace)
      ASSERT_EQ(cudaMemcpyAsync(dy_.data(), residual_buffer(c), bytes, cudaMemcpyDeviceToDevice, stream_.get()),
                cudaSuccess);
    else
      ASSERT_EQ(cudaMemsetAsync(dy_.data(), 0xff, bytes, stream_.get()), cudaSuccess);
    std::vector<uint8_t> before(bytes);
    if (c.res == Res::kInPlace)
      std::memcpy(before.data(), c.out == DType::kF32 ? static_cast<const void*>(res_f32_.data()) : res_bf16_.data(),
                  bytes);
    else
      std::fill(before.begin(), before.end(), 0xff);
    const GemmArgs a = make_args(c, v);
    const Status st = v.direct ? detail::launch_gemv(a, scratch_.scratch, stream_.get(), v.k_splits, v.kernel)
                               : runner_->run(a, stream_.get(), v.path);
    ASSERT_TRUE(st.ok()) << c.describe() << " kernel=" << v.name << ": " << st.message();
    ASSERT_TRUE(stream_.synchronize().ok()) << c.describe() << " kernel=" << v.name;
    std::vector<uint8_t> raw(bytes);
    ASSERT_TRUE(dy_.copy_to_host(raw.data(), bytes).ok());
    auto got_at = [&](int64_t i) {
      if (c.out == DType::kF32) {
        float f;
        std::memcpy(&f, &raw[static_cast<size_t>(i) * 4], 4);
        return f;
      }
      uint16_t h;
      std::memcpy(&h, &raw[static_cast<size_t>(i) * 2], 2);
      return bf16_to_f32(h);
    };
    double max_abs = 0.0, max_rel = 0.0;
    int64_t bad = 0, first_bad = -1, pad_changed = 0;
    float first_got = 0.0f, first_want = 0.0f, first_tol = 0.0f;
    for (int64_t r = 0; r < m; ++r) {
      std::vector<float> want(static_cast<size_t>(n));
      float row_max = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        float v2 = lin_[r * n + j];
        if (c.bias) v2 += bf16_to_f32(bias_[j]);
        if (c.res != Res::kNone)
          v2 += c.out == DType::kF32 ? res_f32_[r * ldy + j] : bf16_to_f32(res_bf16_[r * ldy + j]);
        want[j] = v2;
        row_max = std::max(row_max, std::fabs(v2));
      }
      for (int64_t j = 0; j < n; ++j) {
        const float got = got_at(r * ldy + j);
        const double err = std::fabs(static_cast<double>(got) - want[j]);
        double tol;
        if (c.norm) {
          // The unfused path rounds x to bf16 (relative 2^-9 per element): allow
          // twice that over the products, plus the output rounding.
          const double ad = absdot_[r * n + j];
          tol = ad * (1.0 / 256.0 + 1e-5) + (c.out == DType::kBF16 ? std::fabs(want[j]) / 256.0 : 0.0) + 1e-5;
        } else {
          tol = 1e-2 * row_max + 1e-3;
        }
        if (!(err <= tol)) {  // also NaN
          if (first_bad < 0) {
            first_bad = r * n + j;
            first_got = got;
            first_want = want[j];
            first_tol = static_cast<float>(tol);
          }
          ++bad;
        }
        if (std::isfinite(err)) {
          max_abs = std::max(max_abs, err);
          max_rel = std::max(max_rel, err / (row_max + 1e-6));
        } else {
          max_abs = max_rel = INFINITY;
        }
      }
      for (int64_t j = n; j < ldy; ++j)
        if (std::memcmp(&raw[static_cast<size_t>(r * ldy + j) * esize], &before[static_cast<size_t>(r * ldy + j) * esize],
                        esize) != 0)
          ++pad_changed;
    }
    ++runs_;
    worst_abs_ = std::max(worst_abs_, max_abs);
    worst_rel_ = std::max(worst_rel_, max_rel);
    EXPECT_EQ(bad, 0) << c.describe() << " kernel=" << v.name << ": " << bad << " of " << m * n
                      << " outputs off, first at row " << (first_bad >= 0 ? first_bad / n : -1) << " col "
                      << (first_bad >= 0 ? first_bad % n : -1) << " got " << first_got << " want " << first_want
                      << " tol " << first_tol << "; max_abs=" << max_abs << " max_rel=" << max_rel
                      << " (rel to the row's max |y|); kAuto uses " << runner_->chosen_kernel(a);
    EXPECT_EQ(pad_changed, 0) << c.describe() << " kernel=" << v.name << ": " << pad_changed
                              << " padding elements of y (columns n..ldy) were written";
  }

  void TearDown() override {
    if (runs_ > 0)
      std::printf("%s: %d GPU runs, worst max_abs=%.3g max_rel=%.3g (rel to the row's max |y|)\n",
                  ::testing::UnitTest::GetInstance()->current_test_info()->name(), runs_, worst_abs_, worst_rel_);
  }

  std::vector<uint16_t> w_, bias_, res_bf16_;
  std::vector<float> lin_, absdot_, res_f32_;
  DeviceBuffer dx_, dw_, db_, dsrc_, dgamma_, dres_f32_, dres_bf16_, dy_;
  int runs_ = 0;
  double worst_abs_ = 0.0, worst_rel_ = 0.0;
};

}  // namespace ds::cuda::testing
