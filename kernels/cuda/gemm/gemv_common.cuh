// Device helpers shared by the warp-per-row GEMV kernels (gemv_warp.cu,
// gemv_async.cu, gemv_swiglu.cu; the tensor-core GEMV of gemv.cu takes the
// streaming load and the residual read): the bf16 dot product of 16-byte vectors, the streaming
// weight load, the source of x (GemvX), and the common epilogue (warp
// reduction, the fixed-order sum of a row's k parts through shared memory,
// RMSNorm scale, bias, residual, one rounding, store).
//
// RMSNorm prologue (decode, m <= kNormPrologueMaxM): x[i, j] = src[i, j] *
// rsqrt(mean(src[i, :]^2) + eps) * gamma[j]. Chosen design: the scale is
// factored out of the dot product, y[i, r] = rsqrt(ss_i / k + eps) *
// sum_j w[r, j] * (src[i, j] * gamma[j]), and every warp accumulates both sums
// over the k range it streams anyway (the same src/gamma elements it reads for
// the products): per lane one FMA chain for the dot and one for ss, reduced by
// the same shuffles, and a row split over 2/4 warps sums its (dot, ss) pairs in
// the shared-memory step that already sums the dots. Why not a normalized bf16
// row staged per block in shared memory: that costs a full pass over src per
// block (each block owns only 1-4 rows, so every block would re-read and
// re-reduce the whole src row before its first FMA: ~n/4 extra row reads, a
// block barrier, and an smem footprint of 2*m*k bytes that caps occupancy),
// while the fused sums add no pass, no barrier and no smem; the extra cost is
// L1 traffic (src f32 + gamma instead of bf16 x: 3x the x bytes at m = 1),
// which stays well under L1 bandwidth at m <= 2, and ~2x the FMAs, which a
// bandwidth-bound GEMV has to spare. The normalized x is never rounded to bf16
// (the unfused path rounds it once: the fused result is slightly closer to f32).
// The source is a template parameter: the plain-x kernels are unchanged.
//
// SwiGLU epilogue of gemv-async (decode gate_up, GemmArgs::swiglu_out), a
// template parameter: a block's row slots (kGemvRowWarpsPerBlock / splits of
// them) are taken in pairs, slot 2q streaming gate row j = block * slots / 2 + q
// and slot 2q + 1 up row I + j of the unchanged [2I, k] weight (gemv_warp_row).
// Every warp's reduced sums go through the shared-memory step the split
// epilogue already has, and the gate row's first warp adds the parts of both
// rows (same fixed order as the plain epilogue), then writes bf16(silu(g) * u).
// So splits must be 1 or 2 (4 would leave one row per block). The register
// warp kernels use a faster layout, one warp per pair (gemv_swiglu.cu).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"

namespace ds::cuda::detail {

constexpr int kGemvRowWarpsPerBlock = 4;  // warps per block of the warp-per-row kernels

// Resident warps per SM of a warp-row kernel launched in blocks of
// kGemvRowWarpsPerBlock warps without dynamic shared memory (the figure the
// split rules fill waves with); `fallback_blocks` per SM if the query fails.
// Callers cache it per kernel.
template <typename Kernel>
int gemv_resident_warps(Kernel kernel, int fallback_blocks) {
  int blocks = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kGemvRowWarpsPerBlock * 32, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    blocks = fallback_blocks;
  }
  return blocks * kGemvRowWarpsPerBlock;
}

// The fixed-order sum of a row's (or gate/up pair's) k parts held by `splits`
// consecutive warps, through `red` (shared, [kGemvRowWarpsPerBlock][>= M, or
// >= 2M with TWO]): the per-warp sums a (and b, with TWO) of lane 0 go to `red`,
// and the group's first warp adds them in warp order. Every thread of the block
// calls it; it returns false in the warps that are not their group's first
// (their sums are then spent), true elsewhere (a, b hold the totals). No-op at
// splits = 1.
template <int M, bool TWO, int R>
__device__ __forceinline__ bool gemv_split_sum(float (&a)[M], float (&b)[M], float (*red)[R], int splits, int warp,
                                               int lane) {
  static_assert(R >= (TWO ? 2 * M : M), "split-sum shared-memory width");
  if (splits == 1) return true;
  if (lane == 0) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      red[warp][m] = a[m];
      if constexpr (TWO) red[warp][M + m] = b[m];
    }
  }
  __syncthreads();
  if (warp % splits != 0) return false;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float ta = 0.0f, tb = 0.0f;
    for (int s = 0; s < splits; ++s) {
      ta += red[warp + s][m];
      if constexpr (TWO) tb += red[warp + s][M + m];
    }
    a[m] = ta;
    if constexpr (TWO) b[m] = tb;
  }
  return true;
}

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

