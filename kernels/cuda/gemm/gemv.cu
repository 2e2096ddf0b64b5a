// Small-M GEMM (decode at batch <= kGemvMaxM): y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias).
//
// Decode GEMMs are bound by streaming w once from HBM, so the kernel is built
// around keeping enough 16-byte loads of w in flight, and it does the arithmetic
// on the tensor cores so that m = 1..8 cost the same:
//  * A block owns a tile of 16 output rows (n) and its 8 warps split k. Per
//    32-wide k step a lane (g = lane / 4, t = lane % 4) loads 16 bytes of w row
//    g and of row g + 8 at k + 8t, and 16 bytes of x row g (zeros for g >= m).
//  * Two mma.sync m16n8k16 per step consume these registers as they are: the
//    sum over k is order-free, so the lane's 8 consecutive k values are assigned
//    to the fragment slots {2t, 2t+1, 2t+8, 2t+9} of two MMAs, the same way for
//    A (w rows) and B (x rows, the n8 dimension = the batch). No shuffles and no
//    shared-memory staging of x are needed: each warp reads only its own k slice
//    of x (once per block, from L1/L2), i.e. m/16 of the block's w bytes.
//  * Loads are software-pipelined kUnroll steps ahead (2 * kUnroll 16-byte w
//    loads per lane in flight); w goes through ld.global.nc.L1::no_allocate so it
//    does not evict x from L1.
//  * The 8 warps' 16x8 f32 accumulators are summed in shared memory; bias and
//    residual are added in f32 and the result stored as bf16 or f32 (one rounding).
//  * Few row tiles (n = 3584 gives 224 tiles for 132 SMs) would leave SMs idle
//    or unevenly loaded, so k is also split across blocks (gemv_k_splits: about
//    4 blocks per SM): each split stores its 16x8 partial tile to scratch, and
//    the last block of a tile (arrival counter) adds the splits in split order
//    (deterministic, unlike atomics) and resets the counter for the next launch;
//    only that block runs the epilogue, so the residual is added exactly once.
// kGemvMaxM = 8 (gemm.h): one n8 fragment covers m <= 8 at no extra weight
// traffic. Which kernel serves a problem (this one, the warp-per-row kernels of
// gemv_warp.cu / gemv_async.cu, or cuBLASLt) is measured per problem by
// GemmRunner (H200: cuBLASLt already wins at m >= 4 on most 32B shapes).
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/gemv_common.cuh"
#include "runtime/cuda/l2_prefetch.cuh"
#include "runtime/cuda/pdl.cuh"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda::detail {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerBlock = 16;
constexpr int kUnroll = 4;  // 32-wide k steps loaded ahead per warp
constexpr int kBlocksPerSm = 2;  // __launch_bounds__ minimum (128 registers)

struct StepFrag {
  uint4 wlo, whi, x;
};

__device__ __forceinline__ uint4 load_cached(const __nv_bfloat16* p) {
  return __ldg(reinterpret_cast<const uint4*>(p));
}

__device__ __forceinline__ void mma_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                          uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

struct GemvParams {
  const __nv_bfloat16* x;
  const __nv_bfloat16* w;
  const __nv_bfloat16* bias;
  void* y;
  const void* residual;  // [m, ldy] of y's dtype or null; may equal y
  int64_t m, n, k, ldx, ldy;
  bool out_f32;
  int k_splits;
  bool prefetch_weights;  // GemmArgs::prefetch_weights
  bool early_tail;        // gemv_early_tail(); the residual preload
  float* partials;
  unsigned* counters;
};

