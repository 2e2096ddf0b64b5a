// The SwiGLU epilogue of the warp GEMV kernels (GemmArgs::swiglu_out) vs the
// CPU reference (ref::linear over the [2I, k] gate_up weight, then
// ref::silu(g) * u in f32): m = 1..4, I from the 7B/32B/TP2-32B decode layers
// scaled down by 8 and odd I, tail k, bias on/off, padded output rows, every
// warp kernel and split count that can hold a gate/up pair; the cases it must
// refuse; and a PDL chain (SwiGLU GEMV -> down GEMV with an in-place residual)
// whose eager-with-PDL and graph results must equal eager without PDL bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemm_choice.h"
#include "kernels/cuda/gemm/gemv.h"
#include "kernels/ref/elementwise.h"
#include "kernels/ref/linear.h"
#include "runtime/cuda/pdl.h"
#include "tests/cuda/gemm/gemm_test_util.h"

namespace ds::cuda {
namespace {

using detail::GemvKernel;
using testing::random_bf16;
using testing::upload;

struct Shape {
  const char* name;
  int64_t inter, k;  // I (w is [2I, k]) and k
};
// 7B (I 18944, k 3584), 32B (I 27648, k 5120) and TP2-32B (I 13824) scaled by
// 1/8; odd I; k with a tail (not a multiple of 256); long k (auto splits 2).
const Shape kShapes[] = {{"7B gate_up/8", 2368, 448}, {"32B gate_up/8", 3456, 640}, {"TP2 32B gate_up/8", 1728, 640},
                         {"odd I", 1001, 264},        {"tiny odd I", 3, 24},         {"I = 1", 1, 8},
                         {"long k", 129, 4736}};

struct Variant {
  const char* name;
  bool direct;           // detail::launch_gemv (else GemmRunner::run)
  GemmPath path;         // runner path
  GemvKernel kernel;     // direct kernel
  int k_splits;          // direct: 0 automatic
  bool null_y;           // y = nullptr (else a sentinel buffer that must stay untouched)
};

std::vector<Variant> variants_for(int64_t m) {
  std::vector<Variant> v = {{"auto (y null)", false, GemmPath::kAuto, GemvKernel::kAuto, 0, true},
                            {"gemv path", false, GemmPath::kGemv, GemvKernel::kAuto, 0, false}};
  // Warp kernels (one warp per gate/up pair): 1, 2 or 4 warps per pair; gemv-async
  // (a block holds the pair): 1 or 2.
  static const char* const kWarp[] = {"warp", "warp split1", "warp split2", "", "warp split4"};
  static const char* const kDeep[] = {"deep", "deep split1", "deep split2", "", "deep split4"};
  static const char* const kAsync[] = {"async", "async split1", "async split2"};
  for (int s : {0, 1, 2, 4}) {
    v.push_back({kWarp[s], true, GemmPath::kGemv, GemvKernel::kWarpRows, s, false});
    if (s <= 2) v.push_back({kAsync[s], true, GemmPath::kGemv, GemvKernel::kWarpAsync, s, false});
    if (m == 1) v.push_back({kDeep[s], true, GemmPath::kGemv, GemvKernel::kWarpRowsDeep, s, false});
  }
  // The bulk-streaming GEMV (m = 1, sm_90+): 8 or 16 warps, gate rows then up rows per block.
  if (m == 1 && detail::pdl_device_ok()) {
    v.push_back({"bulk w8", true, GemmPath::kGemv, GemvKernel::kBulk, 8, false});
    v.push_back({"bulk w16", true, GemmPath::kGemv, GemvKernel::kBulk, 16, false});
  }
  return v;
}

class SwigluTest : public testing::RunnerTest {
 protected:
  void TearDown() override {
    if (runs_ > 0)
      std::printf("%s: %d GPU runs, worst |err| / tol = %.3g\n",
                  ::testing::UnitTest::GetInstance()->current_test_info()->name(), runs_, worst_ratio_);
  }
  int runs_ = 0;
  double worst_ratio_ = 0.0;
};

float silu(float v) {
  float s;
  ref::silu(&v, 1, &s);
  return s;
}

TEST_F(SwigluTest, MatchesReferenceOverGrid) {
  // A DSRT_GEMM_KERNEL without the epilogue makes the runner refuse it: then only the direct launches run.
  const char* env = std::getenv("DSRT_GEMM_KERNEL");
  const bool forced = env != nullptr && *env != 0;
  for (const Shape& s : kShapes) {
    const int64_t I = s.inter, n = 2 * I, k = s.k;
    for (int64_t m = 1; m <= detail::kGemvWarpMaxM; ++m) {
      const uint32_t seed = static_cast<uint32_t>(1000 + 10 * m + n);
      const std::vector<uint16_t> x = random_bf16(static_cast<size_t>(m * k), seed);
      const std::vector<uint16_t> w = random_bf16(static_cast<size_t>(n * k), seed + 1);
      const std::vector<uint16_t> bias = random_bf16(static_cast<size_t>(n), seed + 2);
      std::vector<float> xf(x.size()), ax(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        xf[i] = bf16_to_f32(x[i]);
        ax[i] = std::fabs(xf[i]);
      }
      std::vector<uint16_t> aw(w.size());
      for (size_t i = 0; i < w.size(); ++i) aw[i] = static_cast<uint16_t>(w[i] & 0x7fffu);
      ref::LinearParams lp;
      lp.rows = m;
      lp.in = k;
      lp.out = n;
      std::vector<float> lin(static_cast<size_t>(m * n)), absdot(static_cast<size_t>(m * n));
      ASSERT_TRUE(ref::linear(xf.data(), w.data(), DType::kBF16, nullptr, DType::kBF16, lp, lin.data()).ok());
      ASSERT_TRUE(ref::linear(ax.data(), aw.data(), DType::kBF16, nullptr, DType::kBF16, lp, absdot.data()).ok());
      DeviceBuffer dx = upload(x), dw = upload(w), db = upload(bias);
      // y sentinel (must stay untouched): the plain output's size.
      DeviceBuffer dy = upload(std::vector<uint16_t>(static_cast<size_t>(m * n), 0xffff));
      const int64_t ld_pad = I <= 1024 ? 5 : 0;  // odd padding on the small shapes
      const int64_t ld = I + ld_pad;
      auto out = DeviceBuffer::allocate(static_cast<size_t>(m * ld) * 2);
      ASSERT_TRUE(out.ok());
      for (bool with_bias : {false, true}) {
        // Expected values and tolerances: f32 sums (|err| <= k * 2^-23 * |x|·|w| covers both sides'
        // summation order), propagated through silu(g) * u (|silu'| < 1.1), plus the bf16 rounding.
        std::vector<float> want(static_cast<size_t>(m * I)), tol(static_cast<size_t>(m * I));
        for (int64_t r = 0; r < m; ++r)
          for (int64_t j = 0; j < I; ++j) {
            float g = lin[r * n + j], u = lin[r * n + I + j];
            if (with_bias) {
              g += bf16_to_f32(bias[j]);
              u += bf16_to_f32(bias[I + j]);
            }
            const double eg = k * 1.2e-7 * absdot[r * n + j] + 1e-6;
            const double eu = k * 1.2e-7 * absdot[r * n + I + j] + 1e-6;
            const float v = silu(g) * u;
            want[r * I + j] = v;
            tol[r * I + j] = static_cast<float>(1.1 * std::fabs(u) * eg + std::fabs(silu(g)) * eu + 1.1 * eg * eu +
                                                std::fabs(v) / 256.0 + 1e-6);
          }
        for (const Variant& var : variants_for(m)) {
          if (forced && !var.direct) continue;
          std::ostringstream what;
          what << s.name << " m=" << m << " I=" << I << " k=" << k << " ld_swiglu=" << ld << " bias=" << with_bias
               << " kernel=" << var.name;
          ASSERT_EQ(cudaMemsetAsync(out->data(), 0xff, out->bytes(), stream_.get()), cudaSuccess);
          GemmArgs a;
          a.x = dx.data();
          a.w = dw.data();
          a.bias = with_bias ? db.data() : nullptr;
          a.y = var.null_y ? nullptr : dy.data();
          a.m = m;
          a.n = n;
          a.k = k;
          a.ldx = k;
          a.ldy = n;
          a.swiglu_out = out->data();
          a.ld_swiglu = ld_pad == 0 ? 0 : ld;
          if (!var.direct) EXPECT_TRUE(runner_->supports_swiglu_epilogue(a)) << what.str();
          const Status st = var.direct
                                ? detail::launch_gemv(a, scratch_.scratch, stream_.get(), var.k_splits, var.kernel)
                                : runner_->run(a, stream_.get(), var.path);
          ASSERT_TRUE(st.ok()) << what.str() << ": " << st.message();
          ASSERT_TRUE(stream_.synchronize().ok()) << what.str();
          std::vector<uint16_t> got(static_cast<size_t>(m * ld));
          ASSERT_TRUE(out->copy_to_host(got.data(), got.size() * 2).ok());
          int64_t bad = 0, pad_changed = 0, first = -1;
          double ratio = 0.0;
          for (int64_t r = 0; r < m; ++r) {
            for (int64_t j = 0; j < I; ++j) {
              const float g = bf16_to_f32(got[r * ld + j]);
              const double err = std::fabs(static_cast<double>(g) - want[r * I + j]);
              if (!(err <= tol[r * I + j])) {  // also NaN (unwritten)
                if (first < 0) first = r * I + j;
                ++bad;
              }
              if (std::isfinite(err)) ratio = std::max(ratio, err / tol[r * I + j]);
            }
            for (int64_t j = I; j < ld; ++j) pad_changed += got[r * ld + j] != 0xffff ? 1 : 0;
          }
          ++runs_;
          worst_ratio_ = std::max(worst_ratio_, ratio);
          EXPECT_EQ(bad, 0) << what.str() << ": " << bad << " of " << m * I << " outputs off, first at row "
                            << (first >= 0 ? first / I : -1) << " col " << (first >= 0 ? first % I : -1) << " got "
                            << (first >= 0 ? bf16_to_f32(got[(first / I) * ld + first % I]) : 0.0f) << " want "
                            << (first >= 0 ? want[first] : 0.0f) << " tol " << (first >= 0 ? tol[first] : 0.0f)
                            << "; worst |err|/tol " << ratio << "; kAuto uses " << runner_->chosen_kernel(a);
          EXPECT_EQ(pad_changed, 0) << what.str() << ": padding of swiglu_out (columns I..ld_swiglu) written";
          if (!var.null_y) {
            std::vector<uint16_t> y(static_cast<size_t>(m * n));
            ASSERT_TRUE(dy.copy_to_host(y.data(), y.size() * 2).ok());
            EXPECT_EQ(std::count(y.begin(), y.end(), uint16_t{0xffff}), static_cast<long>(y.size()))
                << what.str() << ": y was written";
          }
          if (ratio > 0.0 && var.path == GemmPath::kAuto && !var.direct && with_bias)
            std::printf("%s m=%lld I=%lld k=%lld: kAuto uses %s, worst |err|/tol %.3g\n", s.name, (long long)m,
                        (long long)I, (long long)k, runner_->chosen_kernel(a).c_str(), ratio);
        }
      }
    }
  }
}

// What the SwiGLU epilogue refuses: supports_swiglu_epilogue() false and run()
// an error (never a silent plain GEMM); direct launches of kernels or split
// counts that cannot hold a gate/up pair fail too.
TEST_F(SwigluTest, UnsupportedCases) {
  auto buf = DeviceBuffer::allocate(1 << 20);
  ASSERT_TRUE(buf.ok());
  char* base = static_cast<char*>(buf->data());
  GemmArgs a;
  a.x = base;
  a.w = base + (256 << 10);
  a.y = base + (512 << 10);
  a.swiglu_out = base + (768 << 10);
  a.m = 1;
  a.n = 64;
  a.k = 64;
  for (int64_t m = 1; m <= detail::kGemvWarpMaxM; ++m) {
    GemmArgs b = a;
    b.m = m;
    EXPECT_TRUE(runner_->supports_swiglu_epilogue(b)) << "m=" << m;
  }
  GemmArgs b = a;
  b.y = nullptr;
  EXPECT_TRUE(runner_->supports_swiglu_epilogue(b)) << "y null";
  auto expect_no = [&](const GemmArgs& c, const char* what) {
    EXPECT_FALSE(runner_->supports_swiglu_epilogue(c)) << what;
    const Status st = runner_->run(c, stream_.get());
    EXPECT_FALSE(st.ok()) << what << ": run() with swiglu_out set must fail";
    std::printf("%s -> %s\n", what, st.message().c_str());
  };
  b = a;
  b.m = 5;
  expect_no(b, "m = 5");
  b.m = 8;
  expect_no(b, "m = 8");
  b = a;
  b.n = 63;
  expect_no(b, "n odd");
  b = a;
  b.k = 60;
  expect_no(b, "k = 60");
  b = a;
  b.residual = a.y;
  expect_no(b, "residual");
  b = a;
  b.norm.src = base + (128 << 10);
  b.norm.gamma = base + (640 << 10);
  // With the RMSNorm prologue: the bulk GEMV's alone (m = 1 on sm_90+; bulk_norm_test.cpp).
  if (detail::pdl_device_ok() && detail::gemv_bulk_candidates_on())
    EXPECT_TRUE(runner_->supports_swiglu_epilogue(b)) << "with the RMSNorm prologue at m = 1";
  else
    expect_no(b, "with the RMSNorm prologue (no bulk GEMV)");
  b.m = 2;
  expect_no(b, "with the RMSNorm prologue at m = 2");
  b = a;
  b.out_dtype = DType::kF32;
  expect_no(b, "out_dtype f32");
  b = a;
  b.ld_swiglu = 31;
  expect_no(b, "ld_swiglu < n / 2");
  b = a;
  b.x = base + 8;
  expect_no(b, "x not 16-byte aligned");
  b = a;
  b.ldx = 68;
  expect_no(b, "ldx % 8 != 0");
  b = a;
  b.swiglu_out = base + 64;  // inside x's row
  expect_no(b, "swiglu_out overlaps x");
  b = a;
  b.swiglu_out = base + (768 << 10) + 1;
  expect_no(b, "swiglu_out at an odd address");
  Status st = runner_->run(a, stream_.get(), GemmPath::kCublasLt);
  EXPECT_FALSE(st.ok()) << "cuBLASLt with swiglu_out";
  std::printf("cublaslt with swiglu -> %s\n", st.message().c_str());
  GemmArgs resolved = a;
  resolved.ldx = a.k;
  resolved.ldy = a.n;
  st = detail::launch_gemv(resolved, scratch_.scratch, stream_.get(), 1, GemvKernel::kMmaTiles);
  EXPECT_FALSE(st.ok()) << "gemv-mma with swiglu_out";
  std::printf("gemv-mma with swiglu -> %s\n", st.message().c_str());
  // gemv-async holds a gate/up pair in one block: 1 or 2 warps per row. The warp kernels take
  // 1, 2 or 4 warps per pair, nothing else.
  st = detail::launch_gemv(resolved, scratch_.scratch, stream_.get(), 4, GemvKernel::kWarpAsync);
  EXPECT_FALSE(st.ok()) << "gemv-async, 4 splits with swiglu_out";
  std::printf("gemv-async, 4 splits with swiglu -> %s\n", st.message().c_str());
  st = detail::launch_gemv(resolved, scratch_.scratch, stream_.get(), 3, GemvKernel::kWarpRows);
  EXPECT_FALSE(st.ok()) << "3 splits with swiglu_out";
  std::printf("warp, 3 splits with swiglu -> %s\n", st.message().c_str());
  detail::GemvWarpParams p = detail::gemv_warp_params(resolved, 4, false);
  EXPECT_FALSE(detail::launch_gemv_async(p, stream_.get()).ok()) << "launch_gemv_async, 4 splits";
  p.splits = 8;
  EXPECT_FALSE(detail::launch_gemv_warp(p, stream_.get()).ok()) << "launch_gemv_warp, 8 splits";
  EXPECT_FALSE(detail::launch_gemv_swiglu(p, stream_.get()).ok()) << "launch_gemv_swiglu, 8 splits";
  p.splits = 1;
  p.swiglu_out = nullptr;
  EXPECT_FALSE(detail::launch_gemv_swiglu(p, stream_.get()).ok()) << "launch_gemv_swiglu without swiglu_out";
  EXPECT_LE(detail::gemv_warp_splits(1, 64, 1 << 16, scratch_.scratch.num_sms, false, detail::GemvXSource::kX, true),
            4);
  EXPECT_LE(detail::gemv_async_splits(1, 64, 1 << 16, scratch_.scratch.num_sms, detail::GemvXSource::kX, true), 2);
  EXPECT_TRUE(stream_.synchronize().ok());
}

// The decode MLP's data flow: link 2i h = swiglu(x · w_gate_upᵀ) (SwiGLU
// epilogue), link 2i + 1 x = h · w_downᵀ + x (in-place residual), cycling the
// warp kernels and split counts. Eager with PDL and a PDL graph (replayed)
// must equal eager without PDL bit for bit: an x read before pdl_wait(), or
// an h written before it, would show.
TEST_F(SwigluTest, PdlChainEqualsEagerWithout) {
  constexpr int kLinks = 12;
  const int64_t d = 1024, I = 1536;
  for (int64_t m : {1, 2, 4}) {
    std::vector<DeviceBuffer> w;
    for (int i = 0; i < kLinks; ++i) {
      const int64_t rows = i % 2 == 0 ? 2 * I : d, cols = i % 2 == 0 ? d : I;
      std::vector<uint16_t> h = random_bf16(static_cast<size_t>(rows * cols), 500 + i);
      for (auto& e : h) e = f32_to_bf16(bf16_to_f32(e) * 0.04f);  // keeps |x| near 1 along the chain
      w.push_back(upload(h));
    }
    const std::vector<uint16_t> x0 = random_bf16(static_cast<size_t>(m * d), 77);
    DeviceBuffer x = upload(x0);
    DeviceBuffer h = upload(std::vector<uint16_t>(static_cast<size_t>(m * I), 0));
    const GemvKernel up_kernels[] = {GemvKernel::kWarpRows, GemvKernel::kWarpAsync, GemvKernel::kWarpRowsDeep};
    const GemvKernel down_kernels[] = {GemvKernel::kWarpRows, GemvKernel::kMmaTiles, GemvKernel::kWarpAsync};
    auto run = [&](cudaStream_t stream) -> Status {
      for (int i = 0; i < kLinks; ++i) {
        GemmArgs a;
        a.m = m;
        a.w = w[static_cast<size_t>(i)].data();
        if (i % 2 == 0) {
          a.n = 2 * I, a.k = d, a.ldx = d, a.ldy = 2 * I;
          a.x = x.data();
          a.swiglu_out = h.data();
          const int j = i / 2;
          GemvKernel kern = up_kernels[j % 3];
          if (m != 1 && kern == GemvKernel::kWarpRowsDeep) kern = GemvKernel::kWarpRows;
          constexpr int kSplits[] = {0, 2, 4};  // (warp 0) (async 2) (deep 4) (warp 2) (async 1) (deep 0)
          int splits = kSplits[(j / 3 + j) % 3];
          if (kern == GemvKernel::kWarpAsync && splits == 4) splits = 1;
          DS_RETURN_IF_ERROR(detail::launch_gemv(a, scratch_.scratch, stream, splits, kern));
        } else {
          a.n = d, a.k = I, a.ldx = I, a.ldy = d;
          a.x = h.data();
          a.y = x.data();
          a.residual = x.data();
          DS_RETURN_IF_ERROR(detail::launch_gemv(a, scratch_.scratch, stream, 0, down_kernels[(i / 2) % 3]));
        }
      }
      return Status::Ok();
    };
    auto reset = [&]() {
      ASSERT_TRUE(x.copy_from_host(x0.data(), x0.size() * 2).ok());
      ASSERT_EQ(cudaMemset(h.data(), 0xff, h.bytes()), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    };
    auto final_x = [&]() {
      std::vector<uint16_t> out(x0.size());
      EXPECT_TRUE(x.copy_to_host(out.data(), out.size() * 2).ok());
      return out;
    };
    reset();
    {
      PdlScope off(false);
      ASSERT_TRUE(run(stream_.get()).ok());
    }
    ASSERT_TRUE(stream_.synchronize().ok());
    const std::vector<uint16_t> ref = final_x();
    size_t finite = 0, changed = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      finite += std::isfinite(bf16_to_f32(ref[i])) ? 1 : 0;
      changed += ref[i] != x0[i] ? 1 : 0;
    }
    ASSERT_EQ(finite, ref.size()) << "m=" << m << ": the reference chain has non-finite outputs";
    EXPECT_GT(changed, ref.size() / 2) << "m=" << m << ": the chain barely changed x";
    std::printf("swiglu/down chain m=%lld: x[0] %.4f -> %.4f\n", (long long)m, bf16_to_f32(x0[0]),
                bf16_to_f32(ref[0]));

    reset();
    {
      PdlScope on(true);
      ASSERT_TRUE(run(stream_.get()).ok());
    }
    ASSERT_TRUE(stream_.synchronize().ok());
    EXPECT_EQ(0, std::memcmp(ref.data(), final_x().data(), ref.size() * 2)) << "m=" << m << ": eager with PDL";

    Result<GraphExec> exec = capture_graph(stream_.get(), [&] {
      PdlScope on(true);
      return run(stream_.get());
    });
    ASSERT_TRUE(exec.ok()) << exec.status().message();
    for (int rep = 0; rep < 3; ++rep) {
      reset();
      ASSERT_TRUE(exec->launch(stream_).ok());
      ASSERT_TRUE(stream_.synchronize().ok());
      const std::vector<uint16_t> got = final_x();
      size_t diff = 0;
      for (size_t i = 0; i < got.size(); ++i) diff += got[i] != ref[i] ? 1 : 0;
      EXPECT_EQ(diff, 0u) << "m=" << m << " replay " << rep << ": " << diff << " of " << got.size()
                          << " values differ from the eager chain without PDL";
    }
  }
}

}  // namespace
}  // namespace ds::cuda