__device__ __forceinline__ void gemv_unpack8(const uint4& v, float (&f)[8]) {
  const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __nv_bfloat162 b;
    memcpy(&b, &u[i], 4);
    const float2 t = __bfloat1622float2(b);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

// Where a warp kernel's x values come from; step() adds the products of the
// 16-byte w vector v (8 consecutive k) for the M rows to acc (and, for the
// RMSNorm sources, the squares of src to ss). Reads only after pdl_wait().
template <GemvXSource S, int M>
struct GemvX;

template <int M>
struct GemvX<GemvXSource::kX, M> {
  const uint4* x;
  int64_t ld_v;
  __device__ __forceinline__ explicit GemvX(const GemvWarpParams& p)
      : x(reinterpret_cast<const uint4*>(p.x)), ld_v(p.ldx / 8) {}
  __device__ __forceinline__ void step(const uint4& w, int64_t v, float (&acc)[M], float (&)[M]) const {
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m] = gemv_dot8(w, __ldg(x + m * ld_v + v), acc[m]);
  }
};

template <int M>
struct GemvX<GemvXSource::kNormF32, M> {
  const float4* src;  // 2 float4 per 16-byte w vector
  const uint4* gamma;
  int64_t ld_v;       // row stride in float4
  __device__ __forceinline__ explicit GemvX(const GemvWarpParams& p)
      : src(reinterpret_cast<const float4*>(p.src)), gamma(reinterpret_cast<const uint4*>(p.gamma)),
        ld_v(p.ld_src / 4) {}
  __device__ __forceinline__ void step(const uint4& w, int64_t v, float (&acc)[M], float (&ss)[M]) const {
    float wf[8], gf[8];
    gemv_unpack8(w, wf);
    gemv_unpack8(__ldg(gamma + v), gf);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float4 a = __ldg(src + m * ld_v + 2 * v), b = __ldg(src + m * ld_v + 2 * v + 1);
      const float sf[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        acc[m] = fmaf(wf[i], sf[i] * gf[i], acc[m]);
        ss[m] = fmaf(sf[i], sf[i], ss[m]);
      }
    }
  }
};

template <int M>
struct GemvX<GemvXSource::kNormBF16, M> {
  const uint4* src;
  const uint4* gamma;
  int64_t ld_v;
  __device__ __forceinline__ explicit GemvX(const GemvWarpParams& p)
      : src(reinterpret_cast<const uint4*>(p.src)), gamma(reinterpret_cast<const uint4*>(p.gamma)),
        ld_v(p.ld_src / 8) {}
  __device__ __forceinline__ void step(const uint4& w, int64_t v, float (&acc)[M], float (&ss)[M]) const {
    float wf[8], gf[8];
    gemv_unpack8(w, wf);
    gemv_unpack8(__ldg(gamma + v), gf);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float sf[8];
      gemv_unpack8(__ldg(src + m * ld_v + v), sf);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        acc[m] = fmaf(wf[i], sf[i] * gf[i], acc[m]);
        ss[m] = fmaf(sf[i], sf[i], ss[m]);
      }
    }
  }
};

// The w row a warp of a warp-per-row block streams, and whether it exists.
// Plain: block b holds rows b * R .. b * R + R - 1 (R = kGemvRowWarpsPerBlock /
// splits), `splits` consecutive warps per row. SwiGLU: block b holds output
// columns j = b * R / 2 + q, slot 2q streaming gate row j, slot 2q + 1 up row
// n / 2 + j; both exist iff j < n / 2.
template <bool SWIGLU>
__device__ __forceinline__ int64_t gemv_warp_row(const GemvWarpParams& p, int warp, bool& ok) {
  const int slots = kGemvRowWarpsPerBlock / p.splits;
  const int slot = warp / p.splits;
  if constexpr (SWIGLU) {
    const int64_t half = p.n / 2;
    const int64_t j = static_cast<int64_t>(blockIdx.x) * (slots / 2) + slot / 2;
    ok = j < half;
    return (slot & 1) != 0 ? half + j : j;
  } else {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * slots + slot;
    ok = row < p.n;
    return row;
  }
}

// Shared-memory width of the epilogue's split sums: the dots, and for the
// RMSNorm sources the sums of squares after them.
template <GemvXSource S, int M>
constexpr int kGemvRedWidth = S == GemvXSource::kX ? M : 2 * M;