// Block b computes row tile b / k_splits over k split b % k_splits.
__global__ void __launch_bounds__(kThreads, kBlocksPerSm) gemv_kernel(GemvParams p) {
  __shared__ float partial[kWarps][32][4];
  __shared__ unsigned arrival;
  pdl_trigger();
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int g = lane >> 2;
  const int t = lane & 3;
  const int64_t tile = blockIdx.x / p.k_splits;
  const int split = static_cast<int>(blockIdx.x % p.k_splits);
  const int64_t row0 = tile * kRowsPerBlock;

  // This warp's contiguous range of 32-wide k steps: split, then warp.
  const int64_t steps = (p.k + 31) / 32;
  const int64_t sp_begin = steps * split / p.k_splits;
  const int64_t sp_steps = steps * (split + 1) / p.k_splits - sp_begin;
  const int64_t s_begin = sp_begin + sp_steps * warp / kWarps;
  const int64_t s_end = sp_begin + sp_steps * (warp + 1) / kWarps;

  const bool lo_ok = row0 + g < p.n;
  const bool hi_ok = row0 + g + 8 < p.n;
  const bool x_ok = g < p.m;
  const __nv_bfloat16* wlo_ptr = p.w + (lo_ok ? (row0 + g) * p.k : 0) + 8 * t;
  const __nv_bfloat16* whi_ptr = p.w + (hi_ok ? (row0 + g + 8) * p.k : 0) + 8 * t;
  const __nv_bfloat16* x_ptr = p.x + (x_ok ? g * p.ldx : 0) + 8 * t;
  const uint4 zero = make_uint4(0, 0, 0, 0);

  auto load_w = [&](StepFrag (&f)[kUnroll], int64_t s0) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t kk = (s0 + u) * 32;
      const bool in = (s0 + u < s_end) && (kk + 8 * t < p.k);
      f[u].wlo = (in && lo_ok) ? gemv_load_stream(wlo_ptr + kk) : zero;
      f[u].whi = (in && hi_ok) ? gemv_load_stream(whi_ptr + kk) : zero;
    }
  };
  auto load_x = [&](StepFrag (&f)[kUnroll], int64_t s0) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t kk = (s0 + u) * 32;
      const bool in = (s0 + u < s_end) && (kk + 8 * t < p.k);
      f[u].x = (in && x_ok) ? load_cached(x_ptr + kk) : zero;
    }
  };
  auto load = [&](StepFrag (&f)[kUnroll], int64_t s0) {
    load_w(f, s0);
    load_x(f, s0);
  };

  float acc0[4] = {0.f, 0.f, 0.f, 0.f};
  float acc1[4] = {0.f, 0.f, 0.f, 0.f};
  StepFrag cur[kUnroll];
  if (p.prefetch_weights && lane < 16 && row0 + lane < p.n && s_end > s_begin) {
    // Row row0 + lane of this warp's k steps, as one bulk prefetch (k % 8 == 0: 16-byte multiples).
    const int64_t k0 = s_begin * 32, k1 = s_end * 32 < p.k ? s_end * 32 : p.k;
    l2_prefetch_bulk(p.w + (row0 + lane) * p.k + k0, static_cast<uint32_t>((k1 - k0) * 2));
  }
  load_w(cur, s_begin);  // weights only before the PDL wait (runtime/cuda/pdl.h)
  // Warp 0's residual, loaded right after the wait so that its round trip
  // overlaps the weight stream instead of adding to the tile's tail.
  // Accumulator i: row g + 8 * (i / 2), column 2t + i % 2 (below). (The bias
  // stays in the epilogue: two more live registers spill at this kernel's 128.)
  float res_v[4] = {0.f, 0.f, 0.f, 0.f};
  pdl_wait();
  if (warp == 0 && p.residual != nullptr && p.early_tail) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t row = row0 + g + 8 * (i / 2), col = 2 * t + (i % 2);
      if (row >= p.n || col >= p.m) continue;
      res_v[i] = gemv_residual_at(p.residual, p.out_f32, col * p.ldy + row);
    }
  }
  load_x(cur, s_begin);
  for (int64_t s = s_begin; s < s_end; s += kUnroll) {
    StepFrag nxt[kUnroll];
    load(nxt, s + kUnroll);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const StepFrag& f = cur[u];
      mma_16816(acc0, f.wlo.x, f.whi.x, f.wlo.y, f.whi.y, f.x.x, f.x.y);
      mma_16816(acc1, f.wlo.z, f.whi.z, f.wlo.w, f.whi.w, f.x.z, f.x.w);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) cur[u] = nxt[u];
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) partial[warp][lane][i] = acc0[i] + acc1[i];
  __syncthreads();
  if (warp != 0) return;
  float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    sum.x += partial[w][lane][0];
    sum.y += partial[w][lane][1];
    sum.z += partial[w][lane][2];
    sum.w += partial[w][lane][3];
  }

  if (p.k_splits > 1) {
    // Publish this split's tile sums; the last block to arrive adds the splits
    // in a fixed order (deterministic) and resets the tile's counter.
    float4* part = reinterpret_cast<float4*>(p.partials) + static_cast<int64_t>(blockIdx.x) * 32;
    __stcg(part + lane, sum);
    __threadfence();
    __syncwarp();
    if (lane == 0) arrival = atomicAdd(p.counters + tile, 1u);
    __syncwarp();
    if (arrival != static_cast<unsigned>(p.k_splits - 1)) return;
    __threadfence();
    const float4* first = reinterpret_cast<const float4*>(p.partials) + tile * p.k_splits * 32;
    sum = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int sp = 0; sp < p.k_splits; ++sp) {
      const float4 v = __ldcg(first + sp * 32 + lane);
      sum.x += v.x;
      sum.y += v.y;
      sum.z += v.z;
      sum.w += v.w;
    }
    if (lane == 0) p.counters[tile] = 0;
  }

  // Accumulator (i): row g + 8 * (i / 2) of the tile, column (= batch row) 2t + i % 2.
  const float vals[4] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t row = row0 + g + 8 * (i / 2);
    const int64_t col = 2 * t + (i % 2);
    if (row >= p.n || col >= p.m) continue;
    float v = vals[i];
    if (p.bias != nullptr) v += __bfloat162float(p.bias[row]);
    const int64_t at = col * p.ldy + row;
    if (p.residual != nullptr) v += p.early_tail ? res_v[i] : gemv_residual_at(p.residual, p.out_f32, at);
    if (p.out_f32)
      static_cast<float*>(p.y)[at] = v;
    else
      static_cast<__nv_bfloat16*>(p.y)[at] = __float2bfloat16_rn(v);
  }
}

