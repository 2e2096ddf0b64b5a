// Warp-per-row GEMV for the smallest batches (m <= kGemvWarpMaxM): each warp
// streams one whole row of w (16-byte ld.global.nc.L1::no_allocate loads,
// kLoads independent loads per lane in flight per iteration, predicated so the
// tail costs no extra round trip), x rows come through L1 (__ldg; every warp of
// the SM reads the same x), f32 FMAs, a shuffle reduction, bias fused.
// Rows (or row parts, gemv_warp_splits) are the units of work, so the load is
// even across SMs without any cross-block reduction.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/gemv_common.cuh"
#include "runtime/cuda/pdl.cuh"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda::detail {
namespace {

constexpr int kWarpsPerBlock = kGemvRowWarpsPerBlock;
constexpr int kLoads = 8;       // loads in flight per lane (kWarpRows)
constexpr int kDeepLoads = 16;  // m = 1 variant with twice the bytes in flight (kWarpRowsDeep)

// Block: kWarpsPerBlock warps = kWarpsPerBlock / S rows, S warps per row, each
// warp streaming one contiguous 1/S of the row's k (S = p.splits in {1, 2, 4};
// splitting long rows gives more, shorter work units, so the last wave of a
// grid with few rows is short). Partial sums of a row meet in shared memory.
// PDL: the first LOADS weight loads are issued before pdl_wait() (weights are
// immutable); x, y and everything else are touched after it.
template <int M, int LOADS>
__global__ void __launch_bounds__(kWarpsPerBlock * 32, M == 1 ? (LOADS == kLoads ? 9 : 5) : 1)
    gemv_warp_kernel(GemvWarpParams p) {
  __shared__ float red[kWarpsPerBlock][M];
  pdl_trigger();
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int splits = p.splits;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kWarpsPerBlock / splits) + warp / splits;
  const int part = warp % splits;
  const bool row_ok = row < p.n;
  const int64_t nv = p.k / 8;
  const int64_t chunk = (nv + splits - 1) / splits;
  const int64_t v_begin = part * chunk;
  const int64_t v_end = !row_ok ? v_begin : (v_begin + chunk < nv ? v_begin + chunk : nv);
  const uint4* w = reinterpret_cast<const uint4*>(p.w) + (row_ok ? row : 0) * nv;
  const int64_t ldx_v = p.ldx / 8;
  const uint4* x = reinterpret_cast<const uint4*>(p.x);
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  uint4 wv[LOADS];
  auto load = [&](int64_t v0) {
#pragma unroll
    for (int u = 0; u < LOADS; ++u) {
      const int64_t v = v0 + 32 * u;
      wv[u] = v < v_end ? gemv_load_stream(w + v) : zero;
    }
  };
  load(v_begin + lane);
  pdl_wait();
  for (int64_t v0 = v_begin + lane; v0 < v_end; v0 += 32 * LOADS) {
#pragma unroll
    for (int u = 0; u < LOADS; ++u) {
      const int64_t v = v0 + 32 * u;
      if (v < v_end) {
#pragma unroll
        for (int m = 0; m < M; ++m) acc[m] = gemv_dot8(wv[u], __ldg(x + m * ldx_v + v), acc[m]);
      }
    }
    load(v0 + 32 * LOADS);
  }
  gemv_rows_epilogue<M>(p, acc, red, row, warp, lane);
}

template <int M, int LOADS>
int resident_warps_per_sm() {
  static const int warps = [] {
    int blocks = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gemv_warp_kernel<M, LOADS>, kWarpsPerBlock * 32, 0) !=
        cudaSuccess) {
      (void)cudaGetLastError();
      blocks = 8;
    }
    return blocks * kWarpsPerBlock;
  }();
  return warps;
}

int resident_warps(int64_t m, bool deep) {
  switch (m) {
    case 1: return deep ? resident_warps_per_sm<1, kDeepLoads>() : resident_warps_per_sm<1, kLoads>();
    case 2: return resident_warps_per_sm<2, kLoads>();
    case 3: return resident_warps_per_sm<3, kLoads>();
    default: return resident_warps_per_sm<4, kLoads>();
  }
}

}  // namespace

int gemv_warp_splits(int64_t m, int64_t n, int64_t k, int num_sms, bool deep) {
  // Work units (row parts) per wave of resident warps: the split whose unit
  // count fills its last wave best, each part keeping >= 8 batches of loads.
  if (num_sms <= 0 || m < 1 || m > kGemvWarpMaxM) return 1;
  deep = deep && m == 1;
  const int64_t wave = static_cast<int64_t>(resident_warps(m, deep)) * num_sms;
  return gemv_rows_best_splits(n, k, wave, 32 * (deep ? kDeepLoads : kLoads) * 8);
}

Status launch_gemv_warp(const GemvWarpParams& p, cudaStream_t stream) {
  if (p.splits != 1 && p.splits != 2 && p.splits != 4)
    return Status::Error(StrCat() << "gemv_warp: splits = " << p.splits << " is not 1, 2 or 4");
  const int64_t rows_per_block = kWarpsPerBlock / p.splits;
  const int64_t blocks = (p.n + rows_per_block - 1) / rows_per_block;
  if (blocks > 0x7fffffff) return Status::Error(StrCat() << "gemv: n = " << p.n << " is too large");
  const dim3 grid(static_cast<unsigned>(blocks));
  const int threads = kWarpsPerBlock * 32;
  cudaError_t err = cudaSuccess;
  switch (p.m) {
    case 1:
      err = p.deep ? launch_kernel(gemv_warp_kernel<1, kDeepLoads>, grid, threads, 0, stream, p)
                   : launch_kernel(gemv_warp_kernel<1, kLoads>, grid, threads, 0, stream, p);
      break;
    case 2: err = launch_kernel(gemv_warp_kernel<2, kLoads>, grid, threads, 0, stream, p); break;
    case 3: err = launch_kernel(gemv_warp_kernel<3, kLoads>, grid, threads, 0, stream, p); break;
    case 4: err = launch_kernel(gemv_warp_kernel<4, kLoads>, grid, threads, 0, stream, p); break;
    default:
      return Status::Error(StrCat() << "gemv_warp: m = " << p.m << " is outside [1, " << kGemvWarpMaxM << "]");
  }
  DS_CUDA_RETURN_IF_ERROR(err);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda::detail
