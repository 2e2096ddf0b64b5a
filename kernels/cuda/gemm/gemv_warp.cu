// Warp-per-row GEMV for the smallest batches (m <= kGemvWarpMaxM): each warp
// streams one whole row of w (16-byte ld.global.nc.L1::no_allocate loads,
// kLoads independent loads per lane in flight per iteration, predicated so the
// tail costs no extra round trip), x rows come through L1 (__ldg; every warp of
// the SM reads the same x), f32 FMAs, a shuffle reduction, bias fused.
// Rows (or row parts, gemv_warp_splits) are the units of work, so the load is
// even across SMs without any cross-block reduction. The epilogue adds the
// residual; the RMSNorm prologue (m <= 2) replaces x by src and gamma (the
// design is described in gemv_common.cuh), as a template parameter. The
// SwiGLU epilogue has its own kernel, one warp streaming both rows of a
// gate/up pair (gemv_swiglu.cu); launch_gemv_warp hands it those problems.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/gemv_common.cuh"
#include "runtime/cuda/l2_prefetch.cuh"
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
// Blocks per SM the m = 1 kernels are compiled for (registers: 65536 / (128 *
// blocks)): 9 / 5 keep 36 / 20 warps resident with 56 / 96 registers; the
// RMSNorm prologue's extra live values (gamma, src, sum of squares) need 64 /
// 128 registers to run without spills, so 8 / 4 there.
template <int M, int LOADS, GemvXSource S>
constexpr int kMinBlocks =
    M != 1 ? 1 : (S == GemvXSource::kX ? (LOADS == kLoads ? 9 : 5) : (LOADS == kLoads ? 8 : 4));

template <int M, int LOADS, GemvXSource S>
__global__ void __launch_bounds__(kWarpsPerBlock * 32, (kMinBlocks<M, LOADS, S>)) gemv_warp_kernel(GemvWarpParams p) {
  __shared__ float red[kWarpsPerBlock][kGemvRedWidth<S, M>];
  pdl_trigger();
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int splits = p.splits;
  bool row_ok = false;
  const int64_t row = gemv_warp_row<false>(p, warp, row_ok);
  const int part = warp % splits;
  const int64_t nv = p.k / 8;
  const int64_t chunk = (nv + splits - 1) / splits;
  const int64_t v_begin = part * chunk;
  const int64_t v_end = !row_ok ? v_begin : (v_begin + chunk < nv ? v_begin + chunk : nv);
  const uint4* w = reinterpret_cast<const uint4*>(p.w) + (row_ok ? row : 0) * nv;
  const GemvX<S, M> xs(p);
  float acc[M], ss[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = ss[m] = 0.0f;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  uint4 wv[LOADS];
  auto load = [&](int64_t v0) {
#pragma unroll
    for (int u = 0; u < LOADS; ++u) {
      const int64_t v = v0 + 32 * u;
      wv[u] = v < v_end ? gemv_load_stream(w + v) : zero;
    }
  };
  // GemmArgs::prefetch_weights: this warp's whole slice (the executor sets it on
  // linears that feed an all-reduce).
  if (p.prefetch_weights && lane == 0 && v_end > v_begin)
    l2_prefetch_bulk(w + v_begin, static_cast<uint32_t>((v_end - v_begin) * 16));
  load(v_begin + lane);
  GemvRowTail<S == GemvXSource::kX> tail;
  tail.load_before_wait<M>(p, row, part == 0, lane);
  pdl_wait();
  tail.load_after_wait<M>(p, row, part == 0, lane);
  for (int64_t v0 = v_begin + lane; v0 < v_end; v0 += 32 * LOADS) {
#pragma unroll
    for (int u = 0; u < LOADS; ++u) {
      const int64_t v = v0 + 32 * u;
      if (v < v_end) xs.step(wv[u], v, acc, ss);
    }
    load(v0 + 32 * LOADS);
  }
  gemv_rows_epilogue<S, M>(p, acc, ss, red, row, warp, lane, tail);
}

// Occupancy of the kernels (gemv_swiglu.cu has its own, for its splits).
template <int M, int LOADS, GemvXSource S>
int resident_warps_per_sm() {
  static const int warps = gemv_resident_warps(gemv_warp_kernel<M, LOADS, S>, 8);
  return warps;
}

template <GemvXSource S>
int resident_warps_norm(int64_t m, bool deep) {
  if (m == 1) return deep ? resident_warps_per_sm<1, kDeepLoads, S>() : resident_warps_per_sm<1, kLoads, S>();
  return resident_warps_per_sm<2, kLoads, S>();
}

int resident_warps(int64_t m, bool deep, GemvXSource source) {
  if (source == GemvXSource::kNormF32) return resident_warps_norm<GemvXSource::kNormF32>(m, deep);
  if (source == GemvXSource::kNormBF16) return resident_warps_norm<GemvXSource::kNormBF16>(m, deep);
  switch (m) {
    case 1:
      return deep ? resident_warps_per_sm<1, kDeepLoads, GemvXSource::kX>()
                  : resident_warps_per_sm<1, kLoads, GemvXSource::kX>();
    case 2: return resident_warps_per_sm<2, kLoads, GemvXSource::kX>();
    case 3: return resident_warps_per_sm<3, kLoads, GemvXSource::kX>();
    default: return resident_warps_per_sm<4, kLoads, GemvXSource::kX>();
  }
}

// The RMSNorm-prologue kernels exist for m <= kNormPrologueMaxM (2) only.
template <GemvXSource S>
cudaError_t launch_norm(const GemvWarpParams& p, dim3 grid, int threads, cudaStream_t stream) {
  if (p.m == 1)
    return p.deep ? launch_kernel(gemv_warp_kernel<1, kDeepLoads, S>, grid, threads, 0, stream, p)
                  : launch_kernel(gemv_warp_kernel<1, kLoads, S>, grid, threads, 0, stream, p);
  return launch_kernel(gemv_warp_kernel<2, kLoads, S>, grid, threads, 0, stream, p);
}

// The plain-x kernels (m in [1, kGemvWarpMaxM]).
cudaError_t launch_x(const GemvWarpParams& p, dim3 grid, int threads, cudaStream_t stream) {
  constexpr GemvXSource kX = GemvXSource::kX;
  switch (p.m) {
    case 1:
      return p.deep ? launch_kernel(gemv_warp_kernel<1, kDeepLoads, kX>, grid, threads, 0, stream, p)
                    : launch_kernel(gemv_warp_kernel<1, kLoads, kX>, grid, threads, 0, stream, p);
    case 2: return launch_kernel(gemv_warp_kernel<2, kLoads, kX>, grid, threads, 0, stream, p);
    case 3: return launch_kernel(gemv_warp_kernel<3, kLoads, kX>, grid, threads, 0, stream, p);
    default: return launch_kernel(gemv_warp_kernel<4, kLoads, kX>, grid, threads, 0, stream, p);
  }
}

}  // namespace

