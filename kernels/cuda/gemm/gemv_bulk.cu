// The bulk-streaming batch-1 GEMV (sm_90+; kAuto choices gemv-bulk-w8, -w16
// and -w16-6k): y = x · wᵀ (+ bias) (+ residual) at m = 1.
//
// One block per SM for the whole launch. Block b owns the rows
// [n b / B, n (b + 1) / B), i.e. one contiguous byte range of w, cut into
// stages: a stage is a segment of a row (k long: a row is spr segments of up to
// a slot's 16-byte vectors) or a few whole rows (k short). Each of the block's
// W warps has D ring slots of slot_kib KiB in shared memory; its lane 0 fills a
// slot with one bulk copy (cp.async.bulk, no register staging) and the warp
// consumes it, then takes the block's next unclaimed stage (a shared-memory
// counter, so the warps end together) into the slot it has just read. The
// first W x D stages are issued before the PDL wait (weights do not depend on
// the previous kernel); x is staged in shared memory after it (with the RMSNorm
// prologue each block computes x = bf16(h * rstd * gamma) from the norm's
// source h there, the value the norm group would have written). Each
// warp-reduced stage piece goes to a per-block partial array (one float per row
// segment), which the block sums per row in segment order at the end
// (deterministic), adding the bias and the residual in f32 as the warp kernels
// do, with one rounding into y.
//
// Why: the warp-per-row kernels stream a row part per warp from many short
// blocks, and lose 5-8 us per long-k launch to the grid filling up, the dip at
// each wave change and the last wave (docs/PERF.md, sessions 10-13). Here every
// SM streams one contiguous range with 96-128 KiB in flight from start to end
// (ds_gemv_bulk_bench, sessions 14-15).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/gemm/bulk_copy.cuh"
#include "kernels/cuda/gemm/gemm_choice.h"
#include "kernels/cuda/gemm/gemv.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda::detail {
namespace {

constexpr int kSlotsPerBlock = 16;         // W x D ring slots of slot_kib KiB per block
constexpr size_t kHeaderBytes = 256;       // barriers, the norm's warp sums at kRedOffset, the claim counter last
constexpr size_t kRedOffset = 128;
constexpr size_t kPartBytes = 16 << 10;    // most per-block partial sums
constexpr size_t kMaxSmemBytes = 227 << 10;

struct BulkGeometry {
  int64_t n = 0, nv = 0;  // rows (SwiGLU: gate/up pairs, n / 2); 16-byte vectors per row (k / 8)
  int halves = 1;         // 2 with the SwiGLU epilogue: a block streams its gate rows, then its up rows
  int seg = 0;            // vectors per row segment
  int spr = 0;            // segments per row
  int rows_per_stage = 0; // whole rows per stage when spr == 1
  int blocks = 0;
  int64_t rows_max = 0;
  __host__ __device__ int64_t slot_vecs() const { return static_cast<int64_t>(seg) * rows_per_stage; }
};

// DSRT_GEMV_BULK_ALIGN=0: row segments of equal length instead of whole lines (A/B runs).
bool bulk_segments_aligned() {
  static const bool on = [] {
    const char* e = std::getenv("DSRT_GEMV_BULK_ALIGN");
    return !(e != nullptr && std::strcmp(e, "0") == 0);
  }();
  return on;
}

BulkGeometry bulk_geometry(int64_t n, int64_t k, int num_sms, bool swiglu, int slot_kib) {
  const int64_t slot_vecs = int64_t{slot_kib} * 64;  // 16-byte vectors per ring slot
  BulkGeometry g;
  g.halves = swiglu ? 2 : 1;
  n /= g.halves;
  g.n = n, g.nv = k / 8;
  if (g.nv <= slot_vecs) {
    g.spr = 1, g.seg = static_cast<int>(g.nv), g.rows_per_stage = static_cast<int>(slot_vecs / g.nv);
  } else {
    // Segments of a whole number of 128-byte lines (the last one shorter): a bulk
    // copy that starts or ends inside a line makes two copies fetch it (H200, 7B
    // down, k = 18944: 35.4 us per launch with 480-vector segments, 36.8 with
    // 474; 7B decode 255.8 vs 251.8 tok/s; docs/PERF.md, session 15). Rows start
    // on a line when k is a multiple of 64.
    g.spr = static_cast<int>((g.nv + slot_vecs - 1) / slot_vecs);
    int64_t seg = (g.nv + g.spr - 1) / g.spr;
    if (bulk_segments_aligned()) seg = std::min(slot_vecs, (seg + 7) / 8 * 8);
    g.seg = static_cast<int>(seg);
    g.spr = static_cast<int>((g.nv + seg - 1) / seg);
    g.rows_per_stage = 1;
  }
  const int64_t wave = std::max(num_sms, 1);
  int64_t blocks = std::min<int64_t>(n, wave);
  // Enough blocks that a block's partial sums fit kPartBytes (more than one wave
  // only for shapes far past the models': n x spr > 4096 x num_sms).
  while ((n + blocks - 1) / blocks * g.halves * g.spr * 4 > static_cast<int64_t>(kPartBytes)) blocks += wave;
  g.blocks = static_cast<int>(std::min<int64_t>(blocks, n));
  g.rows_max = (n + g.blocks - 1) / g.blocks;
  return g;
}

size_t bulk_smem_bytes(const BulkGeometry& g) {
  return kHeaderBytes + static_cast<size_t>(g.nv) * 16 + static_cast<size_t>(kSlotsPerBlock) * g.slot_vecs() * 16 +
         static_cast<size_t>(g.rows_max) * g.halves * g.spr * 4;
}

struct BulkParams {
  const uint4* x = nullptr;
  const uint4* w = nullptr;
  const __nv_bfloat16* bias = nullptr;
  const void* residual = nullptr;
  void* y = nullptr;
  bool out_f32 = false;
  __nv_bfloat16* swiglu_out = nullptr;  // halves == 2: y[j] = bf16(silu(gate_j) * up_j) here
  const void* norm_src = nullptr;       // RMSNorm prologue: x is not read
  bool norm_f32 = true;
  const uint4* gamma = nullptr;
  float eps = 0.0f;
};

// Eight values of the norm's source h (f32 or bf16) at 16-byte vector v of x.
__device__ __forceinline__ void load_h8(const BulkParams& p, int64_t v, float (&h)[8]) {
  if (p.norm_f32) {
    const float4* s = static_cast<const float4*>(p.norm_src) + 2 * v;
    const float4 a = __ldg(s), b = __ldg(s + 1);
    h[0] = a.x, h[1] = a.y, h[2] = a.z, h[3] = a.w, h[4] = b.x, h[5] = b.y, h[6] = b.z, h[7] = b.w;
  } else {
    const uint4 u = __ldg(static_cast<const uint4*>(p.norm_src) + v);
    const __nv_bfloat162* b = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 f = __bfloat1622float2(b[e]);
      h[2 * e] = f.x, h[2 * e + 1] = f.y;
    }
  }
}

