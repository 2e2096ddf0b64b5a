// The GEMV kernels directly: a bandwidth report on the 7B/32B decode shapes
// (first, so that it leads the log), split-k correctness/determinism, and the
// cost of the RMSNorm prologue, the residual epilogue and the SwiGLU
// epilogue per kernel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemm_choice.h"
#include "kernels/cuda/gemm/gemv.h"
#include "kernels/ref/linear.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "tests/cuda/gemm/gemm_test_util.h"

namespace ds::cuda {
namespace {

using testing::random_bf16;
using testing::upload;

using GemvTest = testing::RunnerTest;

// Not a timing assertion: prints GB/s (weight bytes / time, mean of 24 launches
// back to back, weights rotating through copies > L2) of each GEMV kernel and
// of cuBLASLt on the decode shapes, so that the GPU log shows where they stand.
// ds_gpu_ceilings is the full benchmark (medians, copy bandwidth).
TEST_F(GemvTest, DecodeShapesBandwidthReport) {
  struct S {
    const char* name;
    int64_t n, k;
  } shapes[] = {{"7B qkv", 4608, 3584},       {"7B o", 3584, 3584},       {"7B gate_up", 37888, 3584},
                {"7B down", 3584, 18944},     {"32B qkv", 7168, 5120},    {"32B o", 5120, 5120},
                {"32B gate_up", 55296, 5120}, {"32B down", 5120, 27648},  {"lm_head", 152064, 5120}};
  const size_t pool_bytes = size_t{1700} << 20;
  auto pool = DeviceBuffer::allocate(pool_bytes);
  auto dx = DeviceBuffer::allocate(1 << 20);
  auto dy = DeviceBuffer::allocate(size_t{152064} * 4 * 8);
  ASSERT_TRUE(pool.ok() && dx.ok() && dy.ok());
  ASSERT_EQ(cudaMemset(pool->data(), 0, pool_bytes), cudaSuccess);
  ASSERT_EQ(cudaMemset(dx->data(), 0, dx->bytes()), cudaSuccess);
  auto start = Event::create();
  auto stop = Event::create();
  ASSERT_TRUE(start.ok() && stop.ok());
  std::printf("decode GB/s        m      n      k | async(s) warp(s) deep(s) mma(ks)      mma1  cuBLASLt   runner (choice)\n");
  for (int64_t m : {1, 4, 8}) {
    for (const S& s : shapes) {
      if (m > 1 && std::string(s.name).find("32B") == std::string::npos) continue;
      const size_t bytes = static_cast<size_t>(s.n * s.k) * 2;
      const size_t copies = std::max<size_t>(1, std::min<size_t>(8, pool_bytes / bytes));
      GemmArgs a;
      a.x = dx->data();
      a.y = dy->data();
      a.m = m;
      a.n = s.n;
      a.k = s.k;
      a.ldx = s.k;
      a.ldy = s.n;
      a.out_dtype = std::string(s.name) == "lm_head" ? DType::kF32 : DType::kBF16;
      // 0: warp kernel, 1: mma auto splits, 2: mma no split, 3: cuBLASLt, 4: runner auto, 5: warp deep,
      // 6: async.
      double gbps[7] = {0, 0, 0, 0, 0, 0, 0};
      for (int variant = 0; variant < 7; ++variant) {
        if (variant == 6 && m > detail::kGemvWarpMaxM) continue;
        if (variant == 0 && m > detail::kGemvWarpMaxM) continue;
        if (variant == 5 && m != 1) continue;
        const int reps = 24;
        for (int i = 0; i < reps + 2; ++i) {
          if (i == 2) ASSERT_TRUE(start->record(stream_).ok());
          a.w = static_cast<char*>(pool->data()) + (i % copies) * bytes;
          Status st;
          switch (variant) {
            case 0: st = detail::launch_gemv(a, scratch_.scratch, stream_.get(), 0, detail::GemvKernel::kWarpRows); break;
            case 1: st = detail::launch_gemv(a, scratch_.scratch, stream_.get(), 0, detail::GemvKernel::kMmaTiles); break;
            case 2: st = detail::launch_gemv(a, scratch_.scratch, stream_.get(), 1, detail::GemvKernel::kMmaTiles); break;
            case 3: st = runner_->run(a, stream_.get(), GemmPath::kCublasLt); break;
            case 5: st = detail::launch_gemv(a, scratch_.scratch, stream_.get(), 0, detail::GemvKernel::kWarpRowsDeep); break;
            case 6: st = detail::launch_gemv(a, scratch_.scratch, stream_.get(), 0, detail::GemvKernel::kWarpAsync); break;
            default: st = runner_->run(a, stream_.get(), GemmPath::kAuto); break;
          }
          ASSERT_TRUE(st.ok()) << st.message();
        }
        ASSERT_TRUE(stop->record(stream_).ok());
        ASSERT_TRUE(stop->synchronize().ok());
        auto ms = stop->elapsed_ms_since(*start);
        ASSERT_TRUE(ms.ok());
        gbps[variant] = bytes * reps / (*ms * 1e6);
      }
      std::printf("%-14s %5lld %6lld %6lld | %6.0f(%d) %6.0f(%d) %6.0f(%d) %6.0f(%d) %8.0f %9.0f %8.0f %s\n", s.name,
                  (long long)m, (long long)s.n, (long long)s.k, gbps[6],
                  detail::gemv_async_splits(m, s.n, s.k, scratch_.scratch.num_sms), gbps[0],
                  detail::gemv_warp_splits(m, s.n, s.k, scratch_.scratch.num_sms), gbps[5],
                  detail::gemv_warp_splits(m, s.n, s.k, scratch_.scratch.num_sms, true), gbps[1],
                  detail::gemv_k_splits(a, scratch_.scratch.num_sms), gbps[2], gbps[3], gbps[4],
                  runner_->chosen_kernel(a).c_str());
    }
  }
}

// y = x · wᵀ + b (f32 out, bias bf16) with random bf16 inputs from seeds
// seed, seed + 1, seed + 2, on the device, and its host reference.
struct LinearCase {
  std::vector<float> ref;
  DeviceBuffer dx, dw, db, dy;
  GemmArgs a;
};
void make_linear_case(int64_t m, int64_t n, int64_t k, uint32_t seed, LinearCase* c) {
  auto x = random_bf16(static_cast<size_t>(m * k), seed);
  auto w = random_bf16(static_cast<size_t>(n * k), seed + 1);
  auto b = random_bf16(static_cast<size_t>(n), seed + 2);
  std::vector<float> xf(x.size());
  for (size_t i = 0; i < x.size(); ++i) xf[i] = bf16_to_f32(x[i]);
  c->ref.assign(static_cast<size_t>(m * n), 0.0f);
  ref::LinearParams lp;
  lp.rows = m;
  lp.in = k;
  lp.out = n;
  ASSERT_TRUE(ref::linear(xf.data(), w.data(), DType::kBF16, b.data(), DType::kBF16, lp, c->ref.data()).ok());
  c->dx = upload(x), c->dw = upload(w), c->db = upload(b);
  auto dy = DeviceBuffer::allocate(static_cast<size_t>(m * n) * 4);
  ASSERT_TRUE(dy.ok());
  c->dy = std::move(dy).value();
  GemmArgs& a = c->a;
  a.x = c->dx.data();
  a.w = c->dw.data();
  a.bias = c->db.data();
  a.y = c->dy.data();
  a.m = m, a.n = n, a.k = k, a.ldx = k, a.ldy = n;
  a.out_dtype = DType::kF32;
}

// The tensor-core GEMV at forced k-split counts (including counts that do not
// divide the k steps), twice each: within tolerance and bit-identical on rerun
// (splits are added in a fixed order; the arrival counters reset themselves).
TEST_F(GemvTest, SplitKCountsAreCorrectAndDeterministic) {
  const int64_t m = 3, n = 200, k = 2056;
  LinearCase lin;
  ASSERT_NO_FATAL_FAILURE(make_linear_case(m, n, k, 7, &lin));
  const GemmArgs& a = lin.a;
  const std::vector<float>& ref = lin.ref;
  for (int splits : {1, 2, 3, 5, 8, 64}) {
    std::vector<float> first;
    double max_abs = 0.0;
    for (int rep = 0; rep < 2; ++rep) {
      ASSERT_TRUE(
          detail::launch_gemv(a, scratch_.scratch, stream_.get(), splits, detail::GemvKernel::kMmaTiles).ok());
      ASSERT_TRUE(stream_.synchronize().ok());
      std::vector<float> y(static_cast<size_t>(m * n));
      ASSERT_TRUE(lin.dy.copy_to_host(y.data(), y.size() * 4).ok());
      for (int64_t r = 0; r < m; ++r) {
        float row_max = 0.0f;
        for (int64_t c = 0; c < n; ++c) row_max = std::max(row_max, std::fabs(ref[r * n + c]));
        for (int64_t c = 0; c < n; ++c) {
          const double err = std::fabs(y[r * n + c] - ref[r * n + c]);
          max_abs = std::max(max_abs, err);
          ASSERT_LE(err, 1e-2 * row_max + 1e-3) << "splits " << splits << " row " << r << " col " << c;
        }
      }
      if (rep == 0)
        first = y;
      else
        EXPECT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * 4)) << "splits " << splits << " not deterministic";
    }
    std::printf("split-k m=%lld n=%lld k=%lld splits=%d: max_abs=%.3g\n", (long long)m, (long long)n, (long long)k,
                splits, max_abs);
  }
}

