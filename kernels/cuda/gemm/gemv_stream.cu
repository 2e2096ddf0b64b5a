// Stream-split GEMV for the smallest batches (m <= kGemvWarpMaxM): one wave of
// warps, each streaming an equal contiguous share of w.
//
// The warp-per-row kernels (gemv_warp.cu) hand out rows (or 1/2/4 row parts)
// as work units: with few long rows (the MLP down projection: 3584 rows of
// 37 KB at the 7B shape) the last wave is partly empty and every block waits
// for its slowest warp, so the tail of the launch streams at a fraction of the
// HBM rate. Here w ([n, k], row-major) is cut into 512-byte segments (32 lanes
// x 16 bytes of one row; a row's last segment may be short) and warp g of G
// streams segments [g T / G, (g + 1) T / G) of the T in row order, G being the
// number of warps the GPU holds at once: every warp has the same bytes to load
// and none waits for another.
//
// A warp's share covers whole rows, which it finishes itself (the epilogue of
// gemv_common.cuh: RMSNorm scale, bias, residual, one rounding), plus at most
// a piece of the row it starts in and of the row it ends in. Pieces go to the
// scratch (two slots per warp: the first row's piece, the last row's piece),
// then the warp bumps the row's arrival counter; the warp that arrives last
// adds the row's pieces in warp order (deterministic, unlike atomics),
// finishes the row and resets its counter for the next launch.
//
// Loads: kLoads segments per lane in flight (ld.global.nc.L1::no_allocate), the
// first batch issued before pdl_wait() (weights are immutable); x comes through
// L1 like in the warp kernels (GemvX: plain x or the RMSNorm prologue source).
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/gemv_common.cuh"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda::detail {
namespace {

constexpr int kWarpsPerBlock = kGemvRowWarpsPerBlock;
constexpr int kLoads = 8;
// Floats per piece slot: the M dots, then the M sums of squares (RMSNorm sources).
constexpr int kSlotFloats = 2 * kGemvWarpMaxM;

struct GemvStreamParams {
  GemvWarpParams p;
  float* partials;     // [work_warps][2][kSlotFloats]
  unsigned* counters;  // [n], zero between launches
  int work_warps;      // G: warps with a share (<= the segments, so every share is non-empty)
};

// Blocks per SM the kernels are compiled for (as the warp kernels: the RMSNorm
// sources keep more values live).
template <int M, GemvXSource S>
constexpr int kMinBlocks = M != 1 ? 1 : (S == GemvXSource::kX ? 9 : 8);

template <int M, GemvXSource S>
__global__ void __launch_bounds__(kWarpsPerBlock * 32, (kMinBlocks<M, S>)) gemv_stream_kernel(GemvStreamParams sp) {
  const GemvWarpParams& p = sp.p;
  if (!p.late_trigger) pdl_trigger();
  const int lane = threadIdx.x & 31;
  // Segment indices fit 32 bits (launch_gemv_stream checks n * segments per row < 2^31).
  const int g = static_cast<int>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int G = sp.work_warps;
  if (g >= G) return;
  const int nv = static_cast<int>(p.k / 8);  // 16-byte vectors per row
  const int spr = (nv + 31) / 32;           // segments per row
  const int T = static_cast<int>(p.n) * spr;
  const int s_begin = static_cast<int>(static_cast<int64_t>(g) * T / G);
  const int s_end = static_cast<int>(static_cast<int64_t>(g + 1) * T / G);
  const int first_row = s_begin / spr, last_row = (s_end - 1) / spr;
  const uint4* w = reinterpret_cast<const uint4*>(p.w);
  const GemvX<S, M> xs(p);

  // Load cursor (row, segment in row), one segment per load.
  int l_row = first_row, l_cs = s_begin - first_row * spr;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  uint4 wv[kLoads];
  auto load = [&](int s0) {
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int v = l_cs * 32 + lane;
      wv[u] = s0 + u < s_end && v < nv ? gemv_load_stream(w + static_cast<int64_t>(l_row) * nv + v) : zero;
      if (++l_cs == spr) {
        l_cs = 0;
        ++l_row;
      }
    }
  };
  load(s_begin);
  pdl_wait();
  if (p.late_trigger) pdl_trigger();