// x = bf16(h * rstd * gamma) with rstd = rsqrt(mean(h^2) + eps), as dscc's
// generated rms_norm computes it (f32, one rounding), into xs; red holds W floats.
template <int W>
__device__ void stage_normed_x(const BulkParams& p, int64_t nv, uint4* xs, float* red) {
  float ss = 0.0f;
  for (int64_t v = threadIdx.x; v < nv; v += W * 32) {
    float h[8];
    load_h8(p, v, h);
#pragma unroll
    for (int i = 0; i < 8; ++i) ss = fmaf(h[i], h[i], ss);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < W; ++w) total += red[w];  // fixed order: every block gets the same rstd
  const float rstd = rsqrtf(total / static_cast<float>(nv * 8) + p.eps);
  for (int64_t v = threadIdx.x; v < nv; v += W * 32) {
    float h[8];
    load_h8(p, v, h);
    const uint4 gv = __ldg(p.gamma + v);
    const __nv_bfloat162* gh = reinterpret_cast<const __nv_bfloat162*>(&gv);
    uint4 out;
    __nv_bfloat162* oh = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 g = __bfloat1622float2(gh[e]);
      oh[e] = __floats2bfloat162_rn(h[2 * e] * rstd * g.x, h[2 * e + 1] * rstd * g.y);
    }
    xs[v] = out;
  }
}

