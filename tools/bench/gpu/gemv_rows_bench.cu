// ds_gemv_rows_bench: does a batch-1 warp GEMV get cheaper per launch when each
// warp computes R rows, loading each 16-byte chunk of x once for R weight rows?
//
// ds_gpu_ceilings' PDL chain probe (docs/PERF.md, session 10) puts about 2.5 us
// of a chained k = 3584 GEMV's 4.5 us fixed cost on every warp reading the x row
// after its PDL wait. The production warp kernel (gemv_warp.cu) has one row per
// warp (or one row over S = 2 / 4 warps, a k split summed in shared memory) and
// one x load per weight load. This kernel keeps the same bytes in flight per lane
// (R x LOADS = 8 weight loads of 16 bytes) and the same PDL pattern (trigger, the
// first weight loads, wait), with R rows per warp (R x fewer x loads) and S warps
// per row group. For each decode shape it times 8 chained launches (distinct
// weights, PDL, a spin kernel first so the launches are queued) of the
// production kernel (the kAuto-free warp GEMV with its default split) and of
// every (R, S) variant, and checks each variant against the production output.
// Variants marked PF also ask for the rest of their first rows in L2 before the
// wait (cp.async.bulk.prefetch.L2, one per row slice), so that the loads after
// the wait hit L2 instead of going to DRAM.
// Two variants use blocks of 8 warps (8 warps per row; two rows of 4), for the
// long-k down projections.
// --table swiglu times the gate_up shapes with the SwiGLU epilogue: the
// production kernels against groups that hold R / 2 whole gate/up pairs (the
// layout gemv_swiglu.cu adopted after batch 58, which measured it against
// blocks holding gate row j and up row I + j in different warps).
#include <cuda_bf16.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/gemv_common.cuh"
#include "runtime/common/status.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/l2_prefetch.cuh"
#include "runtime/cuda/pdl.cuh"
#include "tools/bench/gpu/gemv_chain.h"

namespace ds::cuda::bench {
namespace {

constexpr int kWarps = 4;  // per block (W: the kernel's template default)

// Block: kWarps / S row groups of R rows; the S warps of a group split k.
// SWIGLU: the R rows of a group are R / 2 gate rows j.. and the matching up rows
// half + j.. of a [2 * half, k] weight, and the group writes silu(g) * u for its
// R / 2 columns (n = 2 * half).
template <int R, int S, int LOADS, bool PF = false, bool SWIGLU = false, int W = kWarps>
__global__ void __launch_bounds__(W * 32) gemv_rows_kernel(const uint4* __restrict__ x,
                                                               const uint4* __restrict__ w,
                                                               __nv_bfloat16* __restrict__ y, int64_t n, int64_t k) {
  static_assert(!SWIGLU || R % 2 == 0, "SwiGLU groups hold gate/up row pairs");
  constexpr int kPairs = SWIGLU ? R / 2 : R;
  __shared__ float red[W][R];
  pdl_trigger();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int part = warp % S;
  const int64_t half = n / 2;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * (W / S) + warp / S) * kPairs;
  int64_t rows[R];
  bool ok[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if constexpr (SWIGLU) {
      const int64_t j = row0 + r % kPairs;
      ok[r] = j < half;
      rows[r] = r < kPairs ? j : half + j;
    } else {
      ok[r] = row0 + r < n;
      rows[r] = row0 + r;
    }
  }
  const int64_t nv = k / 8, chunk = (nv + S - 1) / S;
  const int64_t v_begin = part * chunk, v_end = min(nv, v_begin + chunk);
  uint4 wv[R][LOADS];
  auto load = [&](int64_t v0) {
#pragma unroll
    for (int u = 0; u < LOADS; ++u) {
      const int64_t v = v0 + 32 * u;
#pragma unroll
      for (int r = 0; r < R; ++r)
        wv[r][u] = v < v_end && ok[r] ? detail::gemv_load_stream(w + rows[r] * nv + v) : make_uint4(0, 0, 0, 0);
    }
  };
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  load(v_begin + lane);
  if constexpr (PF) {
    const int64_t rest = v_begin + 32 * LOADS;  // past what load() just asked for
#pragma unroll
    for (int r = 0; r < R; ++r)  // lane r asks for row r (static register indices)
      if (lane == r && ok[r] && rest < v_end)
        l2_prefetch_bulk(w + rows[r] * nv + rest, static_cast<uint32_t>((v_end - rest) * 16));
  }
  pdl_wait();
  for (int64_t v0 = v_begin + lane; v0 < v_end; v0 += 32 * LOADS) {
#pragma unroll
    for (int u = 0; u < LOADS; ++u) {
      const int64_t v = v0 + 32 * u;
      if (v >= v_end) break;
      const uint4 xv = __ldg(x + v);
      const __nv_bfloat162* xh = reinterpret_cast<const __nv_bfloat162*>(&xv);
      float2 xf[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) xf[i] = __bfloat1622float2(xh[i]);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const __nv_bfloat162* wh = reinterpret_cast<const __nv_bfloat162*>(&wv[r][u]);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float2 wf = __bfloat1622float2(wh[i]);
          acc[r] = fmaf(wf.x, xf[i].x, acc[r]);
          acc[r] = fmaf(wf.y, xf[i].y, acc[r]);
        }
      }
    }
    load(v0 + 32 * LOADS);
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
  if constexpr (S > 1) {
    if (lane == 0)
#pragma unroll
      for (int r = 0; r < R; ++r) red[warp][r] = acc[r];
    __syncthreads();
    if (part != 0) return;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float t = 0.0f;
      for (int s = 0; s < S; ++s) t += red[warp + s][r];
      acc[r] = t;
    }
  }
  if (lane != 0) return;
  if constexpr (SWIGLU) {
#pragma unroll
    for (int r = 0; r < kPairs; ++r) {
      const float g = acc[r], u = acc[kPairs + r];
      if (ok[r]) y[row0 + r] = __float2bfloat16_rn(g / (1.0f + expf(-g)) * u);
    }
  } else {
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (ok[r]) y[rows[r]] = __float2bfloat16_rn(acc[r]);
  }
}

