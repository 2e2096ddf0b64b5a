// Generic CUDA-core split-KV decode kernel: any head_dim up to 256 (also the
// per-row path of prefill for head_dim > 128; head_dim <= 128 decode runs on
// tensor cores, decode_mma_attention.cu). One CTA per (work item, KV head x
// query-head chunk of <= 8, split): it streams its share of the item's K/V pages
// through a two-stage cp.async pipeline (16-byte copies), scores every query
// head of the chunk against each key (GQA: each page is read once per chunk),
// keeps an online softmax per head, and writes either the final bf16 output
// (one split) or a partial (m, l, acc) that the combine kernel merges.
#include <cuda_bf16.h>

#include <atomic>
#include <cmath>

#include "kernels/cuda/attention/attention_common.cuh"
#include "kernels/cuda/attention/attention_internal.h"
#include "kernels/cuda/attention/decode_common.cuh"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda::attn {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxHeads = kGenericDecodeHeads;  // query heads per CTA

template <int kDim>
struct DecodeCfg {
  static constexpr int kTile = kDim >= 256 ? 32 : 64;                   // keys per pipeline stage
  static constexpr int kChunks = kDim / 8;                              // 16-byte chunks per row
  static constexpr int kStride = kDim + 8;                              // smem row (bf16), +16 B: no conflicts
  static constexpr int kScoreSlots = kThreads / kTile;                  // head slots, score phase
  static constexpr int kScoreHeads = kMaxHeads / kScoreSlots;           // heads per thread, score phase
  static constexpr int kPvSlots = kThreads / kChunks;                   // head slots, PV phase
  static constexpr int kPvHeads = (kMaxHeads + kPvSlots - 1) / kPvSlots;
  static constexpr int kPStride = kTile + 1;
  static constexpr int kKvElems = 2 * 2 * kTile * kStride;              // 2 stages x (K, V)
  static constexpr size_t kSmemBytes = kKvElems * sizeof(bf16) +
                                       (kMaxHeads * kDim + kMaxHeads * kPStride + 2 * kMaxHeads) * sizeof(float);
  static_assert(kThreads % kTile == 0 && kThreads % kChunks == 0, "thread mapping");
  static_assert(kTile % 32 == 0, "softmax lanes");
};

template <int kDim>
__global__ void __launch_bounds__(kThreads) decode_kernel(const DecodeParams p) {
  pdl_wait();  // PDL-aware launch (runtime/cuda/pdl.h): nothing is read before the wait
  pdl_trigger();
  using C = DecodeCfg<kDim>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* kv_s = reinterpret_cast<bf16*>(smem_raw);
  float* q_s = reinterpret_cast<float*>(kv_s + C::kKvElems);  // [kMaxHeads][kDim], pre-scaled
  float* p_s = q_s + kMaxHeads * kDim;                         // [kMaxHeads][kPStride]
  float* alpha_s = p_s + kMaxHeads * C::kPStride;              // [kMaxHeads]
  float* l_s = alpha_s + kMaxHeads;                            // [kMaxHeads]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  DecodeWork w;
  if (!begin_decode_work(p, w)) return;
  const int item = w.item, kvh = w.kvh, ng = w.ng, head0 = w.head0, split = w.split;
  const int seq = w.seq, row = w.row, kbeg = w.kbeg, kend = w.kend;

  const int32_t* pages = p.page_table + seq * p.pt_stride;
  auto load_tile = [&](int tile, int stage) {
    const int key0 = kbeg + tile * C::kTile;
    bf16* ks = kv_s + stage * 2 * C::kTile * C::kStride;
    bf16* vs = ks + C::kTile * C::kStride;
#pragma unroll 4
    for (int i = tid; i < C::kTile * C::kChunks; i += kThreads) {
      const int j = i / C::kChunks, c = i % C::kChunks;
      const int key = key0 + j;
      const bool valid = key < kend && c * 8 < p.head_dim;
      const int64_t off = valid ? kv_offset(pages, key, p.page_size, p.num_kv_heads, kvh, p.head_dim) + c * 8 : 0;
      cp_async_16(ks + j * C::kStride + c * 8, p.k + off, valid);
      cp_async_16(vs + j * C::kStride + c * 8, p.v + off, valid);
    }
  };

  const int ntiles = (kend - kbeg + C::kTile - 1) / C::kTile;
  load_tile(0, 0);
  cp_async_commit();

  for (int i = tid; i < kMaxHeads * kDim; i += kThreads) {
    const int g = i / kDim, d = i % kDim;
    float val = 0.0f;
    if (g < ng && d < p.head_dim)
      val = __bfloat162float(p.q[row * p.q_ld + static_cast<int64_t>(head0 + g) * p.head_dim + d]) * p.scale_log2;
    q_s[i] = val;
  }

  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};  // heads warp, warp + kWarps
  float acc[C::kPvHeads][8];