// The warp-row kernels at m = 1 with every forced split, the deep variant
// included (kGemvWarpDeepS2 / S4 run it at 2 / 4 warps per row), on a long-k
// shape with a bias and a row count that leaves a partial block: within
// tolerance of the host.
TEST_F(GemvTest, WarpKernelsAtForcedSplits) {
  const int64_t m = 1, n = 203, k = 4104;
  LinearCase lin;
  ASSERT_NO_FATAL_FAILURE(make_linear_case(m, n, k, 17, &lin));
  const GemmArgs& a = lin.a;
  const std::vector<float>& ref = lin.ref;
  float row_max = 0.0f;
  for (float v : ref) row_max = std::max(row_max, std::fabs(v));
  for (detail::GemvKernel kernel : {detail::GemvKernel::kWarpRows, detail::GemvKernel::kWarpRowsDeep})
    for (int splits : {1, 2, 4}) {
      ASSERT_TRUE(detail::launch_gemv(a, scratch_.scratch, stream_.get(), splits, kernel).ok());
      ASSERT_TRUE(stream_.synchronize().ok());
      std::vector<float> y(static_cast<size_t>(m * n));
      ASSERT_TRUE(lin.dy.copy_to_host(y.data(), y.size() * 4).ok());
      for (int64_t c = 0; c < n; ++c)
        ASSERT_LE(std::fabs(y[c] - ref[c]), 1e-2 * row_max + 1e-3)
            << (kernel == detail::GemvKernel::kWarpRowsDeep ? "deep" : "warp") << " splits " << splits << " col " << c;
    }
}

