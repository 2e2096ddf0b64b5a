// ds_gemv_trace_bench: where the fixed cost of a chained batch-1 GEMV goes.
//
// ds_gemv_rows_bench --table fill (H200) fits the PDL-chained warp GEMV at
// k = 18944 as about 9 us per launch plus n rows at 4.5 TB/s, and a stream-K
// form (one wave of equal shares) as 9.7 us plus rows at 4.1 TB/s, so the fixed
// cost is not only a ragged last wave. This bench runs a copy of the production
// m = 1 warp kernel (gemv_warp.cu: 4-warp blocks, S warps per row, 8 loads in
// flight per lane, the first ones before the PDL wait) that stamps each warp's
// start, end of PDL wait and end with %globaltimer (and its SM), in a chain of 8
// launches with distinct weights, and prints per launch (1..7, the first has no
// predecessor): the period between consecutive kernel ends, when the kernel's
// first warp passed its wait relative to the previous kernel's end, the spread of
// warp and SM end times, and the number of warps streaming over the period.
#include <cuda_bf16.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/gemv_common.cuh"
#include "kernels/cuda/gemm/timing_spin.h"
#include "runtime/common/status.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda::bench {
namespace {

constexpr int kWarps = 4;
constexpr int kLoads = 8;
constexpr int kChain = 8;

struct Stamp {
  unsigned long long start, waited, end;
  unsigned sm, pad;
};

__device__ __forceinline__ unsigned long long now() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

template <int S>
__global__ void __launch_bounds__(kWarps * 32, 9)
    traced_gemv(const uint4* __restrict__ x, const uint4* __restrict__ w, __nv_bfloat16* __restrict__ y, int64_t n,
                int64_t k, Stamp* __restrict__ trace) {
  __shared__ float red[kWarps];
  const unsigned long long t0 = now();
  pdl_trigger();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kWarps / S) + warp / S;
  const bool ok = row < n;
  const int64_t nv = k / 8, chunk = (nv + S - 1) / S;
  const int64_t v_begin = (warp % S) * chunk, v_end = ok ? min(nv, v_begin + chunk) : v_begin;
  const uint4* wr = w + (ok ? row : 0) * nv;
  uint4 wv[kLoads];
  auto load = [&](int64_t v0) {
#pragma unroll
    for (int u = 0; u < kLoads; ++u)
      wv[u] = v0 + 32 * u < v_end ? detail::gemv_load_stream(wr + v0 + 32 * u) : make_uint4(0, 0, 0, 0);
  };
  load(v_begin + lane);
  pdl_wait();
  const unsigned long long t1 = now();
  float acc = 0.0f;
  for (int64_t v0 = v_begin + lane; v0 < v_end; v0 += 32 * kLoads) {
#pragma unroll
    for (int u = 0; u < kLoads; ++u)
      if (v0 + 32 * u < v_end) acc = detail::gemv_dot8(wv[u], __ldg(x + v0 + 32 * u), acc);
    load(v0 + 32 * kLoads);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (S > 1) {
    if (lane == 0) red[warp] = acc;
    __syncthreads();
    if (warp % S == 0 && lane == 0) {
      float t = 0.0f;
      for (int s = 0; s < S; ++s) t += red[warp + s];
      acc = t;
    }
  }
  if (ok && warp % S == 0 && lane == 0) y[row] = __float2bfloat16_rn(acc);
  if (lane == 0) {
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    trace[blockIdx.x * kWarps + warp] = Stamp{t0, t1, now(), sm, 0};
  }
}

// Persistent form of the 4-warps-per-row kernel: a grid of resident blocks,
// each taking rows by ticket (atomicAdd; the first row is blockIdx.x, so its
// weights are requested before the PDL wait) until none is left, the next
// row's ticket fetched while the current row streams and its first loads
// issued before the current row's sums are stored. No block is launched after
// the first wave, and blocks leave one by one as the rows run out.
// counters[0]: tickets, counters[1]: blocks done (the last one resets both).
__global__ void __launch_bounds__(kWarps * 32, 9)
    persistent_gemv(const uint4* __restrict__ x, const uint4* __restrict__ w, __nv_bfloat16* __restrict__ y,
                    int64_t n, int64_t k, unsigned* __restrict__ counters, Stamp* __restrict__ trace) {
  __shared__ float red[2][kWarps];
  __shared__ int64_t next_row[2];
  const unsigned long long t0 = now();
  pdl_trigger();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t nv = k / 8, chunk = (nv + kWarps - 1) / kWarps;
  const int64_t v_begin = warp * chunk, v_end = min(nv, v_begin + chunk);
  int64_t row = blockIdx.x;
  uint4 wv[kLoads];
  auto load = [&](int64_t r, int64_t v0) {
#pragma unroll
    for (int u = 0; u < kLoads; ++u)
      wv[u] = v0 + 32 * u < v_end ? detail::gemv_load_stream(w + r * nv + v0 + 32 * u) : make_uint4(0, 0, 0, 0);
  };
  load(row, v_begin + lane);
  pdl_wait();
  const unsigned long long t1 = now();
  if (threadIdx.x == 0) next_row[0] = gridDim.x + static_cast<int64_t>(atomicAdd(&counters[0], 1u));
  for (int cur = 0;; cur ^= 1) {
    float acc = 0.0f;
    for (int64_t v0 = v_begin + lane; v0 < v_end; v0 += 32 * kLoads) {
#pragma unroll
      for (int u = 0; u < kLoads; ++u)
        if (v0 + 32 * u < v_end) acc = detail::gemv_dot8(wv[u], __ldg(x + v0 + 32 * u), acc);
      if (v0 + 32 * kLoads < v_end) load(row, v0 + 32 * kLoads);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) red[cur][warp] = acc;
    __syncthreads();
    const int64_t next = next_row[cur];
    if (next < n) {
      load(next, v_begin + lane);  // the next row's first loads before this row's store
      if (threadIdx.x == 0) next_row[cur ^ 1] = gridDim.x + static_cast<int64_t>(atomicAdd(&counters[0], 1u));
    }
    if (threadIdx.x == 0) y[row] = __float2bfloat16_rn(red[cur][0] + red[cur][1] + red[cur][2] + red[cur][3]);
    if (next >= n) break;
    row = next;
  }
  if (threadIdx.x == 0 && atomicAdd(&counters[1], 1u) == gridDim.x - 1) {
    counters[0] = 0;
    counters[1] = 0;
  }
  if (lane == 0) {
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    trace[blockIdx.x * kWarps + warp] = Stamp{t0, t1, now(), sm, 0};
  }
}

struct Shape {
  const char* name;
  int64_t n, k;
  int s;                    // warps per row (the persistent kernel: 4)
  bool persistent = false;  // persistent_gemv
};

Status run_shape(const Shape& sh, const DeviceBuffer& pool, const DeviceBuffer& x, const DeviceBuffer& y,
                 Stream& stream) {
  int64_t blocks = (sh.n + kWarps / sh.s - 1) / (kWarps / sh.s);
  if (sh.persistent) {
    int per_sm = 0, sms = 0, dev = 0;
    DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&dev));
    DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    DS_CUDA_RETURN_IF_ERROR(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, persistent_gemv, kWarps * 32, 0));
    blocks = std::min<int64_t>(sh.n, static_cast<int64_t>(per_sm) * sms);
  }
  const int64_t warps = blocks * kWarps;
  DS_ASSIGN_OR_RETURN(DeviceBuffer trace, DeviceBuffer::allocate(sizeof(Stamp) * warps * kChain));
  DS_ASSIGN_OR_RETURN(DeviceBuffer counters, DeviceBuffer::allocate(2 * sizeof(unsigned)));
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(counters.data(), 0, counters.bytes()));
  auto kernel = sh.s == 1 ? traced_gemv<1> : sh.s == 2 ? traced_gemv<2> : traced_gemv<4>;
  const size_t wbytes = static_cast<size_t>(sh.n * sh.k) * 2;
  auto launch_all = [&]() -> Status {
    DS_RETURN_IF_ERROR(launch_timing_spin(50000, stream.get()));
    for (int i = 0; i < kChain; ++i) {
      const uint4* wi =
          reinterpret_cast<const uint4*>(static_cast<const char*>(pool.data()) + static_cast<size_t>(i) * wbytes);
      Stamp* ti = static_cast<Stamp*>(trace.data()) + i * warps;
      auto* yi = static_cast<__nv_bfloat16*>(y.data());
      const auto* xi = static_cast<const uint4*>(x.data());
      if (sh.persistent)
        DS_CUDA_RETURN_IF_ERROR(launch_kernel(persistent_gemv, dim3(static_cast<unsigned>(blocks)), dim3(kWarps * 32),
                                              0, stream.get(), xi, wi, yi, sh.n, sh.k,
                                              static_cast<unsigned*>(counters.data()), ti));
      else
        DS_CUDA_RETURN_IF_ERROR(launch_kernel(kernel, dim3(static_cast<unsigned>(blocks)), dim3(kWarps * 32), 0,
                                              stream.get(), xi, wi, yi, sh.n, sh.k, ti));
    }
    return stream.synchronize();
  };
  DS_RETURN_IF_ERROR(launch_all());  // warm-up
  DS_RETURN_IF_ERROR(launch_all());
  std::vector<Stamp> st(static_cast<size_t>(warps * kChain));
  DS_RETURN_IF_ERROR(trace.copy_to_host(st.data(), st.size() * sizeof(Stamp)));
  unsigned long long res = ~0ull;  // smallest non-zero step between sorted end stamps
  {
    std::vector<unsigned long long> ends;
    for (const Stamp& s : st) ends.push_back(s.end);
    std::sort(ends.begin(), ends.end());
    for (size_t i = 1; i < ends.size(); ++i)
      if (ends[i] != ends[i - 1]) res = std::min(res, ends[i] - ends[i - 1]);
  }
  std::printf("\n%s: n %lld k %lld, %d warps per row, %lld warps (%.2f MB), globaltimer step %llu ns\n", sh.name,
              static_cast<long long>(sh.n), static_cast<long long>(sh.k), sh.s, static_cast<long long>(warps),
              wbytes / 1e6, res);
  std::printf("launch period_us GB/s  first_start first_wait median_wait | end spread: p50 p90 p99 max (us before"
              " kernel end) | SM ends: first median (us before)\n");
  auto end_of = [&](int i) {
    unsigned long long e = 0;
    for (int64_t j = 0; j < warps; ++j) e = std::max(e, st[i * warps + j].end);
    return e;
  };
  std::vector<double> streaming(16, 0.0);
  for (int i = 1; i < kChain; ++i) {
    const unsigned long long prev = end_of(i - 1), end = end_of(i);
    const Stamp* s = st.data() + i * warps;
    std::vector<double> waits, ends;
    double first_start = 1e30;
    std::map<unsigned, unsigned long long> sm_end;
    for (int64_t j = 0; j < warps; ++j) {
      first_start = std::min(first_start, static_cast<double>(s[j].start) - static_cast<double>(prev));
      waits.push_back(static_cast<double>(s[j].waited) - static_cast<double>(prev));
      ends.push_back(static_cast<double>(end) - static_cast<double>(s[j].end));
      sm_end[s[j].sm] = std::max(sm_end[s[j].sm], s[j].end);
    }
    std::sort(waits.begin(), waits.end());
    std::sort(ends.begin(), ends.end());  // ascending "before the end": ends[0] = the last warp
    std::vector<double> sm_before;
    for (const auto& kv : sm_end) sm_before.push_back(static_cast<double>(end - kv.second));
    std::sort(sm_before.begin(), sm_before.end());
    auto before = [&](double q) { return ends[static_cast<size_t>(q * static_cast<double>(ends.size() - 1))] / 1e3; };
    const double period = static_cast<double>(end - prev);
    std::printf("%6d %9.2f %5.0f %11.2f %10.2f %11.2f | %6.2f %6.2f %6.2f %6.2f | %6.2f %6.2f\n", i, period / 1e3,
                wbytes / period, first_start / 1e3, waits.front() / 1e3, waits[waits.size() / 2] / 1e3,
                before(0.5), before(0.1), before(0.01), ends.back() / 1e3, sm_before.back() / 1e3,
                sm_before[sm_before.size() / 2] / 1e3);
    // Warps streaming (past their wait, not ended) in 16 slices of the period, summed over launches.
    for (int b = 0; b < 16; ++b) {
      const double t = static_cast<double>(prev) + period * (b + 0.5) / 16.0;
      int active = 0;
      for (int64_t j = 0; j < warps; ++j)
        if (static_cast<double>(s[j].waited) <= t && t < static_cast<double>(s[j].end)) ++active;
      streaming[b] += active / static_cast<double>(kChain - 1);
    }
  }
  std::printf("warps streaming over the period (16 slices, mean of launches 1-7):");
  for (double a : streaming) std::printf(" %.0f", a);
  std::printf("\n");
  return Status::Ok();
}

