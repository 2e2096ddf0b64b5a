// Warp-per-row GEMV that lands w in shared memory with cp.async (m <= 4): the
// bytes in flight are no longer bounded by registers. Each warp owns a ring of
// kStages stages (kPerStage 16-byte loads per lane each) and keeps kStages - 1
// of them in flight while it computes on the oldest; every lane reads back only
// the bytes it copied itself, so no barrier is needed inside the loop.
// Rows are split across 1/2/4 warps like the register kernel (gemv_warp.cu).
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda::detail {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kStages = 8;
constexpr int kPerStage = 2;  // 16-byte loads per lane per stage: 1 KiB per warp per stage

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x, float acc) {
  const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
  const uint32_t xs[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __nv_bfloat162 a, b;
    memcpy(&a, &ws[i], 4);
    memcpy(&b, &xs[i], 4);
    const float2 fa = __bfloat1622float2(a), fb = __bfloat1622float2(b);
    acc = fmaf(fa.x, fb.x, acc);
    acc = fmaf(fa.y, fb.y, acc);
  }
  return acc;
}

template <int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) gemv_async_kernel(GemvWarpParams p) {
  __shared__ __align__(16) uint4 ring[kWarpsPerBlock][kStages][kPerStage][32];
  __shared__ float red[kWarpsPerBlock][M];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int splits = p.splits;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kWarpsPerBlock / splits) + warp / splits;
  const int part = warp % splits;
  const bool row_ok = row < p.n;
  const int64_t nv = p.k / 8;
  const int64_t chunk = (nv + splits - 1) / splits;
  const int64_t v_begin = part * chunk;
  const int64_t v_end = v_begin + chunk < nv ? v_begin + chunk : nv;
  const uint4* w = reinterpret_cast<const uint4*>(p.w) + (row_ok ? row : 0) * nv;
  const int64_t ldx_v = p.ldx / 8;
  const uint4* x = reinterpret_cast<const uint4*>(p.x);
  constexpr int kStageVecs = 32 * kPerStage;
  const int64_t stages = (row_ok && v_end > v_begin) ? (v_end - v_begin + kStageVecs - 1) / kStageVecs : 0;

  auto issue = [&](int64_t j) {
#pragma unroll
    for (int u = 0; u < kPerStage; ++u) {
      const int64_t v = v_begin + j * kStageVecs + u * 32 + lane;
      const bool ok = j < stages && v < v_end;
      cp_async16(&ring[warp][j % kStages][u][lane], ok ? w + v : w, ok ? 16 : 0);
    }
    cp_async_commit();
  };

  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
#pragma unroll
  for (int j = 0; j < kStages - 1; ++j) issue(j);
  for (int64_t j = 0; j < stages; ++j) {
    cp_async_wait<kStages - 2>();
    issue(j + kStages - 1);
#pragma unroll
    for (int u = 0; u < kPerStage; ++u) {
      const int64_t v = v_begin + j * kStageVecs + u * 32 + lane;
      if (v < v_end) {
        const uint4 wv = ring[warp][j % kStages][u][lane];
#pragma unroll
        for (int m = 0; m < M; ++m) acc[m] = dot8(wv, __ldg(x + m * ldx_v + v), acc[m]);
      }
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
  }
  if (splits > 1) {
    if (lane == 0) {
#pragma unroll
      for (int m = 0; m < M; ++m) red[warp][m] = acc[m];
    }
    __syncthreads();
    if (part != 0) return;
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float total = 0.0f;
      for (int s2 = 0; s2 < splits; ++s2) total += red[warp + s2][m];  // fixed order: deterministic
      acc[m] = total;
    }
  }
  if (row_ok && lane < M) {
    float v = 0.0f;
#pragma unroll
    for (int m = 0; m < M; ++m)
      if (m == lane) v = acc[m];
    if (p.bias != nullptr) v += __bfloat162float(static_cast<const __nv_bfloat16*>(p.bias)[row]);
    if (p.out_f32)
      static_cast<float*>(p.y)[lane * p.ldy + row] = v;
    else
      static_cast<__nv_bfloat16*>(p.y)[lane * p.ldy + row] = __float2bfloat16_rn(v);
  }
}

template <int M>
int resident_warps_per_sm() {
  static const int warps = [] {
    int blocks = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gemv_async_kernel<M>, kWarpsPerBlock * 32, 0) !=
        cudaSuccess) {
      (void)cudaGetLastError();
      blocks = 6;
    }
    return blocks * kWarpsPerBlock;
  }();
  return warps;
}

}  // namespace

int gemv_async_splits(int64_t m, int64_t n, int64_t k, int num_sms) {
  // As gemv_warp_splits: best last-wave fill of row parts over resident warps,
  // each part keeping at least the ring's worth of loads.
  if (num_sms <= 0 || m < 1 || m > kGemvWarpMaxM) return 1;
  int per_sm = 0;
  switch (m) {
    case 1: per_sm = resident_warps_per_sm<1>(); break;
    case 2: per_sm = resident_warps_per_sm<2>(); break;
    case 3: per_sm = resident_warps_per_sm<3>(); break;
    default: per_sm = resident_warps_per_sm<4>(); break;
  }
  const int64_t wave = static_cast<int64_t>(per_sm) * num_sms;
  int best = 1;
  double best_fill = 0.0;
  for (int s = 1; s <= kWarpsPerBlock; s *= 2) {
    if (s > 1 && k / s < 32 * kPerStage * kStages * 8) break;
    const int64_t units = n * s;
    const int64_t waves = (units + wave - 1) / wave;
    const double fill = static_cast<double>(units) / static_cast<double>(waves * wave);
    if (fill > best_fill + 0.02) {
      best = s;
      best_fill = fill;
    }
  }
  return best;
}

Status launch_gemv_async(const GemvWarpParams& p, cudaStream_t stream) {
  if (p.splits != 1 && p.splits != 2 && p.splits != 4)
    return Status::Error(StrCat() << "gemv_async: splits = " << p.splits << " is not 1, 2 or 4");
  const int64_t rows_per_block = kWarpsPerBlock / p.splits;
  const int64_t blocks = (p.n + rows_per_block - 1) / rows_per_block;
  if (blocks > 0x7fffffff) return Status::Error(StrCat() << "gemv_async: n = " << p.n << " is too large");
  const dim3 grid(static_cast<unsigned>(blocks));
  const int threads = kWarpsPerBlock * 32;
  switch (p.m) {
    case 1: gemv_async_kernel<1><<<grid, threads, 0, stream>>>(p); break;
    case 2: gemv_async_kernel<2><<<grid, threads, 0, stream>>>(p); break;
    case 3: gemv_async_kernel<3><<<grid, threads, 0, stream>>>(p); break;
    case 4: gemv_async_kernel<4><<<grid, threads, 0, stream>>>(p); break;
    default:
      return Status::Error(StrCat() << "gemv_async: m = " << p.m << " is outside [1, " << kGemvWarpMaxM << "]");
  }
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda::detail