// The bulk GEMV's layouts (warps per block, ring slot size): kAuto's three and
// one that only a forced configuration runs (the smallest slots).
struct BulkLayout {
  const char* name;
  detail::GemvBulkConfig config;
};
const BulkLayout kBulkLayouts[] = {
    {"w8", {8, 8}}, {"w16", {16, 8}}, {"w16-6k", {16, 6}}, {"w8-2k", {8, 2}},
};

// The bulk-streaming GEMV (sm_90+) in each of those layouts over the geometries it
// cuts a weight into: rows longer than a ring slot (several segments per row,
// a short last segment: k = 4104, 18944, 40960), many whole rows per slot
// (k = 8, 64) with a short last stage, fewer rows than SMs (n = 1, 7), more
// rows than fit the per-block partials at one wave (n x segments past 4096 x
// SMs), with the bias; twice each: within tolerance of the host and
// bit-identical on rerun (fixed summation order).
TEST_F(GemvTest, BulkKernelGeometries) {
  GemmArgs probe;
  probe.m = 1, probe.n = 8, probe.k = 64, probe.x = probe.w = reinterpret_cast<const void*>(uintptr_t{256});
  if (!detail::choice_can_run(detail::Choice::kGemvBulkW8, probe)) GTEST_SKIP() << "no sm_90+ device";
  struct Shape {
    int64_t n, k;
  };
  const Shape shapes[] = {{203, 4104}, {1, 18944}, {448, 18944}, {7, 40960}, {1000, 8},
                          {4099, 64},  {300, 3584}, {1, 8},     {600000, 8}, {40000, 4104}};
  for (const Shape& s : shapes) {
    LinearCase lin;
    ASSERT_NO_FATAL_FAILURE(make_linear_case(1, s.n, s.k, 31, &lin));
    float row_max = 0.0f;
    for (float v : lin.ref) row_max = std::max(row_max, std::fabs(v));
    for (const BulkLayout& layout : kBulkLayouts) {
      std::vector<float> first;
      for (int rep = 0; rep < 2; ++rep) {
        const Status st = detail::launch_gemv_bulk(lin.a, layout.config, scratch_.scratch.num_sms, stream_.get());
        ASSERT_TRUE(st.ok()) << st.message();
        ASSERT_TRUE(stream_.synchronize().ok());
        std::vector<float> y(static_cast<size_t>(s.n));
        ASSERT_TRUE(lin.dy.copy_to_host(y.data(), y.size() * 4).ok());
        for (int64_t c = 0; c < s.n; ++c)
          ASSERT_LE(std::fabs(y[c] - lin.ref[c]), 1e-2 * row_max + 1e-3)
              << "n " << s.n << " k " << s.k << " " << layout.name << " col " << c;
        if (rep == 0) first = y;
        else ASSERT_EQ(std::memcmp(first.data(), y.data(), y.size() * 4), 0)
            << "n " << s.n << " k " << s.k << " " << layout.name;
      }
    }
  }
}

