// Stream-K GEMV for batch-1 decode (m = 1, x read, no prologue/epilogue
// fusions other than bias and residual): one wave of resident warps, each
// streaming an equal contiguous share of the flattened weight w[n, k].
//
// Why: the warp-per-row kernels hand out rows (or row parts) as units of
// work, and a 7B/32B down projection runs three or more waves of them. The
// last units start at random times and each needs a few sequential DRAM
// round trips, so the end of every launch streams with fewer and fewer warps
// (H200 wave-fill sweep, ds_gemv_rows_bench --table fill: the time of a k =
// 18944 GEMV is about 9 us plus n rows at 4.5 TB/s, whatever the wave count).
// Here every warp has the same number of bytes and all start together, so all
// end together: the tail is one round trip, not one unit.
//
// A warp's share starts and ends inside rows. A row covered by one warp is
// finished by it; a row shared by warps g0 < ... < g1 (consecutive) gets each
// warp's partial dot in partials[g0 * slots + (g - g0)], and the warp whose
// arrival on counters[g0] completes the row adds the partials in warp order
// (deterministic: the partition depends on the shape and the grid only) and
// resets the counter for the next launch. g0 identifies the row: a warp is
// the first of at most one shared row.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/gemv_common.cuh"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda::detail {
namespace {

constexpr int kWarps = kGemvRowWarpsPerBlock;
constexpr int kLoads = 8;                  // 16-byte loads in flight per lane
constexpr int kBatch = 32 * kLoads;        // vectors a warp loads per iteration
constexpr int kMinBlocksPerSm = 9;         // 36 resident warps, 56 registers (as gemv_warp)

struct StreamKParams {
  const uint4* w;          // [n * nv] 16-byte vectors, contiguous rows
  const uint4* x;          // [nv]
  const __nv_bfloat16* bias;
  const void* residual;    // y's dtype, or null
  void* y;
  float* partials;         // [warps * slots]
  unsigned* counters;      // [warps], zero between launches
  int nv;                  // k / 8 (>= kBatch)
  int n;
  int64_t total;           // n * nv
  int warps;               // grid warps
  int slots;               // max warps sharing a row
  bool out_f32;
};

// The warp whose share contains flattened vector index `at`.
__device__ __forceinline__ int owner_of(int64_t at, const StreamKParams& p) {
  return static_cast<int>(((at + 1) * p.warps + p.total - 1) / p.total - 1);
}

__device__ __forceinline__ void store_row(const StreamKParams& p, int row, float v) {
  if (p.bias != nullptr) v += __bfloat162float(p.bias[row]);
  if (p.residual != nullptr) v += gemv_residual_at(p.residual, p.out_f32, row);
  if (p.out_f32)
    static_cast<float*>(p.y)[row] = v;
  else
    static_cast<__nv_bfloat16*>(p.y)[row] = __float2bfloat16_rn(v);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// One thread: warp g's sum v of row `row`, which warps g0 < ... < g1 share.
__device__ __forceinline__ void finish_shared_row(const StreamKParams& p, int row, int g, float v) {
  const int64_t first = static_cast<int64_t>(row) * p.nv;
  const int g0 = owner_of(first, p), g1 = owner_of(first + p.nv - 1, p);
  p.partials[static_cast<int64_t>(g0) * p.slots + (g - g0)] = v;
  __threadfence();
  const unsigned arrived = atomicAdd(&p.counters[g0], 1u);
  if (arrived != static_cast<unsigned>(g1 - g0)) return;
  __threadfence();
  float sum = 0.0f;
  for (int j = 0; j <= g1 - g0; ++j) sum += __ldcg(&p.partials[static_cast<int64_t>(g0) * p.slots + j]);
  p.counters[g0] = 0;
  store_row(p, row, sum);
}

__global__ void __launch_bounds__(kWarps * 32, kMinBlocksPerSm) gemv_streamk_kernel(StreamKParams p) {
  pdl_trigger();
  const int lane = threadIdx.x & 31;
  int g = blockIdx.x * kWarps + (threadIdx.x >> 5);
  const int begin = static_cast<int>(static_cast<int64_t>(g) * p.total / p.warps);
  const int end = static_cast<int>(static_cast<int64_t>(g + 1) * p.total / p.warps);
  if (begin >= end) return;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  const uint4* w = p.w + lane;
  uint4 wv[kLoads];
  auto load = [&](int b) {
#pragma unroll
    for (int u = 0; u < kLoads; ++u) wv[u] = b + lane + 32 * u < end ? gemv_load_stream(w + b + 32 * u) : zero;
  };
  load(begin);  // weights only before the wait (PDL)
  pdl_wait();
  // Rows wholly inside the share are stored as they end. The share's first
  // and last rows, when other warps hold part of them, are combined after the
  // loop, once the weight registers are dead (inside it the combination's
  // arithmetic would spill the loads in flight at 56 registers).
  int row_base = begin - begin % p.nv;
  int row_end = min(end, row_base + p.nv);
  float a0 = 0.0f, a1 = 0.0f;  // this row's and (a batch crossing its end) the next one's
  __shared__ float head[kWarps];  // the share's first row's sum when shared (shared memory: no register left)
  float tail = 0.0f;
  for (int b = begin; row_base < end; b += kBatch) {
    const uint4* x0 = p.x + lane - row_base;
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int v = b + lane + 32 * u;
      if (v < end) {
        const bool here = v < row_end;
        const float d = gemv_dot8(wv[u], __ldg(x0 + b + 32 * u - (here ? 0 : p.nv)), here ? a0 : a1);
        a0 = here ? d : a0;
        a1 = here ? a1 : d;
      }
    }
    load(b + kBatch);
    // Warp-uniform. nv >= kBatch: a batch ends at most one whole row, and the
    // row after it only if the share ends there too (a1 then holds its part).
    while (b + kBatch >= row_end && row_base < end) {
      const float v = warp_sum(a0);
      if (row_base < begin)
        head[threadIdx.x >> 5] = v;
      else if (row_base + p.nv > end)
        tail = v;
      else if (lane == 0)
        store_row(p, row_base / p.nv, v);
      a0 = a1;
      a1 = 0.0f;
      row_base += p.nv;
      row_end = min(end, row_base + p.nv);
    }
  }
  if (lane != 0) return;
  g = blockIdx.x * kWarps + (threadIdx.x >> 5);  // recomputed: one register fewer through the loop
  const bool head_shared = begin % p.nv != 0, tail_shared = end % p.nv != 0;
  if (head_shared) finish_shared_row(p, begin / p.nv, g, head[threadIdx.x >> 5]);
  if (tail_shared && !(head_shared && (end - 1) / p.nv == begin / p.nv)) finish_shared_row(p, (end - 1) / p.nv, g, tail);
}

int resident_blocks_per_sm() {
  static const int blocks = gemv_resident_warps(gemv_streamk_kernel, kMinBlocksPerSm) / kWarps;
  return blocks;
}

}  // namespace