struct Variant {
  int r, s;
  const char* name;
  void (*kernel)(const uint4*, const uint4*, __nv_bfloat16*, int64_t, int64_t);
  int w = kWarps;  // warps per block
};

// R x LOADS = 8 weight loads in flight per lane, as the production m = 1 kernel.
const Variant kVariants[] = {
    {1, 1, "R1 S1", gemv_rows_kernel<1, 1, 8>}, {2, 1, "R2 S1", gemv_rows_kernel<2, 1, 4>},
    {4, 1, "R4 S1", gemv_rows_kernel<4, 1, 2>}, {1, 2, "R1 S2", gemv_rows_kernel<1, 2, 8>},
    {2, 2, "R2 S2", gemv_rows_kernel<2, 2, 4>}, {4, 2, "R4 S2", gemv_rows_kernel<4, 2, 2>},
    {1, 4, "R1 S4", gemv_rows_kernel<1, 4, 8>}, {2, 4, "R2 S4", gemv_rows_kernel<2, 4, 4>},
    {1, 1, "R1S1 PF", gemv_rows_kernel<1, 1, 8, true>}, {2, 1, "R2S1 PF", gemv_rows_kernel<2, 1, 4, true>},
    {1, 4, "R1S4 PF", gemv_rows_kernel<1, 4, 8, true>},
    // 8-warp blocks: 8 warps per row (R1 S8), or two rows of 4 (R1S4 W8).
    {1, 8, "R1 S8", gemv_rows_kernel<1, 8, 8, false, false, 8>, 8},
    {1, 4, "R1S4 W8", gemv_rows_kernel<1, 4, 8, false, false, 8>, 8},
};

// SwiGLU variants: R / 2 gate/up row pairs per group (R x LOADS = 8 loads in flight).
const Variant kSwigluVariants[] = {
    {2, 1, "R2 S1", gemv_rows_kernel<2, 1, 4, false, true>},  {2, 2, "R2 S2", gemv_rows_kernel<2, 2, 4, false, true>},
    {2, 4, "R2 S4", gemv_rows_kernel<2, 4, 4, false, true>},  {4, 1, "R4 S1", gemv_rows_kernel<4, 1, 2, false, true>},
    {4, 2, "R4 S2", gemv_rows_kernel<4, 2, 2, false, true>},  {2, 2, "R2S2 PF", gemv_rows_kernel<2, 2, 4, true, true>},
    {2, 4, "R2S4 PF", gemv_rows_kernel<2, 4, 4, true, true>},
};