__device__ __forceinline__ float residual_value(const void* residual, bool f32, int64_t at) {
  return f32 ? static_cast<const float*>(residual)[at]
             : __bfloat162float(static_cast<const __nv_bfloat16*>(residual)[at]);
}

template <int W, int D>
__global__ void __launch_bounds__(W * 32) gemv_bulk_kernel(BulkParams p, BulkGeometry g) {
  static_assert(W * D == kSlotsPerBlock && W * D * 8 <= kRedOffset && kRedOffset + W * 4 + 4 <= kHeaderBytes,
                "ring layout");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) unsigned char smem[];
  uint64_t* bars = reinterpret_cast<uint64_t*>(smem);
  unsigned* claim = reinterpret_cast<unsigned*>(smem + kHeaderBytes) - 1;
  uint4* xs = reinterpret_cast<uint4*>(smem + kHeaderBytes);
  const int64_t slot_vecs = g.slot_vecs();
  uint4* ring = xs + g.nv;
  float* part = reinterpret_cast<float*>(ring + W * D * slot_vecs);
  pdl_trigger();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t r0 = g.n * blockIdx.x / g.blocks, r1 = g.n * (blockIdx.x + 1) / g.blocks;
  const int64_t rows = r1 - r0;
  // Virtual rows: [0, rows) are the block's rows (gate rows with SwiGLU), [rows, 2 rows) its up rows.
  const int64_t half_stages = g.spr > 1 ? rows * g.spr : (rows + g.rows_per_stage - 1) / g.rows_per_stage;
  const int64_t stages = half_stages * g.halves;
  uint64_t* my_bars = bars + warp * D;
  uint4* my_slots = ring + static_cast<int64_t>(warp) * D * slot_vecs;
  // First vector of virtual row vr in w.
  auto row_base = [&](int64_t vr) -> int64_t {
    return (vr < rows ? r0 + vr : g.n + r0 + (vr - rows)) * g.nv;
  };
  // Stage i: its first vector in w, its length in vectors, and its first virtual row.
  auto span = [&](int64_t i, int64_t& off, int64_t& len, int64_t& vrow) {
    if (g.spr > 1) {
      vrow = i / g.spr;
      const int64_t piece = i - vrow * g.spr;
      off = row_base(vrow) + piece * g.seg;
      len = min(static_cast<int64_t>(g.seg), g.nv - piece * g.seg);
    } else {
      const int64_t h = i / half_stages, local = i - h * half_stages;
      vrow = h * rows + local * g.rows_per_stage;
      off = row_base(vrow);
      len = min(static_cast<int64_t>(g.rows_per_stage), rows - local * g.rows_per_stage) * g.nv;
    }
  };
  auto issue = [&](int d, int64_t i) {
    int64_t off, len, vrow;
    span(i, off, len, vrow);
    mbar_arrive_expect_tx(&my_bars[d], static_cast<uint32_t>(len * 16));
    bulk_load_evict_first(my_slots + d * slot_vecs, p.w + off, static_cast<uint32_t>(len * 16), &my_bars[d]);
  };
  int64_t cur[D];
