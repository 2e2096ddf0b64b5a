// Warp GEMV with the SwiGLU epilogue (decode gate_up, m <= kGemvWarpMaxM):
// swiglu_out[i, j] = bf16(silu(x_i · w[j] + b[j]) * (x_i · w[I + j] + b[I + j]))
// for a [2I, k] weight (gate rows [0, I), up rows [I, 2I)).
//
// Each warp streams BOTH rows of its pair (gate row j and up row I + j) over
// its 1/S of k, S = p.splits in {1, 2, 4} warps per pair. So every 16-byte x
// chunk is read once for two weight rows, a pair needs no shared-memory
// exchange at S = 1, and S = 4 works (a block of 4 warps may hold one pair).
// The weight loads in flight per lane stay those of the plain kernels (4 + 4,
// or 8 + 8 for the deep variant) and the PDL pattern is theirs: trigger, the
// first weight loads, wait, then x. H200, 8-launch PDL chains
// (ds_gemv_rows_bench --table swiglu, batch 58): 7B gate_up 62.9 us at S = 2
// against 64.9-65.9 for the kernels that held gate and up rows in different
// warps; 32B 127.0 vs 130.0-131.0; 32B at TP 2 65.7 vs 69.1-69.8.
//
// Each row's sum is formed as in the plain warp kernel (per lane in increasing
// k, shuffle tree, the S parts added in order), so the result equals that of the
// plain kernel with the same S followed by silu(g) * u in f32.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/gemv_common.cuh"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda::detail {
namespace {

constexpr int kWarpsPerBlock = kGemvRowWarpsPerBlock;
constexpr int kLoads = 4;      // loads in flight per lane and row (x 2 rows)
constexpr int kDeepLoads = 8;  // the deep variant (m = 1)

// Blocks per SM the m = 1 kernels are compiled for: 8 (64 registers; at the
// plain kernel's 9, i.e. 56 registers, the second row's pointer and sums spill)
// and 5 for the deep variant (94 registers).
template <int M, int LOADS>
constexpr int kMinBlocks = M != 1 ? 1 : (LOADS == kLoads ? 8 : 5);

template <int M, int LOADS>
__global__ void __launch_bounds__(kWarpsPerBlock * 32, (kMinBlocks<M, LOADS>)) gemv_swiglu_kernel(GemvWarpParams p) {
  __shared__ float red[kWarpsPerBlock][2 * M];
  pdl_trigger();
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int splits = p.splits;
  const int part = warp % splits;
  const int64_t half = p.n / 2;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * (kWarpsPerBlock / splits) + warp / splits;
  const bool ok = j < half;
  const int64_t nv = p.k / 8;
  const int64_t chunk = (nv + splits - 1) / splits;
  const int64_t v_begin = part * chunk;
  const int64_t v_end = !ok ? v_begin : (v_begin + chunk < nv ? v_begin + chunk : nv);
  const uint4* wg = reinterpret_cast<const uint4*>(p.w) + (ok ? j : 0) * nv;
  const uint4* wu = reinterpret_cast<const uint4*>(p.w) + (ok ? half + j : 0) * nv;
  const uint4* x = reinterpret_cast<const uint4*>(p.x);
  const int64_t ld_v = p.ldx / 8;
  float ag[M], au[M];
#pragma unroll
  for (int m = 0; m < M; ++m) ag[m] = au[m] = 0.0f;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  uint4 gv[LOADS], uv[LOADS];
  auto load = [&](int64_t v0) {
#pragma unroll
    for (int u = 0; u < LOADS; ++u) {
      const int64_t v = v0 + 32 * u;
      gv[u] = v < v_end ? gemv_load_stream(wg + v) : zero;
      uv[u] = v < v_end ? gemv_load_stream(wu + v) : zero;
    }
  };
  load(v_begin + lane);
  pdl_wait();
  double nin_partial = 0.0;  // deferred RMSNorm (norm_in, m = 1)
  if constexpr (M == 1) nin_partial = deferred_norm_partial(p.nin_slot, lane);
  for (int64_t v0 = v_begin + lane; v0 < v_end; v0 += 32 * LOADS) {
#pragma unroll
    for (int u = 0; u < LOADS; ++u) {
      const int64_t v = v0 + 32 * u;
      if (v < v_end) {
#pragma unroll
        for (int m = 0; m < M; ++m) {
          const uint4 xv = __ldg(x + m * ld_v + v);
          ag[m] = gemv_dot8(gv[u], xv, ag[m]);
          au[m] = gemv_dot8(uv[u], xv, au[m]);
        }
      }
    }
    load(v0 + 32 * LOADS);
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      ag[m] += __shfl_xor_sync(0xffffffffu, ag[m], off);
      au[m] += __shfl_xor_sync(0xffffffffu, au[m], off);
    }
  }
  float nscale = 1.0f;  // deferred RMSNorm of x (norm_in; m = 1, checked on the host)
  if constexpr (M == 1)
    if (p.nin_slot != nullptr) nscale = deferred_norm_scale(nin_partial, p.nin_eps, p.k);
  if (!gemv_split_sum<M, true>(ag, au, red, splits, warp, lane)) return;  // the pair's S parts, in order
  if (!ok || lane >= M) return;
  float g = 0.0f, u = 0.0f;  // lane m writes x row m (static register indices)
#pragma unroll
  for (int m = 0; m < M; ++m)
    if (m == lane) g = ag[m], u = au[m];
  g *= nscale;
  u *= nscale;
  if (p.bias != nullptr) {
    const __nv_bfloat16* bias = static_cast<const __nv_bfloat16*>(p.bias);
    g += __bfloat162float(bias[j]);
    u += __bfloat162float(bias[half + j]);
  }
  const float silu = g / (1.0f + expf(-g));
  static_cast<__nv_bfloat16*>(p.swiglu_out)[lane * p.ld_swiglu + j] = __float2bfloat16_rn(silu * u);
}