#pragma unroll
  for (int h = 0; h < C::kPvHeads; ++h)
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[h][i] = 0.0f;
  const int dim_chunks = p.head_dim / 8;

  for (int t = 0; t < ntiles; ++t) {
    if (t + 1 < ntiles) {
      load_tile(t + 1, (t + 1) & 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* ks = kv_s + (t & 1) * 2 * C::kTile * C::kStride;
    const bf16* vs = ks + C::kTile * C::kStride;
    const int key0 = kbeg + t * C::kTile;

    {  // scores: thread = (key j, head slot)
      const int j = tid % C::kTile, slot = tid / C::kTile;
      float sc[C::kScoreHeads];
#pragma unroll
      for (int h = 0; h < C::kScoreHeads; ++h) sc[h] = 0.0f;
#pragma unroll
      for (int c = 0; c < C::kChunks; ++c) {
        if (c >= dim_chunks) break;
        float kf[8];
        unpack_bf16x8(*reinterpret_cast<const uint4*>(ks + j * C::kStride + c * 8), kf);
#pragma unroll
        for (int h = 0; h < C::kScoreHeads; ++h) {
          if (slot + h * C::kScoreSlots >= ng) break;  // warp-uniform
          const float4* qv = reinterpret_cast<const float4*>(q_s + (slot + h * C::kScoreSlots) * kDim + c * 8);
          const float4 a = qv[0], b = qv[1];
          sc[h] += a.x * kf[0] + a.y * kf[1] + a.z * kf[2] + a.w * kf[3] + b.x * kf[4] + b.y * kf[5] + b.z * kf[6] +
                   b.w * kf[7];
        }
      }
      const bool key_ok = key0 + j < kend;
#pragma unroll
      for (int h = 0; h < C::kScoreHeads; ++h) {
        const int g = slot + h * C::kScoreSlots;
        if (g < ng) p_s[g * C::kPStride + j] = key_ok ? sc[h] : -INFINITY;
      }
    }
    __syncthreads();

#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {  // online softmax: warp w owns heads w and w + kWarps
      const int g = warp + hh * kWarps;
      if (g < ng) {
        float* row_p = p_s + g * C::kPStride;
        float v[C::kTile / 32];
        float mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < C::kTile / 32; ++i) {
          v[i] = row_p[lane + 32 * i];
          mx = fmaxf(mx, v[i]);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        const float m_new = fmaxf(m_run[hh], mx);  // finite: each tile has a visible key
        const float alpha = fast_exp2(m_run[hh] - m_new);
        float sum = 0.0f;
#pragma unroll
        for (int i = 0; i < C::kTile / 32; ++i) {
          const float e = fast_exp2(v[i] - m_new);
          row_p[lane + 32 * i] = e;
          sum += e;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        l_run[hh] = l_run[hh] * alpha + sum;
        m_run[hh] = m_new;
        if (lane == 0) alpha_s[g] = alpha;
      }
    }
    __syncthreads();

    {  // acc = alpha * acc + P V: thread = (dim chunk, head slot)
      const int c = tid % C::kChunks, slot = tid / C::kChunks;
      if (c < dim_chunks) {
        const int nkeys = min(C::kTile, kend - key0);
#pragma unroll
        for (int h = 0; h < C::kPvHeads; ++h) {
          const int g = slot + h * C::kPvSlots;
          if (g < ng) {
            const float a = alpha_s[g];
#pragma unroll
            for (int i = 0; i < 8; ++i) acc[h][i] *= a;
          }
        }
#pragma unroll 4
        for (int j = 0; j < nkeys; ++j) {
          float vf[8];
          unpack_bf16x8(*reinterpret_cast<const uint4*>(vs + j * C::kStride + c * 8), vf);
#pragma unroll
          for (int h = 0; h < C::kPvHeads; ++h) {
            const int g = slot + h * C::kPvSlots;
            if (g < ng) {
              const float pj = p_s[g * C::kPStride + j];
#pragma unroll
              for (int i = 0; i < 8; ++i) acc[h][i] = fmaf(pj, vf[i], acc[h][i]);
            }
          }
        }
      }
    }
    __syncthreads();
  }

  // Publish (m, l) per head; the softmax warps hold them.
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int g = warp + hh * kWarps;
    if (g < ng && lane == 0) {
      l_s[g] = l_run[hh];
      alpha_s[g] = m_run[hh];
      if (p.splits > 1) {
        float* ml = p.part_ml + ((static_cast<int64_t>(item) * p.num_heads + head0 + g) * p.splits + split) * 2;
        ml[0] = m_run[hh];
        ml[1] = l_run[hh];
      }
    }
  }
  __syncthreads();

  const int c = tid % C::kChunks, slot = tid / C::kChunks;
  if (c >= dim_chunks) return;
#pragma unroll
  for (int h = 0; h < C::kPvHeads; ++h) {
    const int g = slot + h * C::kPvSlots;
    if (g >= ng) continue;
    if (p.splits > 1) {
      float4* dst = reinterpret_cast<float4*>(
          p.part_acc + ((static_cast<int64_t>(item) * p.num_heads + head0 + g) * p.splits + split) * p.head_dim + c * 8);
      dst[0] = make_float4(acc[h][0], acc[h][1], acc[h][2], acc[h][3]);
      dst[1] = make_float4(acc[h][4], acc[h][5], acc[h][6], acc[h][7]);
    } else {
      const float l = l_s[g];
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      uint4 o;
      o.x = pack_bf16x2(acc[h][0] * inv, acc[h][1] * inv);
      o.y = pack_bf16x2(acc[h][2] * inv, acc[h][3] * inv);
      o.z = pack_bf16x2(acc[h][4] * inv, acc[h][5] * inv);
      o.w = pack_bf16x2(acc[h][6] * inv, acc[h][7] * inv);
      *reinterpret_cast<uint4*>(p.out + row * p.out_ld + static_cast<int64_t>(head0 + g) * p.head_dim + c * 8) = o;
    }
  }
}

template <int kDim>
Status configure_dim() {
  static std::atomic<uint64_t> done{0};
  return ensure_smem_limit(decode_kernel<kDim>, DecodeCfg<kDim>::kSmemBytes, done);
}

template <int kDim>
Status launch_dim(const DecodeParams& p, int items, cudaStream_t stream) {
  using C = DecodeCfg<kDim>;
  DS_RETURN_IF_ERROR(configure_dim<kDim>());
  const dim3 grid(items, p.num_kv_heads * p.head_chunks, p.splits);
  DS_CUDA_RETURN_IF_ERROR(launch_kernel(decode_kernel<kDim>, grid, dim3(kThreads), C::kSmemBytes, stream, p));
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status configure_decode_generic_kernel() { return configure_dim<kMaxHeadDim>(); }

Status launch_decode_generic(const DecodeParams& p, int items, cudaStream_t stream) {
  return launch_dim<kMaxHeadDim>(p, items, stream);
}

}  // namespace ds::cuda::attn