Status run(const std::string& only) {
  const Shape shapes[] = {{"7B down s4", 3584, 18944, 4},
                          {"7B down persistent", 3584, 18944, 4, true},
                          {"7B down s1", 3584, 18944, 1},
                          {"32B down s4", 5120, 27648, 4},
                          {"32B down persistent", 5120, 27648, 4, true},
                          {"7B o s2", 3584, 3584, 2},
                          {"7B o persistent", 3584, 3584, 4, true},
                          {"7B gate_up s1", 37888, 3584, 1},
                          {"32B@tp2 down s4", 5120, 13824, 4},
                          {"32B@tp2 down persistent", 5120, 13824, 4, true}};
  size_t max_w = 0;
  for (const Shape& s : shapes) max_w = std::max(max_w, static_cast<size_t>(s.n * s.k) * 2);
  DS_ASSIGN_OR_RETURN(DeviceBuffer pool, DeviceBuffer::allocate(max_w * kChain));
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(pool.data(), 0, pool.bytes()));
  DS_ASSIGN_OR_RETURN(DeviceBuffer x, DeviceBuffer::allocate(27648 * 2));
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(x.data(), 0, x.bytes()));
  DS_ASSIGN_OR_RETURN(DeviceBuffer y, DeviceBuffer::allocate(37888 * 2));
  DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
  for (const Shape& s : shapes)
    if (only.empty() || std::string(s.name).find(only) != std::string::npos)
      DS_RETURN_IF_ERROR(run_shape(s, pool, x, y, stream));
  return Status::Ok();
}

}  // namespace
}  // namespace ds::cuda::bench

int main(int argc, char** argv) {
  CLI::App app{"ds_gemv_trace_bench: per-warp timelines of PDL-chained batch-1 warp GEMVs"};
  std::string only;
  app.add_option("--only", only, "run only the shapes whose name contains this");
  CLI11_PARSE(app, argc, argv);
  const ds::Status st = ds::cuda::bench::run(only);
  if (!st.ok()) {
    std::fprintf(stderr, "ds_gemv_trace_bench: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