template <int M, int LOADS>
int resident_warps() {
  static const int warps = gemv_resident_warps(gemv_swiglu_kernel<M, LOADS>, 8);
  return warps;
}

}  // namespace

int gemv_swiglu_resident_warps(int64_t m, bool deep) {
  switch (m) {
    case 1: return deep ? resident_warps<1, kDeepLoads>() : resident_warps<1, kLoads>();
    case 2: return resident_warps<2, kLoads>();
    case 3: return resident_warps<3, kLoads>();
    default: return resident_warps<4, kLoads>();
  }
}

Status launch_gemv_swiglu(const GemvWarpParams& p, cudaStream_t stream) {
  if (p.splits != 1 && p.splits != 2 && p.splits != 4)
    return Status::Error(StrCat() << "gemv_swiglu: splits = " << p.splits << " is not 1, 2 or 4");
  if (p.m < 1 || p.m > kGemvWarpMaxM)
    return Status::Error(StrCat() << "gemv_swiglu: m = " << p.m << " is outside [1, " << kGemvWarpMaxM << "]");
  if (p.source != GemvXSource::kX || p.swiglu_out == nullptr || p.n % 2 != 0)
    return Status::Error(StrCat() << "gemv_swiglu: needs x read from memory, swiglu_out and an even n, got n = "
                                  << p.n);
  if (p.nout_slot != nullptr)
    return Status::Error("gemv_swiglu: the deferred RMSNorm output with the SwiGLU epilogue is not implemented");
  if (p.nin_slot != nullptr && p.m > kDeferredNormMaxM)
    return Status::Error(StrCat() << "gemv_swiglu: the deferred RMSNorm needs m <= " << kDeferredNormMaxM);
  const int64_t pairs_per_block = kWarpsPerBlock / p.splits;
  const int64_t blocks = (p.n / 2 + pairs_per_block - 1) / pairs_per_block;
  if (blocks > 0x7fffffff) return Status::Error(StrCat() << "gemv_swiglu: n = " << p.n << " is too large");
  const dim3 grid(static_cast<unsigned>(blocks));
  const int threads = kWarpsPerBlock * 32;
  cudaError_t err = cudaSuccess;
  switch (p.m) {
    case 1:
      err = p.deep ? launch_kernel(gemv_swiglu_kernel<1, kDeepLoads>, grid, threads, 0, stream, p)
                   : launch_kernel(gemv_swiglu_kernel<1, kLoads>, grid, threads, 0, stream, p);
      break;
    case 2: err = launch_kernel(gemv_swiglu_kernel<2, kLoads>, grid, threads, 0, stream, p); break;
    case 3: err = launch_kernel(gemv_swiglu_kernel<3, kLoads>, grid, threads, 0, stream, p); break;
    default: err = launch_kernel(gemv_swiglu_kernel<4, kLoads>, grid, threads, 0, stream, p); break;
  }
  DS_CUDA_RETURN_IF_ERROR(err);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda::detail