// What the bulk GEMV refuses, with a reason naming it.
TEST(GemvBulk, UnsupportedCases) {
  GemmArgs a;
  a.m = 1, a.n = 8, a.k = 64;
  a.x = a.w = reinterpret_cast<const void*>(uintptr_t{256});
  EXPECT_EQ(detail::gemv_bulk_unsupported_reason(a), "");
  GemmArgs m2 = a;
  m2.m = 2;
  EXPECT_NE(detail::gemv_bulk_unsupported_reason(m2).find("batch 1"), std::string::npos);
  GemmArgs longk = a;
  longk.k = detail::kGemvBulkMaxK + 8;
  EXPECT_NE(detail::gemv_bulk_unsupported_reason(longk).find("shared memory"), std::string::npos);
  GemmArgs odd = a;
  odd.k = 60;
  EXPECT_NE(detail::gemv_bulk_unsupported_reason(odd).find("multiple of 8"), std::string::npos);
  GemmArgs mis = a;
  mis.w = reinterpret_cast<const void*>(uintptr_t{258});
  EXPECT_NE(detail::gemv_bulk_unsupported_reason(mis).find("aligned"), std::string::npos);
  GemmArgs sw = a;
  uint16_t out = 0;
  sw.swiglu_out = &out;
  EXPECT_EQ(detail::gemv_bulk_unsupported_reason(sw), "") << "the SwiGLU epilogue runs";
  sw.residual = &out;
  EXPECT_NE(detail::gemv_bulk_unsupported_reason(sw).find("SwiGLU"), std::string::npos);
  EXPECT_TRUE(detail::choice_can_run(detail::Choice::kGemvBulkW16, 1, true, false, false)) << "norm prologue";
  EXPECT_TRUE(detail::choice_can_run(detail::Choice::kGemvBulkW16, 1, false, true, false)) << "SwiGLU epilogue";
  EXPECT_FALSE(detail::choice_can_run(detail::Choice::kGemvBulkW16, 1, false, false, true)) << "deferred norm";
  EXPECT_FALSE(detail::choice_can_run(detail::Choice::kGemvBulkW16, 2, false, false, false)) << "m = 2";
}