std::string gemv_streamk_unsupported_reason(const GemmArgs& a) {
  if (a.m != 1) return StrCat() << "m = " << a.m << " (stream-K GEMV: m = 1 only)";
  if (a.norm.src != nullptr || a.swiglu_out != nullptr || a.norm_out.slot != nullptr || a.norm_in.slot != nullptr)
    return "the RMSNorm prologue, SwiGLU epilogue and deferred RMSNorm are not implemented in the stream-K GEMV";
  if (a.k % 8 != 0 || a.k / 8 < kBatch)
    return StrCat() << "k = " << a.k << " (stream-K GEMV: a multiple of 8, >= " << 8 * kBatch << ")";
  if (a.n * (a.k / 8) >= (int64_t{1} << 31)) return StrCat() << "n * k = " << a.n * a.k << " is too large";
  if (reinterpret_cast<uintptr_t>(a.x) % 16 != 0 || reinterpret_cast<uintptr_t>(a.w) % 16 != 0)
    return "x and w must be 16-byte aligned";
  return "";
}

Status launch_gemv_streamk(const GemmArgs& a, const GemvScratch& scratch, cudaStream_t stream) {
  const std::string reason = gemv_streamk_unsupported_reason(a);
  if (!reason.empty()) return Status::Error(StrCat() << "gemv_streamk: " << reason);
  if (scratch.partials == nullptr || scratch.counters == nullptr || scratch.num_sms <= 0)
    return Status::Error("gemv_streamk: no split scratch (GemvScratch) to combine shared rows");
  StreamKParams p;
  p.w = static_cast<const uint4*>(a.w);
  p.x = static_cast<const uint4*>(a.x);
  p.bias = static_cast<const __nv_bfloat16*>(a.bias);
  p.residual = a.residual;
  p.y = a.y;
  p.partials = scratch.partials;
  p.counters = scratch.counters;
  p.nv = static_cast<int>(a.k / 8);
  p.n = static_cast<int>(a.n);
  p.total = a.n * p.nv;
  p.out_f32 = a.out_dtype == DType::kF32;
  int64_t blocks = static_cast<int64_t>(resident_blocks_per_sm()) * scratch.num_sms;
  // Every warp keeps at least one batch of loads (no empty shares: a row's
  // warps g0..g1 all arrive).
  blocks = std::max<int64_t>(1, std::min<int64_t>(blocks, p.total / (kBatch * kWarps)));
  p.warps = static_cast<int>(blocks * kWarps);
  if (p.warps > kGemvMaxSplitTiles) {
    blocks = kGemvMaxSplitTiles / kWarps;
    p.warps = static_cast<int>(blocks * kWarps);
  }
  // Warps sharing one row: a row (nv vectors) meets at most ceil(nv / share) + 1 shares.
  const int64_t share = p.total / p.warps;
  p.slots = static_cast<int>(share > 0 ? (p.nv + share - 1) / share + 1 : p.warps);
  if (static_cast<int64_t>(p.warps) * p.slots > kGemvMaxSplitBlocks * 128)
    return Status::Error(StrCat() << "gemv_streamk: " << p.warps << " warps x " << p.slots
                                  << " partials exceed the split scratch");
  DS_CUDA_RETURN_IF_ERROR(
      launch_kernel(gemv_streamk_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kWarps * 32), 0, stream, p));
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda::detail