__global__ void add_bias_f32_kernel(float* y, const __nv_bfloat16* bias, int64_t m, int64_t n, int64_t ldy) {
  pdl_wait();
  pdl_trigger();
  for (int64_t r = blockIdx.y; r < m; r += gridDim.y)
    for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < n;
         c += static_cast<int64_t>(gridDim.x) * blockDim.x)
      y[r * ldy + c] += __bfloat162float(bias[c]);
}

}  // namespace

size_t gemv_scratch_bytes() {
  return static_cast<size_t>(kGemvMaxSplitBlocks) * 128 * sizeof(float) +
         static_cast<size_t>(kGemvMaxSplitTiles) * sizeof(unsigned);
}

int gemv_k_splits(const GemmArgs& a, int num_sms) {
  // All blocks of a launch are equal work, so the time is set by the number of
  // waves the GPU runs them in: pick the split count (<= 8, each warp keeping
  // at least one full batch of kUnroll k steps) whose block count fills its
  // last wave best, preferring fewer splits on ties. Shapes with many tiles
  // (gate_up, lm_head) fill the waves already and do not split.
  const int64_t tiles = (a.n + kRowsPerBlock - 1) / kRowsPerBlock;
  if (tiles > kGemvMaxSplitTiles || num_sms <= 0) return 1;
  const int64_t wave = kBlocksPerSm * static_cast<int64_t>(num_sms);
  const int64_t min_k_per_split = kWarps * kUnroll * 32;
  const int64_t max_splits = std::min<int64_t>({8, std::max<int64_t>(1, a.k / min_k_per_split),
                                                std::max<int64_t>(1, kGemvMaxSplitBlocks / tiles)});
  int64_t best = 1;
  double best_fill = 0.0;
  for (int64_t s = 1; s <= max_splits; ++s) {
    const int64_t blocks = tiles * s;
    const int64_t waves = (blocks + wave - 1) / wave;
    const double fill = static_cast<double>(blocks) / static_cast<double>(waves * wave);
    if (fill > best_fill + 0.02) {
      best = s;
      best_fill = fill;
    }
  }
  return static_cast<int>(best);
}

GemvKernel gemv_auto_kernel(int64_t m) { return m <= 2 ? GemvKernel::kWarpRows : GemvKernel::kMmaTiles; }