// Not a timing assertion: the cost of the RMSNorm prologue and of the residual
// epilogue on the decode shapes that follow an RMSNorm (qkv, gate_up) and
// carry a residual (o, down), per warp kernel: microseconds per launch (mean of
// 24 back to back, weights rotating through copies > L2) with x read (plain),
// with the prologue from an f32 / bf16 src, and with an in-place f32 residual.
TEST_F(GemvTest, NormPrologueAndResidualCostReport) {
  struct S {
    const char* name;
    int64_t n, k;
  } shapes[] = {{"7B qkv", 4608, 3584},    {"7B gate_up", 37888, 3584}, {"7B o", 3584, 3584},
                {"7B down", 3584, 18944},  {"32B qkv", 7168, 5120},     {"32B gate_up", 55296, 5120},
                {"32B o", 5120, 5120},     {"32B down", 5120, 27648}};
  const size_t pool_bytes = size_t{1700} << 20;
  auto pool = DeviceBuffer::allocate(pool_bytes);
  auto dx = DeviceBuffer::allocate(1 << 20);
  auto dy = DeviceBuffer::allocate(size_t{55296} * 4 * 2);
  auto dg = DeviceBuffer::allocate(size_t{27648} * 2);
  ASSERT_TRUE(pool.ok() && dx.ok() && dy.ok() && dg.ok());
  ASSERT_EQ(cudaMemset(pool->data(), 0, pool_bytes), cudaSuccess);
  ASSERT_EQ(cudaMemset(dx->data(), 0, dx->bytes()), cudaSuccess);
  ASSERT_EQ(cudaMemset(dy->data(), 0, dy->bytes()), cudaSuccess);
  ASSERT_EQ(cudaMemset(dg->data(), 0, dg->bytes()), cudaSuccess);
  auto start = Event::create();
  auto stop = Event::create();
  ASSERT_TRUE(start.ok() && stop.ok());
  const detail::GemvKernel kernels[] = {detail::GemvKernel::kWarpRows, detail::GemvKernel::kWarpRowsDeep,
                                        detail::GemvKernel::kWarpAsync};
  const char* kernel_names[] = {"warp", "deep", "async"};
  std::printf("us per launch       m      n      k | kernel   plain  norm-f32 norm-bf16 residual-f32 | kAuto with norm\n");
  for (int64_t m : {1, 2}) {
    for (const S& s : shapes) {
      const size_t bytes = static_cast<size_t>(s.n * s.k) * 2;
      const size_t copies = std::max<size_t>(1, std::min<size_t>(8, pool_bytes / bytes));
      for (int ki = 0; ki < 3; ++ki) {
        if (kernels[ki] == detail::GemvKernel::kWarpRowsDeep && m != 1) continue;
        double us[4] = {0, 0, 0, 0};
        for (int mode = 0; mode < 4; ++mode) {
          GemmArgs a;
          a.x = dx->data();
          a.y = dy->data();
          a.m = m;
          a.n = s.n;
          a.k = s.k;
          a.ldx = s.k;
          a.ldy = s.n;
          a.out_dtype = mode == 3 ? DType::kF32 : DType::kBF16;
          if (mode == 1 || mode == 2) {
            a.norm.src = dx->data();
            a.norm.src_dtype = mode == 1 ? DType::kF32 : DType::kBF16;
            a.norm.gamma = dg->data();
          }
          if (mode == 3) a.residual = a.y;
          const int reps = 24;
          for (int i = 0; i < reps + 2; ++i) {
            if (i == 2) ASSERT_TRUE(start->record(stream_).ok());
            a.w = static_cast<char*>(pool->data()) + (i % copies) * bytes;
            const Status st = detail::launch_gemv(a, scratch_.scratch, stream_.get(), 0, kernels[ki]);
            ASSERT_TRUE(st.ok()) << st.message();
          }
          ASSERT_TRUE(stop->record(stream_).ok());
          ASSERT_TRUE(stop->synchronize().ok());
          auto ms = stop->elapsed_ms_since(*start);
          ASSERT_TRUE(ms.ok());
          us[mode] = *ms * 1e3 / reps;
        }
        GemmArgs auto_args;
        auto_args.x = nullptr;
        auto_args.w = pool->data();
        auto_args.y = dy->data();
        auto_args.m = m;
        auto_args.n = s.n;
        auto_args.k = s.k;
        auto_args.norm.src = dx->data();
        auto_args.norm.gamma = dg->data();
        if (ki == 0) ASSERT_TRUE(runner_->prepare(auto_args, stream_.get()).ok());
        std::printf("%-14s %5lld %6lld %6lld | %-6s %7.2f %9.2f %9.2f %12.2f | %s\n", s.name, (long long)m,
                    (long long)s.n, (long long)s.k, kernel_names[ki], us[0], us[1], us[2], us[3],
                    ki == 0 ? runner_->chosen_kernel(auto_args).c_str() : "");
      }
    }
  }
}