#pragma unroll
  for (int d = 0; d < D; ++d) cur[d] = warp + static_cast<int64_t>(d) * W;
  if (lane == 0) {
#pragma unroll
    for (int d = 0; d < D; ++d) mbar_init(&my_bars[d], 1);
    mbar_init_fence();
#pragma unroll
    for (int d = 0; d < D; ++d)
      if (cur[d] < stages) issue(d, cur[d]);
  }
  pdl_wait();
  if (p.norm_src == nullptr) {
    for (int64_t v = threadIdx.x; v < g.nv; v += W * 32) xs[v] = __ldg(p.x + v);
  } else {
    stage_normed_x<W>(p, g.nv, xs, reinterpret_cast<float*>(smem + kRedOffset));
  }
  if (threadIdx.x == 0) *claim = W * D;
  __syncthreads();
  uint32_t phase = 0;
  for (bool any = true; any;) {
    any = false;
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const int64_t i = cur[d];
      if (i >= stages) continue;
      any = true;
      mbar_wait(&my_bars[d], (phase >> d) & 1u);
      phase ^= 1u << d;
      const uint4* st = my_slots + d * slot_vecs;
      int64_t off, len, vrow;
      span(i, off, len, vrow);
      const int64_t pieces = g.spr > 1 ? 1 : len / g.nv;  // one row segment, or whole rows
      const int64_t piece_len = g.spr > 1 ? len : g.nv;
      const uint4* xc = xs + (g.spr > 1 ? (i % g.spr) * g.seg : 0);
      for (int64_t q = 0; q < pieces; ++q) {
        const uint4* ws = st + q * piece_len;
        float a0 = 0.0f, a1 = 0.0f;
#pragma unroll 4
        for (int64_t v = lane; v < piece_len; v += 32) {
          const uint4 wv = ws[v], xv = xc[v];
          const __nv_bfloat162* wh = reinterpret_cast<const __nv_bfloat162*>(&wv);
          const __nv_bfloat162* xh = reinterpret_cast<const __nv_bfloat162*>(&xv);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float2 wf = __bfloat1622float2(wh[e]), xf = __bfloat1622float2(xh[e]);
            a0 = fmaf(wf.x, xf.x, a0);
            a1 = fmaf(wf.y, xf.y, a1);
          }
        }
        float acc = a0 + a1;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) part[g.spr > 1 ? i : vrow + q] = acc;  // [virtual row][segment]
      }
      // The slot is read by every lane: refill it with the block's next stage.
      __syncwarp();
      unsigned next = 0;
      if (lane == 0) next = atomicAdd(claim, 1u);
      next = __shfl_sync(0xffffffffu, next, 0);
      if (lane == 0 && next < stages) {
        fence_proxy_async_shared();
        issue(d, next);
      }
      cur[d] = next;
    }
  }
  __syncthreads();
  auto row_sum = [&](int64_t vr) {
    float v = 0.0f;
    for (int s = 0; s < g.spr; ++s) v += part[vr * g.spr + s];
    return v;
  };
  for (int64_t rl = threadIdx.x; rl < rows; rl += W * 32) {
    const int64_t row = r0 + rl;
    float v = row_sum(rl);
    if (p.bias != nullptr) v += __bfloat162float(p.bias[row]);
    if (g.halves == 2) {  // SwiGLU: as gemv_swiglu.cu, silu(g) * u in f32
      float u = row_sum(rows + rl);
      if (p.bias != nullptr) u += __bfloat162float(p.bias[g.n + row]);
      p.swiglu_out[row] = __float2bfloat16_rn(v / (1.0f + expf(-v)) * u);
      continue;
    }
    if (p.residual != nullptr) v += residual_value(p.residual, p.out_f32, row);
    if (p.out_f32)
      static_cast<float*>(p.y)[row] = v;
    else
      static_cast<__nv_bfloat16*>(p.y)[row] = __float2bfloat16_rn(v);
  }
#else
  __trap();
#endif
}

template <int W, int D>
Status launch_bulk(const BulkParams& p, const BulkGeometry& g, size_t smem, cudaStream_t stream) {
  // The kernel's shared-memory limit, raised once per device to the most any shape needs.
  static std::atomic<uint64_t> raised{0};
  int dev = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&dev));
  const uint64_t bit = uint64_t{1} << (dev & 63);
  if ((raised.load(std::memory_order_acquire) & bit) == 0) {
    DS_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(gemv_bulk_kernel<W, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(kMaxSmemBytes)));
    raised.fetch_or(bit, std::memory_order_acq_rel);
  }
  DS_CUDA_RETURN_IF_ERROR(launch_kernel(gemv_bulk_kernel<W, D>, dim3(g.blocks), dim3(W * 32), smem, stream, p, g));
  return Status::Ok();
}

}  // namespace