// Deferred RMSNorm, the reading linear's side (GemmArgs::norm_in, m = 1):
// lane l loads the producer's partial sum of squares l (deferred_norm_partial:
// the SwiGLU kernel right after pdl_wait(), so that the L2 round trip overlaps
// the weight stream; the rows epilogue, whose register goes to GemvRowTail,
// at its start), and
// the epilogue turns the 32 partials into rsqrt(sum / k + eps)
// (deferred_norm_scale: the xor shuffle tree gives every lane the same sum).
__device__ __forceinline__ double deferred_norm_partial(const DeferredNormSlot* slot, int lane) {
  return slot != nullptr ? __ldcg(&slot->ss[lane]) : 0.0;
}
__device__ __forceinline__ float deferred_norm_scale(double partial, float eps, int64_t k) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) partial += __shfl_xor_sync(0xffffffffu, partial, off);
  return rsqrtf(static_cast<float>(partial / static_cast<double>(k)) + eps);
}

// Deferred RMSNorm, the producing linear's side (GemmArgs::norm_out, m = 1):
// output column `row` of x' = bf16(h * gamma) and h^2 added to partial row % 32,
// h being y as stored.
__device__ __forceinline__ void deferred_norm_store(const GemvWarpParams& p, int64_t row, float h) {
  const float g = __bfloat162float(static_cast<const __nv_bfloat16*>(p.nout_gamma)[row]);
  static_cast<__nv_bfloat16*>(p.nout_x)[row] = __float2bfloat16_rn(h * g);
  atomicAdd(&p.nout_slot->ss[row & 31], static_cast<double>(h) * static_cast<double>(h));
}

// Element `at` of a GEMV's residual, which has y's dtype (f32 or bf16), as f32.
__device__ __forceinline__ float gemv_residual_at(const void* residual, bool f32, int64_t at) {
  return f32 ? static_cast<const float*>(residual)[at]
             : __bfloat162float(static_cast<const __nv_bfloat16*>(residual)[at]);
}

// The epilogue's per-row operand that does not depend on the dot products,
// loaded early so that its L2 round trip overlaps the weight stream instead of
// adding to the tail of the last warps: the residual (an earlier kernel's
// output) right after pdl_wait(), or, without one, the bias (a weight) before
// it. One register (the m = 1 kernels have none to spare): with both, the bias
// is read in the epilogue. Lane m < M of a row's first warp holds row m's
// value (the lanes that store in gemv_rows_epilogue); elsewhere it is unused.
// EARLY = false (the RMSNorm-prologue kernels, whose extra live values leave
// no register for it) reads both in the epilogue.
template <bool EARLY>
struct GemvRowTail {
  float early = 0.0f;
  template <int M>
  __device__ __forceinline__ void load_before_wait(const GemvWarpParams& p, int64_t row, bool first_warp, int lane) {
    if (EARLY && p.early_tail && first_warp && lane < M && row < p.n && p.bias != nullptr && p.residual == nullptr)
      early = bf16_at(p.bias, row);
  }
  template <int M>
  __device__ __forceinline__ void load_after_wait(const GemvWarpParams& p, int64_t row, bool first_warp, int lane) {
    if (EARLY && p.early_tail && first_warp && lane < M && row < p.n && p.residual != nullptr)
      early = residual_at(p, lane * p.ldy + row);
  }
  // v + bias, then + residual, as the stores always added them (row `row` of x row m = lane).
  __device__ __forceinline__ float add_to(const GemvWarpParams& p, int64_t row, int lane, float v) const {
    const bool e = EARLY && p.early_tail;
    if (p.bias != nullptr) v += e && p.residual == nullptr ? early : bf16_at(p.bias, row);
    if (p.residual != nullptr) v += e ? early : residual_at(p, lane * p.ldy + row);
    return v;
  }

 private:
  __device__ __forceinline__ static float bf16_at(const void* a, int64_t i) {
    return __bfloat162float(static_cast<const __nv_bfloat16*>(a)[i]);
  }
  __device__ __forceinline__ static float residual_at(const GemvWarpParams& p, int64_t at) {
    return gemv_residual_at(p.residual, p.out_f32, at);
  }
};

