// The deferred RMSNorm of the warp GEMV kernels (GemmArgs::norm_out on the
// linear P writing h, norm_in on the linear L reading x = rms_norm(h) * gamma)
// vs the host in double: h = residual + x_p · W_pᵀ as P stores it, x' =
// bf16(h * gamma) bit for bit, L's output = x · W_lᵀ + bias (plain, or SwiGLU
// of the gate/up halves) within the error of x' rounded to bf16; P's y equals
// the same launch without norm_out bit for bit; the slot holds the sum of h^2;
// three repetitions (the slot zeroed before each P, as the executor does per
// step), kAuto's timed choice (its timing launches must not touch the pair's
// slot) and a CUDA graph replay give the same bits; and the cases it must refuse.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemv.h"
#include "tests/cuda/gemm/gemm_test_util.h"

namespace ds::cuda {
namespace {

using detail::GemvKernel;
using testing::random_bf16;
using testing::upload;

// How P or L runs: a direct warp launch with forced splits (deep: the 16-load
// variant), or the runner's kAuto choice.
struct Launch {
  const char* name;
  bool runner;
  GemvKernel kernel;
  int splits;
};
const Launch kLaunches[] = {{"warp s1", false, GemvKernel::kWarpRows, 1},  {"warp s2", false, GemvKernel::kWarpRows, 2},
                            {"warp s4", false, GemvKernel::kWarpRows, 4},  {"deep", false, GemvKernel::kWarpRowsDeep, 0},
                            {"kAuto", true, GemvKernel::kAuto, 0}};

class DeferredNormTest : public testing::RunnerTest {
 protected:
  Status launch(const Launch& l, const GemmArgs& a, cudaStream_t s) {
    if (l.runner) return runner_->run(a, s);
    GemmArgs r = a;
    if (r.ldx == 0) r.ldx = r.k;
    if (r.ldy == 0) r.ldy = r.n;
    return detail::launch_gemv(r, scratch_.scratch, s, l.splits, l.kernel);
  }
};

std::vector<uint16_t> scaled_bf16(size_t n, uint32_t seed, float scale) {
  std::vector<uint16_t> v = random_bf16(n, seed);
  for (auto& e : v) e = f32_to_bf16(bf16_to_f32(e) * scale);
  return v;
}

template <typename T>
std::vector<T> download(const DeviceBuffer& b, size_t n) {
  std::vector<T> h(n);
  EXPECT_TRUE(b.copy_to_host(h.data(), n * sizeof(T)).ok());
  return h;
}

TEST_F(DeferredNormTest, MatchesTheHost) {
  // d: hidden (P's n, L's k); kp: P's k. L: plain n = nl with bias, or SwiGLU over 2I rows.
  struct Case {
    int64_t d, kp, nl, inter;
  };
  const Case kCases[] = {{448, 2368, 576, 2368}, {640, 640, 896, 1728}, {264, 1000, 40, 3}};
  const float eps = 1e-6f;
  int runs = 0;
  double worst = 0.0;
  for (const Case& c : kCases) {
    for (const DType h_dtype : {DType::kF32, DType::kBF16}) {
      const uint32_t seed = static_cast<uint32_t>(c.d * 7 + c.kp);
      const std::vector<uint16_t> xp = random_bf16(static_cast<size_t>(c.kp), seed);
      const std::vector<uint16_t> wp = scaled_bf16(static_cast<size_t>(c.d * c.kp), seed + 1, 0.05f);
      const std::vector<uint16_t> gamma = scaled_bf16(static_cast<size_t>(c.d), seed + 2, 2.0f);
      const std::vector<uint16_t> bias = random_bf16(static_cast<size_t>(2 * c.inter + c.nl), seed + 3);
      const std::vector<uint16_t> h0_bf16 = scaled_bf16(static_cast<size_t>(c.d), seed + 4, 3.0f);
      std::vector<float> h0(h0_bf16.size());
      for (size_t i = 0; i < h0.size(); ++i) h0[i] = bf16_to_f32(h0_bf16[i]);
      const std::vector<uint16_t> wl = scaled_bf16(static_cast<size_t>(c.nl * c.d), seed + 5, 0.1f);
      const std::vector<uint16_t> wsw = scaled_bf16(static_cast<size_t>(2 * c.inter * c.d), seed + 6, 0.1f);
      DeviceBuffer dxp = upload(xp), dwp = upload(wp), dg = upload(gamma), db = upload(bias), dwl = upload(wl),
                   dws = upload(wsw);
      const size_t hb = static_cast<size_t>(c.d) * (h_dtype == DType::kF32 ? 4 : 2);
      DeviceBuffer dh = h_dtype == DType::kF32 ? upload(h0) : upload(h0_bf16);
      DeviceBuffer dxn = upload(std::vector<uint16_t>(static_cast<size_t>(c.d), 0xffff));
      DeviceBuffer dyl = upload(std::vector<uint16_t>(static_cast<size_t>(c.nl), 0));
      DeviceBuffer dys = upload(std::vector<uint16_t>(static_cast<size_t>(c.inter), 0));
      DeviceBuffer dslot = upload(std::vector<uint8_t>(sizeof(DeferredNormSlot), 0));
      auto* slot = static_cast<DeferredNormSlot*>(dslot.data());
      GemmArgs p;
      p.x = dxp.data(), p.w = dwp.data(), p.y = dh.data(), p.residual = dh.data();
      p.m = 1, p.n = c.d, p.k = c.kp, p.out_dtype = h_dtype;
      p.norm_out.slot = slot, p.norm_out.x = dxn.data(), p.norm_out.gamma = dg.data();
      GemmArgs l;
      l.x = dxn.data(), l.w = dwl.data(), l.bias = db.data(), l.y = dyl.data();
      l.m = 1, l.n = c.nl, l.k = c.d;
      l.norm_in.slot = slot, l.norm_in.eps = eps;
      GemmArgs sw = l;
      sw.w = dws.data(), sw.bias = static_cast<const uint16_t*>(db.data()) + c.nl, sw.y = nullptr;
      sw.n = 2 * c.inter, sw.swiglu_out = dys.data();
      ASSERT_TRUE(runner_->supports_deferred_norm(p));
      ASSERT_TRUE(runner_->supports_deferred_norm(l));
      ASSERT_TRUE(runner_->supports_deferred_norm(sw));

      auto reset_h = [&]() {
        return cudaMemcpyAsync(dh.data(), h_dtype == DType::kF32 ? static_cast<const void*>(h0.data())
                                                                 : static_cast<const void*>(h0_bf16.data()),
                               hb, cudaMemcpyHostToDevice, stream_.get());
      };
      auto stored_h = [&]() {
        std::vector<float> h(static_cast<size_t>(c.d));
        if (h_dtype == DType::kF32) return download<float>(dh, h.size());
        const std::vector<uint16_t> hb16 = download<uint16_t>(dh, h.size());
        for (size_t i = 0; i < h.size(); ++i) h[i] = bf16_to_f32(hb16[i]);
        return h;
      };
      for (const Launch& lp : kLaunches) {
        // P's y with norm_out equals P's y without it, bit for bit, with the same kernel and split
        // (the deferred output only adds stores).
        GemmArgs plain = p;
        plain.norm_out = DeferredNormOut{};
        ASSERT_EQ(reset_h(), cudaSuccess);
        ASSERT_TRUE(launch(lp, plain, stream_.get()).ok());
        ASSERT_TRUE(stream_.synchronize().ok());
        const std::vector<float> h_plain = stored_h();
        for (const Launch& ll : kLaunches) {
          const std::string ctx = StrCat() << "d=" << c.d << " kp=" << c.kp << " h " << dtype_name(h_dtype)
                                           << ", P " << lp.name << ", L " << ll.name;
          std::vector<uint16_t> first_yl, first_ys;
          for (int rep = 0; rep < 3; ++rep) {
            std::vector<uint16_t> yl, ys;
            for (int which = 0; which < 2; ++which) {  // L plain, then L SwiGLU; h and the slot reset before P
              ASSERT_EQ(reset_h(), cudaSuccess);
              ASSERT_EQ(cudaMemsetAsync(dslot.data(), 0, sizeof(DeferredNormSlot), stream_.get()), cudaSuccess);
              Status st = launch(lp, p, stream_.get());
              ASSERT_TRUE(st.ok()) << ctx << ": P: " << st.message();
              st = launch(ll, which == 0 ? l : sw, stream_.get());
              ASSERT_TRUE(st.ok()) << ctx << ": L: " << st.message();
              ASSERT_TRUE(stream_.synchronize().ok()) << ctx;
              const std::vector<float> h = stored_h();
              // (kAuto times the problem with norm_out apart from the one without: its split may differ.)
              if (!lp.runner)
                ASSERT_EQ(0, std::memcmp(h.data(), h_plain.data(), h.size() * 4))
                    << ctx << ": P's y with norm_out differs from without";
              double ss = 0.0;
              for (float v : h) ss += static_cast<double>(v) * v;
              const DeferredNormSlot slot_now = download<DeferredNormSlot>(dslot, 1)[0];
              double got_ss = 0.0;
              for (double v : slot_now.ss) got_ss += v;
              ASSERT_NEAR(got_ss, ss, 1e-12 * ss) << ctx << ": the slot's partials do not add up to sum(h^2)";
              std::vector<uint16_t> want_xn(h.size());
              for (size_t i = 0; i < h.size(); ++i) want_xn[i] = f32_to_bf16(h[i] * bf16_to_f32(gamma[i]));
              ASSERT_EQ(download<uint16_t>(dxn, want_xn.size()), want_xn) << ctx << ": x' != bf16(h * gamma)";
              if (which == 0) yl = download<uint16_t>(dyl, static_cast<size_t>(c.nl));
              else ys = download<uint16_t>(dys, static_cast<size_t>(c.inter));
              if (rep > 0) continue;
              // Host: x = h * r * gamma exactly; L's tolerance is x' rounded to bf16 (2^-9 relative) plus
              // the f32 sums and scale, and the bf16 rounding of the output.
              const double r = 1.0 / std::sqrt(ss / static_cast<double>(c.d) + eps);
              std::vector<double> xr(h.size());
              for (size_t i = 0; i < h.size(); ++i) xr[i] = static_cast<double>(h[i]) * r * bf16_to_f32(gamma[i]);
              auto dot = [&](const std::vector<uint16_t>& w, int64_t row, double* tol) {
                double sum = 0.0, a = 0.0;
                for (int64_t j = 0; j < c.d; ++j) {
                  const double t = bf16_to_f32(w[static_cast<size_t>(row * c.d + j)]) * xr[static_cast<size_t>(j)];
                  sum += t;
                  a += std::fabs(t);
                }
                *tol = a * (1.0 / 256 + 1e-5) + 1e-6;
                return sum;
              };
              int64_t bad = 0;
              if (which == 0) {
                for (int64_t i = 0; i < c.nl; ++i) {
                  double tol = 0;
                  const double want = dot(wl, i, &tol) + bf16_to_f32(bias[static_cast<size_t>(i)]);
                  const double got = bf16_to_f32(yl[static_cast<size_t>(i)]);
                  tol += std::fabs(want) / 256;
                  worst = std::max(worst, std::fabs(got - want) / tol);
                  bad += !(std::fabs(got - want) <= tol);
                }
              } else {
                for (int64_t j = 0; j < c.inter; ++j) {
                  double tg = 0, tu = 0;
                  const double g = dot(wsw, j, &tg) + bf16_to_f32(bias[static_cast<size_t>(c.nl + j)]);
                  const double u =
                      dot(wsw, c.inter + j, &tu) + bf16_to_f32(bias[static_cast<size_t>(c.nl + c.inter + j)]);
                  const double silu = g / (1.0 + std::exp(-g));
                  const double want = silu * u;
                  const double tol = 1.1 * tg * std::fabs(u) + std::fabs(silu) * tu + std::fabs(want) / 256 + 1e-6;
                  const double got = bf16_to_f32(ys[static_cast<size_t>(j)]);
                  worst = std::max(worst, std::fabs(got - want) / tol);
                  bad += !(std::fabs(got - want) <= tol);
                }
              }
              EXPECT_EQ(bad, 0) << ctx << (which == 0 ? ", plain L" : ", SwiGLU L") << ": outputs outside the tolerance";
            }
            if (rep == 0) {
              first_yl = yl, first_ys = ys;
            } else {
              EXPECT_EQ(yl, first_yl) << ctx << ": repetition " << rep << " differs";
              EXPECT_EQ(ys, first_ys) << ctx << ": repetition " << rep << " differs";
            }
            ++runs;
          }
        }
      }
    }
  }
  std::printf("deferred norm: %d P -> L pairs checked, worst |err| / tol = %.3g\n", runs, worst);
}

// slot reset -> P -> L captured in a CUDA graph and replayed: the same bits as eager.
TEST_F(DeferredNormTest, GraphReplayEqualsEager) {
  const int64_t d = 512, kp = 1536, nl = 768;
  const std::vector<uint16_t> xp = random_bf16(kp, 11), wp = scaled_bf16(d * kp, 12, 0.05f),
                              gamma = random_bf16(d, 13), wl = scaled_bf16(nl * d, 14, 0.1f);
  const std::vector<float> h0(d, 0.25f);
  DeviceBuffer dxp = upload(xp), dwp = upload(wp), dg = upload(gamma), dwl = upload(wl);
  DeviceBuffer dh = upload(h0), dxn = upload(std::vector<uint16_t>(d, 0)), dy = upload(std::vector<float>(nl, 0));
  DeviceBuffer dslot = upload(std::vector<uint8_t>(sizeof(DeferredNormSlot), 0));
  auto* slot = static_cast<DeferredNormSlot*>(dslot.data());
  GemmArgs p;
  p.x = dxp.data(), p.w = dwp.data(), p.y = dh.data(), p.m = 1, p.n = d, p.k = kp, p.out_dtype = DType::kF32;
  p.norm_out.slot = slot, p.norm_out.x = dxn.data(), p.norm_out.gamma = dg.data();
  GemmArgs l;
  l.x = dxn.data(), l.w = dwl.data(), l.y = dy.data(), l.m = 1, l.n = nl, l.k = d, l.out_dtype = DType::kF32;
  l.norm_in.slot = slot, l.norm_in.eps = 1e-5f;
  auto body = [&]() -> Status {
    DS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(dslot.data(), 0, sizeof(DeferredNormSlot), stream_.get()));
    DS_RETURN_IF_ERROR(runner_->run(p, stream_.get()));
    return runner_->run(l, stream_.get());
  };
  ASSERT_TRUE(body().ok());  // kAuto's timing happens here, outside the capture
  ASSERT_TRUE(stream_.synchronize().ok());
  const std::vector<float> eager = download<float>(dy, nl);
  auto graph = capture_graph(stream_.get(), body);
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  for (int rep = 0; rep < 3; ++rep) {
    ASSERT_TRUE(graph->launch(stream_.get()).ok());
    ASSERT_TRUE(stream_.synchronize().ok());
    const std::vector<float> got = download<float>(dy, nl);
    EXPECT_EQ(0, std::memcmp(got.data(), eager.data(), nl * 4)) << "replay " << rep;
  }
}

TEST_F(DeferredNormTest, RefusesWhatItCannotCompute) {
  const int64_t d = 256;
  DeviceBuffer buf = upload(std::vector<uint8_t>(1 << 20, 0));
  char* base = static_cast<char*>(buf.data());
  auto* slot = reinterpret_cast<DeferredNormSlot*>(base + (512 << 10));
  GemmArgs l;
  l.x = base, l.w = base + (64 << 10), l.y = base + (256 << 10), l.m = 1, l.n = 64, l.k = d;
  l.norm_in.slot = slot;
  EXPECT_TRUE(runner_->supports_deferred_norm(l));
  GemmArgs b = l;
  b.m = 2;
  EXPECT_FALSE(runner_->supports_deferred_norm(b)) << "m = 2";
  b = l;
  b.norm.src = base + (128 << 10), b.norm.gamma = base + (192 << 10);
  EXPECT_FALSE(runner_->supports_deferred_norm(b)) << "norm_in with the RMSNorm prologue";
  b = l;
  b.norm_in.slot = reinterpret_cast<DeferredNormSlot*>(base + (512 << 10) + 8);
  EXPECT_FALSE(runner_->supports_deferred_norm(b)) << "slot not 16-byte aligned";
  b = l;
  b.norm_in = DeferredNormIn{};
  EXPECT_FALSE(runner_->supports_deferred_norm(b)) << "neither side set";
  GemmArgs p = l;
  p.norm_in = DeferredNormIn{};
  p.norm_out.slot = slot, p.norm_out.x = base + (320 << 10), p.norm_out.gamma = base + (384 << 10);
  EXPECT_TRUE(runner_->supports_deferred_norm(p));
  b = p;
  b.n = 128, b.swiglu_out = base + (448 << 10), b.y = nullptr;
  EXPECT_FALSE(runner_->supports_deferred_norm(b)) << "norm_out with the SwiGLU epilogue";
  b = p;
  b.norm_out.ld_x = 32;
  EXPECT_FALSE(runner_->supports_deferred_norm(b)) << "norm_out.ld_x < n";
  Status st = runner_->run(l, stream_.get(), GemmPath::kCublasLt);
  EXPECT_FALSE(st.ok()) << "cuBLASLt with norm_in";
  std::printf("cublaslt with norm_in -> %s\n", st.message().c_str());
  GemmArgs r = l;
  r.ldx = r.k, r.ldy = r.n;
  for (GemvKernel k : {GemvKernel::kMmaTiles, GemvKernel::kWarpAsync}) {
    st = detail::launch_gemv(r, scratch_.scratch, stream_.get(), 0, k);
    EXPECT_FALSE(st.ok()) << "gemv-mma / gemv-async with norm_in";
    std::printf("deferred norm on a non-warp-row kernel -> %s\n", st.message().c_str());
  }
  r = p;
  r.ldx = r.k, r.ldy = r.n;
  r.norm_out.gamma = nullptr;
  st = detail::launch_gemv(r, scratch_.scratch, stream_.get(), 1, GemvKernel::kWarpRows);
  EXPECT_FALSE(st.ok()) << "norm_out without gamma";
  EXPECT_TRUE(stream_.synchronize().ok());
}

}  // namespace
}  // namespace ds::cuda