Status launch_gemv(const GemmArgs& a, const GemvScratch& scratch, cudaStream_t stream, int k_splits,
                   GemvKernel kernel) {
  // The RMSNorm prologue with the SwiGLU epilogue runs on the bulk GEMV only.
  if (kernel == GemvKernel::kAuto && a.norm.src != nullptr && a.swiglu_out != nullptr) kernel = GemvKernel::kBulk;
  // The bulk GEMV checks its own operands (prologue, epilogues, m, k, alignment).
  if (kernel == GemvKernel::kBulk) {
    GemvBulkConfig config;
    config.warps = k_splits == 0 ? 8 : k_splits;
    return launch_gemv_bulk(a, config, scratch.num_sms, stream);
  }
  const bool swiglu = a.swiglu_out != nullptr;
  if (swiglu) {
    // As for the prologue: what would read or write out of bounds is re-checked here.
    const std::string reason = swiglu_unsupported_reason(a);
    if (!reason.empty()) return Status::Error(StrCat() << "gemv: the SwiGLU epilogue cannot run: " << reason);
    if (kernel == GemvKernel::kMmaTiles)
      return Status::Error("gemv: the tensor-core GEMV (gemv-mma) has no SwiGLU epilogue; use a warp kernel");
    if (kernel == GemvKernel::kAuto) kernel = GemvKernel::kWarpRows;
    if (kernel == GemvKernel::kWarpAsync && k_splits > 2)
      return Status::Error(StrCat() << "gemv: k_splits = " << k_splits
                                    << " with the SwiGLU epilogue of gemv-async (a block holds a gate/up row pair: 1 or 2)");
    if (k_splits != 0 && k_splits != 1 && k_splits != 2 && k_splits != 4)
      return Status::Error(StrCat() << "gemv: k_splits = " << k_splits << " with the SwiGLU epilogue (1, 2 or 4)");
  }
  if (a.norm_out.slot != nullptr || a.norm_out.x != nullptr || a.norm_in.slot != nullptr) {
    const std::string reason = deferred_norm_unsupported_reason(a);
    if (!reason.empty()) return Status::Error(StrCat() << "gemv: the deferred RMSNorm cannot run: " << reason);
    if (a.norm_out.slot == nullptr && a.norm_out.x != nullptr)
      return Status::Error("gemv: norm_out.x is set but norm_out.slot is null");
    if (a.norm_out.slot != nullptr && (a.norm_out.x == nullptr || a.norm_out.gamma == nullptr))
      return Status::Error("gemv: norm_out.slot is set but norm_out.x or norm_out.gamma is null");
    if (kernel == GemvKernel::kMmaTiles || kernel == GemvKernel::kWarpAsync)
      return Status::Error("gemv: the deferred RMSNorm runs on the warp-row kernels only (not gemv-mma or gemv-async)");
    if (kernel == GemvKernel::kAuto) kernel = GemvKernel::kWarpRows;
  }
  if (kernel == GemvKernel::kAuto) kernel = gemv_auto_kernel(a.m);
  const bool norm = a.norm.src != nullptr;
  const GemvXSource source = !norm                                ? GemvXSource::kX
                             : a.norm.src_dtype == DType::kF32 ? GemvXSource::kNormF32
                                                               : GemvXSource::kNormBF16;
  if (norm) {
    // What would read out of bounds or misaligned is re-checked here (direct callers).
    const std::string reason = norm_prologue_unsupported_reason(a);
    if (!reason.empty()) return Status::Error(StrCat() << "gemv: the RMSNorm prologue cannot run: " << reason);
    if (a.norm.gamma == nullptr) return Status::Error("gemv: norm.src is set but norm.gamma is null");
    if (kernel == GemvKernel::kMmaTiles)
      return Status::Error("gemv: the tensor-core GEMV (gemv-mma) has no RMSNorm prologue; use a warp kernel");
  }
  if (kernel == GemvKernel::kWarpAsync && a.m <= kGemvWarpMaxM) {
    const int splits = k_splits > 0 ? k_splits : gemv_async_splits(a.m, a.n, a.k, scratch.num_sms, source, swiglu);
    return launch_gemv_async(gemv_warp_params(a, splits, false), stream);
  }
  if ((kernel == GemvKernel::kWarpRows || kernel == GemvKernel::kWarpRowsDeep) && a.m <= kGemvWarpMaxM) {
    const bool deep = kernel == GemvKernel::kWarpRowsDeep && a.m == 1;
    const int splits =
        k_splits > 0 ? k_splits : gemv_warp_splits(a.m, a.n, a.k, scratch.num_sms, deep, source, swiglu);
    return launch_gemv_warp(gemv_warp_params(a, splits, deep), stream);
  }
  if (norm) return Status::Error("gemv: internal: no warp kernel for the RMSNorm prologue");
  if (swiglu) return Status::Error(StrCat() << "gemv: no warp kernel for the SwiGLU epilogue at m = " << a.m);
  GemvParams p;
  fill_gemv_operands(a, p);
  const int64_t tiles = (a.n + kRowsPerBlock - 1) / kRowsPerBlock;
  int64_t splits = k_splits > 0 ? k_splits : gemv_k_splits(a, scratch.num_sms);
  if (scratch.partials == nullptr || scratch.counters == nullptr || tiles > kGemvMaxSplitTiles) splits = 1;
  splits = std::max<int64_t>(1, std::min<int64_t>({splits, (a.k + 31) / 32, kGemvMaxSplitBlocks / tiles}));
  p.k_splits = static_cast<int>(splits);
  p.partials = scratch.partials;
  p.counters = scratch.counters;
  const int64_t blocks = tiles * splits;
  if (blocks > 0x7fffffff) return Status::Error(StrCat() << "gemv: n = " << a.n << " is too large");
  DS_CUDA_RETURN_IF_ERROR(launch_kernel(gemv_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream, p));
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

Status launch_add_bias_f32(float* y, const void* bias, int64_t m, int64_t n, int64_t ldy, cudaStream_t stream) {
  if (m == 0 || n == 0) return Status::Ok();
  const int threads = 256;
  const int64_t col_blocks = (n + threads - 1) / threads;
  dim3 grid(static_cast<unsigned>(col_blocks < 1024 ? col_blocks : 1024), static_cast<unsigned>(m < 65535 ? m : 65535));
  DS_CUDA_RETURN_IF_ERROR(launch_kernel(add_bias_f32_kernel, grid, dim3(threads), 0, stream, y,
                                        static_cast<const __nv_bfloat16*>(bias), m, n, ldy));
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda::detail