std::string gemv_bulk_unsupported_reason(const GemmArgs& a) {
  if (a.m != 1) return StrCat() << "m = " << a.m << " (batch 1 only)";
  if (a.norm.src != nullptr) {
    GemmArgs plain = a;
    plain.swiglu_out = nullptr;
    const std::string reason = norm_prologue_unsupported_reason(plain);
    if (!reason.empty()) return "the RMSNorm prologue: " + reason;
  }
  if (a.swiglu_out != nullptr) {
    GemmArgs plain = a;
    plain.norm = NormPrologue{};  // the warp kernels' limit; this kernel stages x first
    const std::string reason = swiglu_unsupported_reason(plain);
    if (!reason.empty()) return "the SwiGLU epilogue: " + reason;
    if (a.norm.src != nullptr) {
      // Other blocks still read src while swiglu_out is written: they must not overlap.
      const uintptr_t s0 = reinterpret_cast<uintptr_t>(a.norm.src), o0 = reinterpret_cast<uintptr_t>(a.swiglu_out);
      const uintptr_t s1 = s0 + static_cast<uintptr_t>(a.k) * (a.norm.src_dtype == DType::kF32 ? 4 : 2);
      const uintptr_t o1 = o0 + static_cast<uintptr_t>(a.n / 2) * 2;
      if (s0 < o1 && o0 < s1) return "the RMSNorm prologue: norm.src overlaps swiglu_out";
    }
  }
  if (a.norm_out.slot != nullptr || a.norm_out.x != nullptr || a.norm_in.slot != nullptr) return "the deferred RMSNorm";
  if (a.k % 8 != 0 || a.k <= 0) return StrCat() << "k = " << a.k << " (a positive multiple of 8)";
  if (a.k > kGemvBulkMaxK)
    return StrCat() << "k = " << a.k << " > " << kGemvBulkMaxK << " (x is staged in shared memory)";
  if ((a.norm.src == nullptr && pointer_alignment(a.x) < 16) || pointer_alignment(a.w) < 16)
    return "x and w must be 16-byte aligned";
  return "";
}

Status launch_gemv_bulk(const GemmArgs& a, const GemvBulkConfig& config, int num_sms, cudaStream_t stream) {
  const std::string reason = gemv_bulk_unsupported_reason(a);
  if (!reason.empty()) return Status::Error(StrCat() << "gemv-bulk: cannot run: " << reason);
  if (config.warps != 8 && config.warps != 16)
    return Status::Error(StrCat() << "gemv-bulk: " << config.warps << " warps (8 or 16)");
  if (config.slot_kib < 2 || config.slot_kib > 8)
    return Status::Error(StrCat() << "gemv-bulk: ring slots of " << config.slot_kib << " KiB (2 to 8)");
  if (!pdl_device_ok()) return Status::Error("gemv-bulk: needs an sm_90+ device (bulk copies)");
  if (a.n == 0) return Status::Ok();
  const bool swiglu = a.swiglu_out != nullptr;
  const bool norm = a.norm.src != nullptr;
  if ((a.x == nullptr && !norm) || a.w == nullptr || (a.y == nullptr && !swiglu) || (norm && a.norm.gamma == nullptr))
    return Status::Error("gemv-bulk: null x, w, y or norm.gamma");
  const BulkGeometry g = bulk_geometry(a.n, a.k, num_sms, swiglu, config.slot_kib);
  const size_t smem = bulk_smem_bytes(g);
  if (smem > kMaxSmemBytes)
    return Status::Error(StrCat() << "gemv-bulk: internal: " << smem << " bytes of shared memory for n = " << a.n
                                  << ", k = " << a.k);
  BulkParams p;
  p.x = static_cast<const uint4*>(a.x);
  p.w = static_cast<const uint4*>(a.w);
  p.bias = static_cast<const __nv_bfloat16*>(a.bias);
  p.residual = a.residual;
  p.y = a.y;
  p.out_f32 = a.out_dtype == DType::kF32;
  p.swiglu_out = static_cast<__nv_bfloat16*>(a.swiglu_out);
  p.norm_src = a.norm.src;
  p.norm_f32 = a.norm.src_dtype == DType::kF32;
  p.gamma = static_cast<const uint4*>(a.norm.gamma);
  p.eps = a.norm.eps;
  return config.warps == 8 ? launch_bulk<8, 2>(p, g, smem, stream) : launch_bulk<16, 1>(p, g, smem, stream);
}

}  // namespace ds::cuda::detail