// Not a timing assertion: the cost of the SwiGLU epilogue on the gate_up
// shapes (7B, 32B, TP2-32B), per warp kernel: microseconds per launch (mean of
// 24 back to back, weights rotating through copies > L2) writing y = x·wᵀ
// (plain, bf16 [m, 2I]) vs writing silu(g) * u (swiglu, bf16 [m, I]); the last
// columns are kAuto's choice and time for each (the separate SiLU*mul kernel
// the epilogue replaces is not in this library: compare with the layer bench).
TEST_F(GemvTest, SwigluEpilogueCostReport) {
  struct S {
    const char* name;
    int64_t n, k;
  } shapes[] = {{"7B gate_up", 37888, 3584}, {"32B gate_up", 55296, 5120}, {"TP2 32B gate_up", 27648, 5120}};
  const size_t pool_bytes = size_t{1700} << 20;
  auto pool = DeviceBuffer::allocate(pool_bytes);
  auto dx = DeviceBuffer::allocate(1 << 20);
  auto dy = DeviceBuffer::allocate(size_t{55296} * 2 * 4);
  auto dz = DeviceBuffer::allocate(size_t{27648} * 2 * 4);
  ASSERT_TRUE(pool.ok() && dx.ok() && dy.ok() && dz.ok());
  ASSERT_EQ(cudaMemset(pool->data(), 0, pool_bytes), cudaSuccess);
  ASSERT_EQ(cudaMemset(dx->data(), 0, dx->bytes()), cudaSuccess);
  auto start = Event::create();
  auto stop = Event::create();
  ASSERT_TRUE(start.ok() && stop.ok());
  const detail::GemvKernel kernels[] = {detail::GemvKernel::kWarpRows, detail::GemvKernel::kWarpRowsDeep,
                                        detail::GemvKernel::kWarpAsync};
  const char* kernel_names[] = {"warp", "deep", "async"};
  std::printf("us per launch         m      n      k | kernel   plain  swiglu (splits plain/swiglu) | kAuto plain"
              " / swiglu\n");
  for (int64_t m : {1, 2}) {
    for (const S& s : shapes) {
      const size_t bytes = static_cast<size_t>(s.n * s.k) * 2;
      const size_t copies = std::max<size_t>(1, std::min<size_t>(8, pool_bytes / bytes));
      auto make = [&](bool swiglu) {
        GemmArgs a;
        a.x = dx->data();
        a.y = dy->data();
        a.m = m;
        a.n = s.n;
        a.k = s.k;
        a.ldx = s.k;
        a.ldy = s.n;
        if (swiglu) a.swiglu_out = dz->data();
        return a;
      };
      // us per launch of `launch(a)` with w rotating through the pool's copies.
      auto time_us = [&](GemmArgs a, auto&& launch) -> double {
        const int reps = 24;
        for (int i = 0; i < reps + 2; ++i) {
          if (i == 2) EXPECT_TRUE(start->record(stream_).ok());
          a.w = static_cast<char*>(pool->data()) + (i % copies) * bytes;
          const Status st = launch(a);
          if (!st.ok()) {
            ADD_FAILURE() << s.name << " m=" << m << ": " << st.message();
            return -1.0;
          }
        }
        EXPECT_TRUE(stop->record(stream_).ok());
        EXPECT_TRUE(stop->synchronize().ok());
        auto ms = stop->elapsed_ms_since(*start);
        return ms.ok() ? *ms * 1e3 / reps : -1.0;
      };
      double auto_us[2] = {0, 0};
      std::string auto_name[2];
      for (int sw = 0; sw < 2; ++sw) {
        GemmArgs a = make(sw == 1);
        a.w = pool->data();
        ASSERT_TRUE(runner_->prepare(a, stream_.get()).ok());
        auto_name[sw] = runner_->chosen_kernel(a);
        auto_us[sw] = time_us(make(sw == 1), [&](const GemmArgs& b) { return runner_->run(b, stream_.get()); });
      }
      for (int ki = 0; ki < 3; ++ki) {
        if (kernels[ki] == detail::GemvKernel::kWarpRowsDeep && m != 1) continue;
        double us[2] = {0, 0};
        for (int sw = 0; sw < 2; ++sw)
          us[sw] = time_us(make(sw == 1), [&](const GemmArgs& b) {
            return detail::launch_gemv(b, scratch_.scratch, stream_.get(), 0, kernels[ki]);
          });
        const bool deep = kernels[ki] == detail::GemvKernel::kWarpRowsDeep;
        const int num_sms = scratch_.scratch.num_sms;
        const bool async = kernels[ki] == detail::GemvKernel::kWarpAsync;
        const int sp = async ? detail::gemv_async_splits(m, s.n, s.k, num_sms)
                             : detail::gemv_warp_splits(m, s.n, s.k, num_sms, deep);
        const int sp_sw = async ? detail::gemv_async_splits(m, s.n, s.k, num_sms, detail::GemvXSource::kX, true)
                                : detail::gemv_warp_splits(m, s.n, s.k, num_sms, deep, detail::GemvXSource::kX, true);
        std::printf("%-16s %5lld %6lld %6lld | %-6s %7.2f %7.2f (%d/%d)", s.name, (long long)m, (long long)s.n,
                    (long long)s.k, kernel_names[ki], us[0], us[1], sp, sp_sw);
        if (ki == 0)
          std::printf("                  | %s %.2f / %s %.2f", auto_name[0].c_str(), auto_us[0], auto_name[1].c_str(),
                      auto_us[1]);
        std::printf("\n");
      }
    }
  }
}

}  // namespace
}  // namespace ds::cuda