  float acc[M], ss[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = ss[m] = 0.0f;
  auto reduce = [&] {
#pragma unroll
    for (int m = 0; m < M; ++m) {
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) {
        acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
        if constexpr (S != GemvXSource::kX) ss[m] += __shfl_xor_sync(0xffffffffu, ss[m], off);
      }
    }
  };
  // A piece of `row` ends here: the row's whole (finish it) or slot 0/1 of this warp.
  auto piece_done = [&](int row, bool whole, int slot) {
    reduce();
    if (whole) {
      gemv_finish_row<S, M>(p, acc, ss, row, lane);
    } else if (lane == 0) {
      float* q = sp.partials + (static_cast<int64_t>(g) * 2 + slot) * kSlotFloats;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        q[m] = acc[m];
        q[kGemvWarpMaxM + m] = ss[m];
      }
    }
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m] = ss[m] = 0.0f;
  };

  // Compute cursor; a row that ends inside the share is whole iff it also began inside it.
  int c_row = first_row, c_cs = s_begin - first_row * spr;
  for (int s0 = s_begin; s0 < s_end; s0 += kLoads) {
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      if (s0 + u >= s_end) break;
      const int v = c_cs * 32 + lane;
      if (v < nv) xs.step(wv[u], v, acc, ss);
      if (++c_cs == spr) {
        piece_done(c_row, c_row * spr >= s_begin, 0);
        c_cs = 0;
        ++c_row;
      }
    }
    load(s0 + kLoads);
  }
  // The share ended inside last_row: its piece (slot 0 when it is also the first row).
  const bool tail_piece = c_cs != 0;
  if (tail_piece) piece_done(last_row, false, last_row == first_row ? 0 : 1);
  const bool head_piece = first_row * spr < s_begin;  // the first row began in an earlier share

  // Rows with pieces: arrive; the last warp to arrive adds the pieces in warp order.
  auto owner = [&](int seg) {  // the share holding segment seg
    return static_cast<int>((static_cast<int64_t>(seg + 1) * G - 1) / T);
  };
  auto arrive = [&](int row) {
    unsigned arrival = 0;
    if (lane == 0) arrival = atomicAdd(sp.counters + row, 1u);
    arrival = __shfl_sync(0xffffffffu, arrival, 0);
    const int g0 = owner(row * spr), g1 = owner(row * spr + spr - 1);
    if (arrival != static_cast<unsigned>(g1 - g0)) return;
    __threadfence();  // the other warps' pieces, published before their arrivals
    float tacc[M], tss[M];
#pragma unroll
    for (int m = 0; m < M; ++m) tacc[m] = tss[m] = 0.0f;
    for (int h = g0; h <= g1; ++h) {
      // row is h's first row (slot 0) or its last (slot 1)
      const int slot = static_cast<int>(static_cast<int64_t>(h) * T / G) / spr == row ? 0 : 1;
      const float* q = sp.partials + (static_cast<int64_t>(h) * 2 + slot) * kSlotFloats;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        tacc[m] += __ldcg(q + m);
        tss[m] += __ldcg(q + kGemvWarpMaxM + m);
      }
    }
    if (lane == 0) sp.counters[row] = 0;
    gemv_finish_row<S, M>(p, tacc, tss, row, lane);
  };
  if (head_piece || tail_piece) {
    __threadfence();  // this warp's pieces before its arrivals
    if (head_piece) arrive(first_row);
    if (tail_piece && (last_row != first_row || !head_piece)) arrive(last_row);
  }
}

template <int M, GemvXSource S>
int stream_blocks_per_sm() {
  static const int blocks = [] {
    int b = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, gemv_stream_kernel<M, S>, kWarpsPerBlock * 32, 0) !=
        cudaSuccess) {
      (void)cudaGetLastError();
      b = kMinBlocks<M, S>;
    }
    return std::max(1, b);
  }();
  return blocks;
}

template <int M, GemvXSource S>
cudaError_t launch_m(const GemvStreamParams& sp, int num_sms, cudaStream_t stream) {
  const int64_t nv = sp.p.k / 8;
  const int64_t segments = sp.p.n * ((nv + 31) / 32);
  const int64_t capacity = static_cast<int64_t>(stream_blocks_per_sm<M, S>()) * kWarpsPerBlock * num_sms;
  GemvStreamParams q = sp;
  q.work_warps = static_cast<int>(std::min({capacity, segments, kGemvStreamMaxWarps}));
  const int64_t blocks = (q.work_warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
  return launch_kernel(gemv_stream_kernel<M, S>, dim3(static_cast<unsigned>(blocks)), kWarpsPerBlock * 32, 0, stream,
                       q);
}

template <GemvXSource S>
cudaError_t launch_source(const GemvStreamParams& sp, int num_sms, cudaStream_t stream) {
  switch (sp.p.m) {
    case 1: return launch_m<1, S>(sp, num_sms, stream);
    case 2: return launch_m<2, S>(sp, num_sms, stream);
    default: break;
  }
  if constexpr (S == GemvXSource::kX) {
    if (sp.p.m == 3) return launch_m<3, S>(sp, num_sms, stream);
    return launch_m<4, S>(sp, num_sms, stream);
  }
  return cudaErrorInvalidValue;  // m > kNormPrologueMaxM: rejected by the caller
}

}  // namespace

Status launch_gemv_stream(const GemvWarpParams& p, const GemvScratch& scratch, cudaStream_t stream) {
  if (p.swiglu_out != nullptr) return Status::Error("gemv_stream: no SwiGLU epilogue");
  const int64_t max_m = p.source == GemvXSource::kX ? kGemvWarpMaxM : kNormPrologueMaxM;
  if (p.m < 1 || p.m > max_m)
    return Status::Error(StrCat() << "gemv_stream: m = " << p.m << " is outside [1, " << max_m << "]");
  if (p.n < 1 || p.n > kGemvStreamMaxRows)
    return Status::Error(StrCat() << "gemv_stream: n = " << p.n << " is outside [1, " << kGemvStreamMaxRows << "]");
  if (p.k < 8 || p.k % 8 != 0) return Status::Error(StrCat() << "gemv_stream: k = " << p.k << " is not a multiple of 8");
  if (p.n * ((p.k / 8 + 31) / 32) >= (int64_t{1} << 31))
    return Status::Error(StrCat() << "gemv_stream: " << p.n << " x " << p.k << " has 2^31 or more 512-byte segments");
  if (scratch.stream_partials == nullptr || scratch.stream_counters == nullptr || scratch.num_sms <= 0)
    return Status::Error("gemv_stream: the scratch has no stream-split buffers (gemv_scratch_view)");
  GemvStreamParams sp{p, scratch.stream_partials, scratch.stream_counters, 0};
  cudaError_t err = cudaSuccess;
  switch (p.source) {
    case GemvXSource::kX: err = launch_source<GemvXSource::kX>(sp, scratch.num_sms, stream); break;
    case GemvXSource::kNormF32: err = launch_source<GemvXSource::kNormF32>(sp, scratch.num_sms, stream); break;
    case GemvXSource::kNormBF16: err = launch_source<GemvXSource::kNormBF16>(sp, scratch.num_sms, stream); break;
  }
  DS_CUDA_RETURN_IF_ERROR(err);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda::detail