int gemv_warp_splits(int64_t m, int64_t n, int64_t k, int num_sms, bool deep, GemvXSource source, bool swiglu) {
  // Work units (row parts) per wave of resident warps: the split whose unit
  // count fills its last wave best, each part keeping >= 8 batches of loads.
  // SwiGLU: a unit is a gate/up pair's part (both rows, the same loads in flight).
  if (num_sms <= 0 || m < 1 || m > kGemvWarpMaxM) return 1;
  if (source != GemvXSource::kX && m > kNormPrologueMaxM) return 1;
  deep = deep && m == 1;
  const int warps = swiglu ? gemv_swiglu_resident_warps(m, deep) : resident_warps(m, deep, source);
  const int64_t wave = static_cast<int64_t>(warps) * num_sms;
  return gemv_rows_best_splits(swiglu ? n / 2 : n, k, wave, 32 * (deep ? kDeepLoads : kLoads) * 8);
}

Status launch_gemv_warp(const GemvWarpParams& p, cudaStream_t stream) {
  if (p.swiglu_out != nullptr) return launch_gemv_swiglu(p, stream);
  if (p.splits != 1 && p.splits != 2 && p.splits != 4)
    return Status::Error(StrCat() << "gemv_warp: splits = " << p.splits << " is not 1, 2 or 4");
  if (p.m < 1 || p.m > kGemvWarpMaxM)
    return Status::Error(StrCat() << "gemv_warp: m = " << p.m << " is outside [1, " << kGemvWarpMaxM << "]");
  if ((p.nout_slot != nullptr || p.nin_slot != nullptr) && p.m > kDeferredNormMaxM)
    return Status::Error(StrCat() << "gemv_warp: the deferred RMSNorm needs m <= " << kDeferredNormMaxM);
  if (p.nin_slot != nullptr && p.source != GemvXSource::kX)
    return Status::Error("gemv_warp: the deferred RMSNorm scale with the RMSNorm prologue is not implemented");
  if (p.nout_slot != nullptr && (p.nout_x == nullptr || p.nout_gamma == nullptr))
    return Status::Error("gemv_warp: the deferred RMSNorm output needs x' and gamma");
  const int64_t rows_per_block = kWarpsPerBlock / p.splits;
  const int64_t blocks = (p.n + rows_per_block - 1) / rows_per_block;
  if (blocks > 0x7fffffff) return Status::Error(StrCat() << "gemv: n = " << p.n << " is too large");
  const dim3 grid(static_cast<unsigned>(blocks));
  const int threads = kWarpsPerBlock * 32;
  cudaError_t err = cudaSuccess;
  if (p.source != GemvXSource::kX) {
    if (p.m > kNormPrologueMaxM)
      return Status::Error(StrCat() << "gemv_warp: the RMSNorm prologue needs m in [1, " << kNormPrologueMaxM
                                    << "], got " << p.m);
    err = p.source == GemvXSource::kNormF32 ? launch_norm<GemvXSource::kNormF32>(p, grid, threads, stream)
                                            : launch_norm<GemvXSource::kNormBF16>(p, grid, threads, stream);
  } else {
    err = launch_x(p, grid, threads, stream);
  }
  DS_CUDA_RETURN_IF_ERROR(err);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda::detail
