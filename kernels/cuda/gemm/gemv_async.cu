// Warp-per-row GEMV that lands w in shared memory with cp.async (m <= 4): the
// bytes in flight are no longer bounded by registers. Each warp owns a ring of
// kStages stages (kPerStage 16-byte loads per lane each) and keeps kStages - 1
// of them in flight while it computes on the oldest; every lane reads back only
// the bytes it copied itself, so no barrier is needed inside the loop.
// Rows are split across 1/2/4 warps like the register kernel (gemv_warp.cu),
// with the same epilogue (residual), RMSNorm prologue and SwiGLU epilogue
// (gemv_common.cuh).
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/gemv_common.cuh"
#include "runtime/cuda/cp_async.cuh"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda::detail {
namespace {

constexpr int kWarpsPerBlock = kGemvRowWarpsPerBlock;
constexpr int kStages = 8;
constexpr int kPerStage = 2;  // 16-byte loads per lane per stage: 1 KiB per warp per stage


template <int M, GemvXSource S, bool SWIGLU>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) gemv_async_kernel(GemvWarpParams p) {
  static_assert(!SWIGLU || S == GemvXSource::kX, "the SwiGLU epilogue reads x");
  __shared__ __align__(16) uint4 ring[kWarpsPerBlock][kStages][kPerStage][32];
  __shared__ float red[kWarpsPerBlock][kGemvRedWidth<S, M>];
  pdl_trigger();
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int splits = p.splits;
  bool row_ok = false;
  const int64_t row = gemv_warp_row<SWIGLU>(p, warp, row_ok);
  const int part = warp % splits;
  const int64_t nv = p.k / 8;
  const int64_t chunk = (nv + splits - 1) / splits;
  const int64_t v_begin = part * chunk;
  const int64_t v_end = v_begin + chunk < nv ? v_begin + chunk : nv;
  const uint4* w = reinterpret_cast<const uint4*>(p.w) + (row_ok ? row : 0) * nv;
  const GemvX<S, M> xs(p);
  constexpr int kStageVecs = 32 * kPerStage;
  const int64_t stages = (row_ok && v_end > v_begin) ? (v_end - v_begin + kStageVecs - 1) / kStageVecs : 0;

  auto issue = [&](int64_t j) {
#pragma unroll
    for (int u = 0; u < kPerStage; ++u) {
      const int64_t v = v_begin + j * kStageVecs + u * 32 + lane;
      const bool ok = j < stages && v < v_end;
      cp_async_16(&ring[warp][j % kStages][u][lane], ok ? w + v : w, ok);
    }
    cp_async_commit();
  };

  float acc[M], ss[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = ss[m] = 0.0f;
#pragma unroll
  for (int j = 0; j < kStages - 1; ++j) issue(j);
  GemvRowTail<S == GemvXSource::kX> tail;  // the rows epilogue's bias and residual (the SwiGLU one reads its own)
  if constexpr (!SWIGLU) tail.load_before_wait<M>(p, row, part == 0, lane);
  pdl_wait();  // only weights were read so far (PDL, see runtime/cuda/pdl.h)
  if constexpr (!SWIGLU) tail.load_after_wait<M>(p, row, part == 0, lane);
  for (int64_t j = 0; j < stages; ++j) {
    cp_async_wait<kStages - 2>();
    issue(j + kStages - 1);
#pragma unroll
    for (int u = 0; u < kPerStage; ++u) {
      const int64_t v = v_begin + j * kStageVecs + u * 32 + lane;
      if (v < v_end) {
        const uint4 wv = ring[warp][j % kStages][u][lane];  // one 16-byte shared load, used for all m
        xs.step(wv, v, acc, ss);
      }
    }
  }
  cp_async_wait<0>();
  if constexpr (SWIGLU)
    gemv_swiglu_epilogue<M>(p, acc, red, row, row_ok, warp, lane);
  else
    gemv_rows_epilogue<S, M>(p, acc, ss, red, row, warp, lane, tail);
}

// Occupancy of the plain kernels (the SwiGLU ones have the same launch bounds
// and shared memory; their splits are chosen with these figures).
template <int M, GemvXSource S>
int resident_warps_per_sm() {
  static const int warps = gemv_resident_warps(gemv_async_kernel<M, S, false>, 6);
  return warps;
}

int resident_warps(int64_t m, GemvXSource source) {
  constexpr GemvXSource kX = GemvXSource::kX, kF32 = GemvXSource::kNormF32, kBF16 = GemvXSource::kNormBF16;
  if (source == kF32) return m == 1 ? resident_warps_per_sm<1, kF32>() : resident_warps_per_sm<2, kF32>();
  if (source == kBF16) return m == 1 ? resident_warps_per_sm<1, kBF16>() : resident_warps_per_sm<2, kBF16>();
  switch (m) {
    case 1: return resident_warps_per_sm<1, kX>();
    case 2: return resident_warps_per_sm<2, kX>();
    case 3: return resident_warps_per_sm<3, kX>();
    default: return resident_warps_per_sm<4, kX>();
  }
}

}  // namespace