// Finishes a warp-per-row GEMV block: reduces each warp's per-lane partial
// sums (and sums of squares, RMSNorm sources), adds the p.splits warps of a row
// (consecutive warps, fixed order: deterministic) through `red` (shared,
// [kGemvRowWarpsPerBlock][kGemvRedWidth]), applies the RMSNorm scale (prologue,
// or the deferred norm's: its partial is read here, deferred_norm_partial), adds the
// bias and the residual (preloaded in `tail`) in f32 and stores y[:, row]
// with one rounding. Every thread of the block must call it (after pdl_wait()).
template <GemvXSource S, int M, int R>
__device__ __forceinline__ void gemv_rows_epilogue(const GemvWarpParams& p, float (&acc)[M], float (&ss)[M],
                                                   float (*red)[R], int64_t row, int warp, int lane,
                                                   const GemvRowTail<S == GemvXSource::kX>& tail) {
  constexpr bool kNorm = S != GemvXSource::kX;
  static_assert(R == kGemvRedWidth<S, M>, "epilogue shared-memory width");
  // Deferred RMSNorm (norm_in; m = 1 and x read, checked on the host). The
  // partial is loaded here, not after the PDL wait: the m = 1 kernel has no
  // register to keep it through the loop next to the preloaded residual.
  float nscale = 1.0f;
  if constexpr (M == 1 && !kNorm)
    if (p.nin_slot != nullptr) nscale = deferred_norm_scale(deferred_norm_partial(p.nin_slot, lane), p.nin_eps, p.k);
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
      if constexpr (kNorm) ss[m] += __shfl_xor_sync(0xffffffffu, ss[m], off);
    }
  }
  if (!gemv_split_sum<M, kNorm>(acc, ss, red, p.splits, warp, lane)) return;
  if (row < p.n && lane < M) {
    float v = 0.0f, sq = 0.0f;
#pragma unroll
    for (int m = 0; m < M; ++m)
      if (m == lane) {
        v = acc[m];
        if constexpr (kNorm) sq = ss[m];
      }
    if constexpr (kNorm) v *= rsqrtf(sq / static_cast<float>(p.k) + p.eps);
    v *= nscale;
    v = tail.add_to(p, row, lane, v);
    const int64_t at = lane * p.ldy + row;
    if (p.out_f32) {
      static_cast<float*>(p.y)[at] = v;
    } else {
      const __nv_bfloat16 b = __float2bfloat16_rn(v);
      static_cast<__nv_bfloat16*>(p.y)[at] = b;
      v = __bfloat162float(b);
    }
    if constexpr (M == 1)
      if (p.nout_slot != nullptr) deferred_norm_store(p, row, v);
  }
}

// The SwiGLU epilogue of a warp-per-row block (see the top of this file):
// reduces each warp's per-lane sums, puts every warp's sums in `red` (shared,
// [kGemvRowWarpsPerBlock][>= M]), and the first warp of each gate row adds its
// row's p.splits parts and the up row's (fixed order, as gemv_rows_epilogue),
// the bias of both rows, and stores swiglu_out[:, j] = bf16(silu(g) * u).
// `row`/`row_ok` from gemv_warp_row<true>. Every thread of the block must call
// it (after pdl_wait(): it writes swiglu_out).
template <int M, int R>
__device__ __forceinline__ void gemv_swiglu_epilogue(const GemvWarpParams& p, float (&acc)[M], float (*red)[R],
                                                     int64_t row, bool row_ok, int warp, int lane) {
  static_assert(R >= M, "epilogue shared-memory width");
  const int splits = p.splits;
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
  }
  if (lane == 0) {
#pragma unroll
    for (int m = 0; m < M; ++m) red[warp][m] = acc[m];
  }
  __syncthreads();
  const int slot = warp / splits;
  // The gate row's first warp finishes the pair (the up row's warps follow it).
  if ((slot & 1) != 0 || warp % splits != 0 || !row_ok || lane >= M) return;
  float g = 0.0f, u = 0.0f;
  for (int s2 = 0; s2 < splits; ++s2) g += red[warp + s2][lane];
  for (int s2 = 0; s2 < splits; ++s2) u += red[warp + splits + s2][lane];
  const int64_t half = p.n / 2;  // row = j here (a gate row)
  if (p.bias != nullptr) {
    const __nv_bfloat16* bias = static_cast<const __nv_bfloat16*>(p.bias);
    g += __bfloat162float(bias[row]);
    u += __bfloat162float(bias[half + row]);
  }
  const float silu = g / (1.0f + expf(-g));
  static_cast<__nv_bfloat16*>(p.swiglu_out)[lane * p.ld_swiglu + row] = __float2bfloat16_rn(silu * u);
}

// Best last-wave fill of n * S row parts over `wave` resident warps for
// S in {1, 2, 4} up to max_splits (ties: fewer splits), each part keeping
// >= min_k_per_part of k.
inline int gemv_rows_best_splits(int64_t n, int64_t k, int64_t wave, int64_t min_k_per_part,
                                 int max_splits = kGemvRowWarpsPerBlock) {
  int best = 1;
  double best_fill = 0.0;
  for (int s = 1; s <= max_splits && s <= kGemvRowWarpsPerBlock; s *= 2) {
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
