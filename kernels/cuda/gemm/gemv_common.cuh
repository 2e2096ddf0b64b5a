// Device helpers shared by the warp-per-row GEMV kernels (gemv_warp.cu,
// gemv_async.cu): the bf16 dot product of 16-byte vectors, the streaming
// weight load, and the common epilogue (warp reduction, the fixed-order sum of
// a row's k parts through shared memory, bias, store).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"

namespace ds::cuda::detail {

constexpr int kGemvRowWarpsPerBlock = 4;  // warps per block of the warp-per-row kernels

// 16 bytes of w that are read once: not kept in L1 (x, read by every warp, stays).
__device__ __forceinline__ uint4 gemv_load_stream(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// acc + sum of the 8 bf16 products of w and x, in f32.
__device__ __forceinline__ float gemv_dot8(const uint4& w, const uint4& x, float acc) {
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

// Finishes a warp-per-row GEMV block: reduces each warp's per-lane partial
// sums, adds the p.splits warps of a row (consecutive warps, fixed order:
// deterministic) through `red` (shared, [kGemvRowWarpsPerBlock][M]), adds the
// bias and stores y[:, row]. Every thread of the block must call it.
template <int M>
__device__ __forceinline__ void gemv_rows_epilogue(const GemvWarpParams& p, float (&acc)[M], float (*red)[M],
                                                   int64_t row, int warp, int lane) {
  const int splits = p.splits;
  const int part = warp % splits;
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
      for (int s2 = 0; s2 < splits; ++s2) total += red[warp + s2][m];
      acc[m] = total;
    }
  }
  if (row < p.n && lane < M) {
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

// Best last-wave fill of n * S row parts over `wave` resident warps for
// S in {1, 2, 4} (ties: fewer splits), each part keeping >= min_k_per_part of k.
inline int gemv_rows_best_splits(int64_t n, int64_t k, int64_t wave, int64_t min_k_per_part) {
  int best = 1;
  double best_fill = 0.0;
  for (int s = 1; s <= kGemvRowWarpsPerBlock; s *= 2) {
    if (s > 1 && k / s < min_k_per_part) break;
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

}  // namespace ds::cuda::detail