struct Shape {
  const char* name;
  int64_t n, k;
};
const Shape kShapes[] = {
    {"7B qkv", 4608, 3584},        {"7B o", 3584, 3584},          {"7B gate_up", 37888, 3584},
    {"7B down", 3584, 18944},      {"32B qkv", 7168, 5120},       {"32B o", 5120, 5120},
    {"32B gate_up", 55296, 5120},  {"32B down", 5120, 27648},     {"32B@tp2 qkv", 3584, 5120},
    {"32B@tp2 o", 5120, 2560},     {"32B@tp2 gate_up", 27648, 5120}, {"32B@tp2 down", 5120, 13824},
};

Status run(int reps, const std::string& table) {
  int device = 0, sms = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const size_t max_w = 55296ull * 5120;  // elements of the largest shape (32B gate_up)
  DS_ASSIGN_OR_RETURN(ChainBench cb, ChainBench::create(max_w, 55296));
  const Stream& stream = cb.stream;
  DeviceBuffer &x = cb.x, &y = cb.y, &y_ref = cb.y_ref;
  GemmRunner* runner = cb.runner.get();
  auto weight = [&](const Shape& s, int i) { return cb.weight(s.n, s.k, i); };
  auto chain_us = [&](const std::function<Status(int)>& launch) { return cb.chain_us(reps, launch); };
  // Times `variants` on shape (n, k) against the reference output in y_ref (n_out values);
  // prints one column per variant and the worst relative difference.
  auto time_variants = [&](const Shape& s, const Variant* variants, size_t count, int64_t n_out) -> Status {
    std::vector<__nv_bfloat16> ref(n_out), got(n_out);
    DS_RETURN_IF_ERROR(stream.synchronize());
    DS_RETURN_IF_ERROR(y_ref.copy_to_host(ref.data(), n_out * 2));
    double worst = 0.0;
    for (size_t vi = 0; vi < count; ++vi) {
      const Variant& v = variants[vi];
      const int64_t units = s.n / (n_out == s.n ? 1 : 2);  // rows, or gate/up pairs
      const int64_t per_block = (v.w / v.s) * (n_out == s.n ? v.r : v.r / 2);
      const dim3 grid(static_cast<unsigned>((units + per_block - 1) / per_block));
      auto launch = [&](int i) -> Status {
        DS_CUDA_RETURN_IF_ERROR(launch_kernel(v.kernel, grid, dim3(v.w * 32), 0, stream.get(),
                                              static_cast<const uint4*>(x.data()),
                                              reinterpret_cast<const uint4*>(weight(s, i)),
                                              static_cast<__nv_bfloat16*>(y.data()), s.n, s.k));
        return Status::Ok();
      };
      DS_RETURN_IF_ERROR(launch(0));
      DS_RETURN_IF_ERROR(stream.synchronize());
      DS_RETURN_IF_ERROR(y.copy_to_host(got.data(), n_out * 2));
      for (int64_t i = 0; i < n_out; ++i) {
        const double r = __bfloat162float(ref[i]), g = __bfloat162float(got[i]);
        worst = std::max(worst, std::fabs(r - g) / std::max(1.0, std::fabs(r)));
      }
      DS_ASSIGN_OR_RETURN(const double us, chain_us(launch));
      std::printf(" %8.2f", us);
    }
    std::printf("   %.2e\n", worst);
    return Status::Ok();
  };
  if (table == "all" || table == "rows") {
    std::printf("us per launch, 8 chained launches (PDL); production = the warp GEMV with its default split\n");
    std::printf("%-18s %10s", "shape", "production");
    for (const Variant& v : kVariants) std::printf(" %8s", v.name);
    std::printf("   max |diff| of any variant\n");
    for (const Shape& s : kShapes) {
      auto production = [&](int i, void* out) {
        return runner->run(cb.gemv_args(s.n, s.k, i, out), stream.get(), GemmPath::kGemv);
      };
      DS_RETURN_IF_ERROR(production(0, y_ref.data()));
      DS_ASSIGN_OR_RETURN(const double prod_us, chain_us([&](int i) { return production(i, y.data()); }));
      std::printf("%-18s %10.2f", s.name, prod_us);
      DS_RETURN_IF_ERROR(time_variants(s, kVariants, std::size(kVariants), s.n));
    }
  }
  if (table == "all" || table == "fill") {
    // Wave-fill sweep: the production warp GEMV at 4 warps per row over the
    // down projections' k and n around theirs. A grid of 4n row parts runs
    // 4n / (36 warps x SMs) waves of resident warps (9 blocks of 4 warps per SM);
    // if a partial last wave costs its tail, GB/s peaks at whole waves.
    const int64_t wave_rows = 36 * static_cast<int64_t>(sms) / 4;  // rows per wave at s4
    std::printf("\nWave fill: warp GEMV s4, m = 1, us per launch (8 chained, PDL), GB/s of weights;"
                " waves = 4n / (36 x %d)\n", sms);
    std::printf("%8s %8s %8s %10s %10s\n", "k", "n", "waves", "us", "GB/s");
    detail::GemvScratch none;
    for (int64_t k : {int64_t{18944}, int64_t{27648}, int64_t{13824}}) {
      std::vector<int64_t> ns;
      for (int64_t q = 8; q <= 20; ++q) ns.push_back(wave_rows * q / 4);  // 2 to 5 waves in quarter steps
      ns.push_back(k == 18944 ? 3584 : 5120);                             // the model's own n
      for (int64_t n : ns) {
        if (static_cast<size_t>(n * k) > max_w) continue;
        auto launch = [&](int i) {
          return detail::launch_gemv(cb.gemv_args(n, k, i, y.data()), none, stream.get(), 4,
                                     detail::GemvKernel::kWarpRows);
        };
        DS_ASSIGN_OR_RETURN(const double us, chain_us(launch));
        std::printf("%8lld %8lld %8.2f %10.2f %10.1f\n", static_cast<long long>(k), static_cast<long long>(n),
                    static_cast<double>(n) / static_cast<double>(wave_rows), us,
                    static_cast<double>(n * k * 2) / (us * 1e3));
      }
    }
  }
  if (table == "all" || table == "swiglu") {
    // gate_up with the SwiGLU epilogue: the production kernels (the warp kernel,
    // one warp streaming a gate/up pair over 1/S of k, gemv_swiglu.cu; the
    // cp.async ring, a block holding gate row j and up row I + j in different
    // warps) against groups holding R / 2 whole pairs.
    std::printf("\nSwiGLU gate_up, us per launch, 8 chained launches (PDL); reference = warp s1\n");
    std::printf("%-18s %8s %8s %8s %8s %8s", "shape", "warp s1", "warp s2", "warp s4", "async s1", "async s2");
    for (const Variant& v : kSwigluVariants) std::printf(" %8s", v.name);
    std::printf("   max |diff| of any variant\n");
    for (const Shape& s : kShapes) {
      if (std::string(s.name).find("gate_up") == std::string::npos) continue;
      auto production = [&](int i, void* out, bool async, int splits) {
        detail::GemvWarpParams p;
        p.x = x.data();
        p.w = weight(s, i);
        p.m = 1, p.n = s.n, p.k = s.k, p.ldx = s.k, p.ldy = s.n;
        p.splits = splits;
        p.swiglu_out = out;
        p.ld_swiglu = s.n / 2;
        return async ? detail::launch_gemv_async(p, stream.get()) : detail::launch_gemv_warp(p, stream.get());
      };
      DS_RETURN_IF_ERROR(production(0, y_ref.data(), false, 1));
      std::printf("%-18s", s.name);
      const std::pair<bool, int> kProduction[] = {{false, 1}, {false, 2}, {false, 4}, {true, 1}, {true, 2}};
      for (const auto& [async, splits] : kProduction) {
        DS_ASSIGN_OR_RETURN(const double us, chain_us([&, async = async, splits = splits](int i) {
                              return production(i, y.data(), async, splits);
                            }));
        std::printf(" %8.2f", us);
      }
      DS_RETURN_IF_ERROR(time_variants(s, kSwigluVariants, std::size(kSwigluVariants), s.n / 2));
    }
  }
  return Status::Ok();
}

}  // namespace
}  // namespace ds::cuda::bench

int main(int argc, char** argv) {
  CLI::App app{"ds_gemv_rows_bench: batch-1 warp GEMV with R rows per warp vs the production warp GEMV"};
  int reps = 20;
  std::string table = "all";
  app.add_option("--reps", reps, "timed runs per measurement (median)")->check(CLI::Range(3, 1000));
  app.add_option("--table", table, "rows (plain GEMV), swiglu (gate_up + SwiGLU), fill (wave-fill sweep) or all")
      ->check(CLI::IsMember({"all", "rows", "swiglu", "fill"}));
  CLI11_PARSE(app, argc, argv);
  const ds::Status st = ds::cuda::bench::run(reps, table);
  if (!st.ok()) {
    std::fprintf(stderr, "ds_gemv_rows_bench: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
