// Warp-per-row GEMV for the smallest batches (m <= kGemvWarpMaxM): each warp
// streams one whole row of w (16-byte ld.global.nc.L1::no_allocate loads,
// kLoads independent loads per lane in flight per iteration, predicated so the
// tail costs no extra round trip), x rows come through L1 (__ldg; every warp of
// the SM reads the same x), f32 FMAs, a shuffle reduction, bias fused.
// One warp per row keeps all SMs evenly loaded for any n in the thousands (a
// row is the unit of work, not a 16-row tile) without a cross-block reduction.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda::detail {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kLoads = 8;

__device__ __forceinline__ uint4 load_stream(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

__device__ __forceinline__ float2 bf2(uint32_t v) {
  __nv_bfloat162 h;
  static_assert(sizeof(h) == sizeof(v), "bf16x2");
  memcpy(&h, &v, sizeof(v));
  return __bfloat1622float2(h);
}

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x, float acc) {
  const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
  const uint32_t xs[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 a = bf2(ws[i]), b = bf2(xs[i]);
    acc = fmaf(a.x, b.x, acc);
    acc = fmaf(a.y, b.y, acc);
  }
  return acc;
}

template <int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) gemv_warp_kernel(GemvWarpParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= p.n) return;
  const uint4* w = reinterpret_cast<const uint4*>(p.w) + row * (p.k / 8);
  const int64_t nv = p.k / 8;
  const int64_t ldx_v = p.ldx / 8;
  const uint4* x = reinterpret_cast<const uint4*>(p.x);
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  for (int64_t v0 = lane; v0 < nv; v0 += 32 * kLoads) {
    uint4 wv[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int64_t v = v0 + 32 * u;
      wv[u] = v < nv ? load_stream(w + v) : zero;
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int64_t v = v0 + 32 * u;
      if (v < nv) {
#pragma unroll
        for (int m = 0; m < M; ++m) acc[m] = dot8(wv[u], __ldg(x + m * ldx_v + v), acc[m]);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
  }
  if (lane < M) {
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

}  // namespace

Status launch_gemv_warp(const GemvWarpParams& p, cudaStream_t stream) {
  const int64_t blocks = (p.n + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7fffffff) return Status::Error(StrCat() << "gemv: n = " << p.n << " is too large");
  const dim3 grid(static_cast<unsigned>(blocks));
  const int threads = kWarpsPerBlock * 32;
  switch (p.m) {
    case 1: gemv_warp_kernel<1><<<grid, threads, 0, stream>>>(p); break;
    case 2: gemv_warp_kernel<2><<<grid, threads, 0, stream>>>(p); break;
    case 3: gemv_warp_kernel<3><<<grid, threads, 0, stream>>>(p); break;
    case 4: gemv_warp_kernel<4><<<grid, threads, 0, stream>>>(p); break;
    default:
      return Status::Error(StrCat() << "gemv_warp: m = " << p.m << " is outside [1, " << kGemvWarpMaxM << "]");
  }
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda::detail