int gemv_async_splits(int64_t m, int64_t n, int64_t k, int num_sms, GemvXSource source, bool swiglu) {
  // As gemv_warp_splits: best last-wave fill of row parts over resident warps,
  // each part keeping at least the ring's worth of loads.
  if (num_sms <= 0 || m < 1 || m > kGemvWarpMaxM) return 1;
  if (source != GemvXSource::kX && m > kNormPrologueMaxM) return 1;
  const int64_t wave = static_cast<int64_t>(resident_warps(m, source)) * num_sms;
  return gemv_rows_best_splits(n, k, wave, 32 * kPerStage * kStages * 8, swiglu ? 2 : kWarpsPerBlock);
}

namespace {

// The plain-x kernels, with the SwiGLU epilogue or not (m in [1, kGemvWarpMaxM]).
template <bool SWIGLU>
cudaError_t launch_x(const GemvWarpParams& p, dim3 grid, int threads, cudaStream_t stream) {
  constexpr GemvXSource kX = GemvXSource::kX;
  switch (p.m) {
    case 1: return launch_kernel(gemv_async_kernel<1, kX, SWIGLU>, grid, threads, 0, stream, p);
    case 2: return launch_kernel(gemv_async_kernel<2, kX, SWIGLU>, grid, threads, 0, stream, p);
    case 3: return launch_kernel(gemv_async_kernel<3, kX, SWIGLU>, grid, threads, 0, stream, p);
    default: return launch_kernel(gemv_async_kernel<4, kX, SWIGLU>, grid, threads, 0, stream, p);
  }
}

}  // namespace

Status launch_gemv_async(const GemvWarpParams& p, cudaStream_t stream) {
  const bool swiglu = p.swiglu_out != nullptr;
  if (p.nout_slot != nullptr || p.nin_slot != nullptr)
    return Status::Error("gemv_async: the deferred RMSNorm runs on the warp-row kernels only");
  if (p.splits != 1 && p.splits != 2 && (p.splits != 4 || swiglu))
    return Status::Error(StrCat() << "gemv_async: splits = " << p.splits << " is not 1, 2"
                                  << (swiglu ? " (SwiGLU: a block must hold a gate/up row pair)" : " or 4"));
  if (p.m < 1 || p.m > kGemvWarpMaxM)
    return Status::Error(StrCat() << "gemv_async: m = " << p.m << " is outside [1, " << kGemvWarpMaxM << "]");
  constexpr GemvXSource kX = GemvXSource::kX, kF32 = GemvXSource::kNormF32, kBF16 = GemvXSource::kNormBF16;
  if (swiglu && (p.source != kX || p.n % 2 != 0))
    return Status::Error(StrCat() << "gemv_async: the SwiGLU epilogue needs x read from memory and an even n, got n = "
                                  << p.n);
  const int64_t rows_per_block = kWarpsPerBlock / p.splits;
  // SwiGLU: rows_per_block / 2 (gate, up) pairs per block over n / 2 columns.
  const int64_t blocks =
      swiglu ? (p.n / 2 + rows_per_block / 2 - 1) / (rows_per_block / 2) : (p.n + rows_per_block - 1) / rows_per_block;
  if (blocks > 0x7fffffff) return Status::Error(StrCat() << "gemv_async: n = " << p.n << " is too large");
  const dim3 grid(static_cast<unsigned>(blocks));
  const int threads = kWarpsPerBlock * 32;
  cudaError_t err = cudaSuccess;
  if (p.source != kX) {
    if (p.m > kNormPrologueMaxM)
      return Status::Error(StrCat() << "gemv_async: the RMSNorm prologue needs m in [1, " << kNormPrologueMaxM
                                    << "], got " << p.m);
    if (p.source == kF32)
      err = p.m == 1 ? launch_kernel(gemv_async_kernel<1, kF32, false>, grid, threads, 0, stream, p)
                     : launch_kernel(gemv_async_kernel<2, kF32, false>, grid, threads, 0, stream, p);
    else
      err = p.m == 1 ? launch_kernel(gemv_async_kernel<1, kBF16, false>, grid, threads, 0, stream, p)
                     : launch_kernel(gemv_async_kernel<2, kBF16, false>, grid, threads, 0, stream, p);
  } else {
    err = swiglu ? launch_x<true>(p, grid, threads, stream) : launch_x<false>(p, grid, threads, stream);
  }
  DS_CUDA_RETURN_IF_ERROR(err);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda::detail
