// Split-KV decode on tensor cores (head_dim <= 128). One CTA per (sequence,
// KV head x chunk of <= 16 query heads, split): the chunk's query heads are the
// 16 rows of an mma tile (GQA: every K/V page is read once for all of them).
// 64-key K/V tiles stream through a two-stage cp.async pipeline (a third stage
// gained nothing on the H200, session 17), their page ids read a tile ahead;
// warp w takes keys [16w, 16w + 16) of each tile: S = Q K^T (16 heads x 16
// keys), an f32 online softmax per head, O += P V. At the end the four warps' (m, l, O) are
// merged through smem into the output (one split) or a partial for the
// combine kernel, or the last CTA of the head group merges the splits
// (merge_splits_if_last), or (sm_90+, <= 8 splits; DSRT_ATTN_CLUSTER_MERGE=0
// turns it off) the splits run as one thread-block cluster and merge through
// distributed shared memory (cluster_merge_splits; both in decode_merge.cuh).
// With PagedAttentionRope (decode_rope.cuh) q arrives raw and the new key is
// roped here. Per 64 keys a warp issues 32 mma; at 182 registers two CTAs (8
// warps) fit an SM, and Nsight Compute (session 17) shows them waiting on their
// own mma / multiply chains more than on the K/V stream.
#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <atomic>
#include <cmath>

#include "kernels/cuda/attention/attention_common.cuh"
#include "kernels/cuda/attention/attention_internal.h"
#include "kernels/cuda/attention/decode_common.cuh"
#include "kernels/cuda/attention/decode_merge.cuh"
#include "kernels/cuda/attention/decode_rope.cuh"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda::attn {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kThreads = 128;
constexpr int kWarps = 4;
constexpr int kRows = kMmaDecodeHeads;  // query heads per CTA (mma M)
constexpr int kTile = 64;  // keys per stage, 16 per warp

template <int kD>
struct MmaDecodeCfg {
  static constexpr int kStride = kD + 8;  // bf16 smem row, +16 B: ldmatrix conflict-free
  static constexpr int kChunks = kD / 8;
  static constexpr int kKvElems = 2 * 2 * kTile * kStride;  // 2 stages x (K, V)
  static constexpr int kOStride = kD + 4;                    // f32 merge rows
  static constexpr size_t kSmemBytes =
      (kKvElems + kRows * kStride) * sizeof(bf16) + kWarps * kRows * 2 * sizeof(float);
  static_assert(static_cast<size_t>(kWarps) * kRows * kOStride * sizeof(float) <= kKvElems * sizeof(bf16),
                "warp merge buffer reuses the K/V stages");
  // Cluster merge: this CTA's partial (acc [kRows][kD], then (m, l) [kRows]) after the warp merge buffer.
  static constexpr size_t kPartOffset = static_cast<size_t>(kWarps) * kRows * kOStride * sizeof(float);
  static_assert(kPartOffset % 16 == 0, "partial alignment");
  static_assert(kPartOffset + (kRows * kD + 2 * kRows) * sizeof(float) <= kKvElems * sizeof(bf16),
                "the cluster partial reuses the K/V stages too");
};

// PDL (runtime/cuda/pdl.h). With the rope inside (p.rope_on, which
// p.early_loads requires; DSRT_ATTN_EARLY_LOADS=0 turns it off) nothing this
// kernel reads before its wait can still be in flight: the page table and
// lengths come from the step's unpack kernel, which the embedding gather waits
// for before it lets later kernels start, and the K/V rows of earlier positions
// were written by earlier steps (the new key's row, written by this kernel, is
// patched into its tile after the wait).
// So the first tile's cache loads go out before the wait and overlap the tail
// of the q/k/v GEMV; q and every write come after it. Without rope_on a
// rope + KV-write kernel runs just before this one: everything waits.
__device__ __forceinline__ void pdl_wait_trigger_if(bool now) {
  if (now) {
    pdl_wait();
    pdl_trigger();
  }
}

template <int kD, bool kCluster>
__global__ void __launch_bounds__(kThreads) decode_mma_kernel(const DecodeParams p) {
  const bool early = p.early_loads;  // the first tile's loads before the PDL wait
  pdl_wait_trigger_if(!early);
  using C = MmaDecodeCfg<kD>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* kv_s = reinterpret_cast<bf16*>(smem_raw);
  bf16* q_s = kv_s + C::kKvElems;                                  // [kRows][kStride]
  float* ml_s = reinterpret_cast<float*>(q_s + kRows * C::kStride);  // [kWarps][kRows][m, l]
  float* o_s = reinterpret_cast<float*>(smem_raw);                 // [kWarps][kRows][kOStride], after the loop
  float* part_acc_s = reinterpret_cast<float*>(smem_raw + C::kPartOffset);  // cluster merge only
  float2* part_ml_s = reinterpret_cast<float2*>(part_acc_s + kRows * kD);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  // The first tile's page ids depend only on (sequence, split), not on the lengths:
  // their loads go out together with the work item's (one round trip less).
  constexpr int kIters = kTile * C::kChunks / kThreads;
  static_assert(kTile * C::kChunks % kThreads == 0, "tile load mapping");
  int32_t first_pages[kIters];
  {
    const int seq0 = blockIdx.x;  // never row mode here: work item == sequence
    const int key0 = static_cast<int>(blockIdx.z) * p.chunk_len;
    const int32_t* pt = p.page_table + static_cast<int64_t>(seq0) * p.pt_stride;
#pragma unroll
    for (int u = 0; u < kIters; ++u) {
      const int64_t idx = (key0 + (tid + u * kThreads) / C::kChunks) / p.page_size;
      first_pages[u] = seq0 < p.num_seqs && idx < p.pt_stride ? pt[idx] : 0;
    }
  }
  DecodeWork w;
  if (!resolve_decode_work(p, w)) {
    pdl_wait_trigger_if(early);
    if (w.empty) write_empty_decode_work(p, w);
    if constexpr (kCluster) {
      if (w.empty) {  // a neutral partial: nothing visible here
        for (int r = tid; r < w.ng; r += kThreads) part_ml_s[r] = make_float2(-INFINITY, 0.0f);
        cluster_merge_splits<kD>(p, w, part_acc_s, part_ml_s);
      }
    } else if (w.empty && p.counters) {
      merge_splits_if_last(p, w);  // its neutral partial counts too
    }
    return;
  }
  const int item = w.item, kvh = w.kvh, ng = w.ng, head0 = w.head0, split = w.split;
  const int seq = w.seq, row = w.row, kbeg = w.kbeg, kend = w.kend;

  const int32_t* pages = p.page_table + seq * p.pt_stride;
  // Page ids of a tile's rows for this thread's loads. They are read one tile
  // before the tile's loads go out, so the page-table round trip overlaps the
  // tile being consumed instead of adding to every tile's latency.
  auto fetch_pages = [&](int tile, int32_t (&ids)[kIters]) {
    const int key0 = kbeg + tile * kTile;
#pragma unroll
    for (int u = 0; u < kIters; ++u) {
      const int key = key0 + (tid + u * kThreads) / C::kChunks;
      ids[u] = key < kend ? pages[key / p.page_size] : 0;
    }
  };
  auto load_tile = [&](int tile, int stage, const int32_t (&ids)[kIters]) {
    const int key0 = kbeg + tile * kTile;
    bf16* ks = kv_s + stage * 2 * kTile * C::kStride;
    bf16* vs = ks + kTile * C::kStride;
#pragma unroll
    for (int u = 0; u < kIters; ++u) {
      const int i = tid + u * kThreads;
      const int j = i / C::kChunks, c = i % C::kChunks;
      const int key = key0 + j;
      const bool valid = key < kend && c * 8 < p.head_dim;
      int64_t off = 0;
      if (valid) {
        const int64_t page = ids[u];
        off = ((page * p.page_size + key % p.page_size) * p.num_kv_heads + kvh) * static_cast<int64_t>(p.head_dim) + c * 8;
      }
      cp_async_16(ks + j * C::kStride + c * 8, p.k + off, valid);
      cp_async_16(vs + j * C::kStride + c * 8, p.v + off, valid);
    }
  };
  const int ntiles = (kend - kbeg + kTile - 1) / kTile;
  load_tile(0, 0, first_pages);
  cp_async_commit();
  pdl_wait_trigger_if(early);
  // Rope inside attention (p.rope_on, decode_rope.cuh): the cos/sin table of the
  // row's position, and the new key (history position ctx - 1) when this CTA's
  // keys hold it, patched into its tile after the (stale) cache load.
  __shared__ float2 rope_cs_s[kD / 2];
  const int kn = w.ctx - 1;
  const bool holds_new = p.rope_on && kn >= kbeg && kn < kend;
  const int tn = holds_new ? (kn - kbeg) / kTile : -1;
  const float2 cs_own = p.rope_on ? decode_rope_table(p, row, rope_cs_s) : make_float2(1.0f, 0.0f);
  // Q rows: heads head0 .. head0 + ng - 1 of this query row; the rest zero.
  for (int i = tid; i < kRows * C::kChunks; i += kThreads) {
    const int r = i / C::kChunks, c = i % C::kChunks;
    const bool valid = r < ng && c * 8 < p.head_dim;
    const bf16* src = valid ? p.q + row * p.q_ld + static_cast<int64_t>(head0 + r) * p.head_dim + c * 8 : p.q;
    cp_async_16(q_s + r * C::kStride + c * 8, src, valid);
  }
  cp_async_commit();
  int32_t next_pages[kIters];  // page ids of tile t + 1 at iteration t
  if (1 < ntiles) fetch_pages(1, next_pages);
  const NewKv nk = p.rope_on ? decode_rope_new_kv(p, w, holds_new, cs_own) : NewKv{};

  const int g = lane >> 2, t4 = lane & 3;
  float o[kD / 8][4];
#pragma unroll
  for (int j = 0; j < kD / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[j][e] = 0.0f;
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;  // rows (heads) g and g + 8
  uint32_t qf[kD / 16][4];

  for (int t = 0; t < ntiles; ++t) {
    const int stage = t % 2;
    // Tile t + 1 into the other stage, consumed in iteration t - 1 (closing barrier). One
    // commit group per iteration (empty after the last tile; before the loop: tile 0, q),
    // so waiting for all but the newest group means "tile t has landed".
    if (t + 1 < ntiles) load_tile(t + 1, (t + 1) % 2, next_pages);
    cp_async_commit();
    if (t + 2 < ntiles) fetch_pages(t + 2, next_pages);  // used next iteration
    cp_async_wait<1>();
    __syncthreads();
    if (p.rope_on && (t == 0 || t == tn)) {  // block-uniform
      if (t == 0) decode_rope_q(p, q_s, C::kStride, ng, rope_cs_s);  // the table is visible after the barrier
      if (t == tn && nk.on) {  // the new key's row of this tile: K (threads < D/2) or V
        bf16* k_row = kv_s + stage * 2 * kTile * C::kStride + (kn - kbeg - t * kTile) * C::kStride;
        bf16* dst = tid < p.head_dim / 2 ? k_row : k_row + kTile * C::kStride;
        dst[nk.a] = nk.x;
        dst[nk.b] = nk.y;
      }
      __syncthreads();
    }
    if (t == 0) {
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk)
        ldmatrix_x4(qf[kk], q_s + (lane & 15) * C::kStride + kk * 16 + (lane >> 4) * 8);
    }
    const bf16* ks = kv_s + stage * 2 * kTile * C::kStride + warp * 16 * C::kStride;
    const bf16* vs = ks + kTile * C::kStride;

    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t bk[4];
      ldmatrix_x4(bk, ks + ((lane & 7) + (lane >> 4) * 8) * C::kStride + kk * 16 + ((lane >> 3) & 1) * 8);
      mma_16816(s[0], qf[kk], bk[0], bk[1]);
      mma_16816(s[1], qf[kk], bk[2], bk[3]);
    }
    const int key0 = kbeg + t * kTile + warp * 16;
    float mx_lo = m_lo, mx_hi = m_hi;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = key0 + j * 8 + 2 * t4 + (e & 1);
        s[j][e] = key < kend ? s[j][e] * p.scale_log2 : -INFINITY;
      }
      mx_lo = fmaxf(mx_lo, fmaxf(s[j][0], s[j][1]));
      mx_hi = fmaxf(mx_hi, fmaxf(s[j][2], s[j][3]));
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, off));
      mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, off));
    }
    // This warp's keys may all lie past kend: keep m = -inf, p = 0 (base 0, no NaN).
    const float base_lo = mx_lo == -INFINITY ? 0.0f : mx_lo;
    const float base_hi = mx_hi == -INFINITY ? 0.0f : mx_hi;
    const float alpha_lo = fast_exp2(m_lo - base_lo), alpha_hi = fast_exp2(m_hi - base_hi);
    m_lo = mx_lo;
    m_hi = mx_hi;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      s[j][0] = fast_exp2(s[j][0] - base_lo);
      s[j][1] = fast_exp2(s[j][1] - base_lo);
      s[j][2] = fast_exp2(s[j][2] - base_hi);
      s[j][3] = fast_exp2(s[j][3] - base_hi);
    }
    l_lo = l_lo * alpha_lo + s[0][0] + s[0][1] + s[1][0] + s[1][1];
    l_hi = l_hi * alpha_hi + s[0][2] + s[0][3] + s[1][2] + s[1][3];
    uint32_t pa[4];
    pa[0] = pack_bf16x2(s[0][0], s[0][1]);
    pa[1] = pack_bf16x2(s[0][2], s[0][3]);
    pa[2] = pack_bf16x2(s[1][0], s[1][1]);
    pa[3] = pack_bf16x2(s[1][2], s[1][3]);
#pragma unroll
    for (int dn = 0; dn < kD / 16; ++dn) {
      o[2 * dn][0] *= alpha_lo;
      o[2 * dn][1] *= alpha_lo;
      o[2 * dn][2] *= alpha_hi;
      o[2 * dn][3] *= alpha_hi;
      o[2 * dn + 1][0] *= alpha_lo;
      o[2 * dn + 1][1] *= alpha_lo;
      o[2 * dn + 1][2] *= alpha_hi;
      o[2 * dn + 1][3] *= alpha_hi;
      uint32_t bv[4];
      ldmatrix_x4_trans(bv, vs + ((lane & 7) + ((lane >> 3) & 1) * 8) * C::kStride + dn * 16 + (lane >> 4) * 8);
      mma_16816(o[2 * dn], pa, bv[0], bv[1]);
      mma_16816(o[2 * dn + 1], pa, bv[2], bv[3]);
    }
    __syncthreads();
  }
  cp_async_wait<0>();
  __syncthreads();  // K/V stages are reused as the merge buffer

  // Per-warp (m, l, O) -> smem.
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, off);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, off);
  }
  if (t4 == 0) {
    ml_s[(warp * kRows + g) * 2] = m_lo;
    ml_s[(warp * kRows + g) * 2 + 1] = l_lo;
    ml_s[(warp * kRows + g + 8) * 2] = m_hi;
    ml_s[(warp * kRows + g + 8) * 2 + 1] = l_hi;
  }
  float* ow = o_s + warp * kRows * C::kOStride;
#pragma unroll
  for (int j = 0; j < kD / 8; ++j) {
    const int d = j * 8 + 2 * t4;
    *reinterpret_cast<float2*>(ow + g * C::kOStride + d) = make_float2(o[j][0], o[j][1]);
    *reinterpret_cast<float2*>(ow + (g + 8) * C::kOStride + d) = make_float2(o[j][2], o[j][3]);
  }
  __syncthreads();

  // Merge the warps: thread = (head r, dims d..d+7).
  for (int i = tid; i < ng * C::kChunks; i += kThreads) {
    const int r = i / C::kChunks, d = (i % C::kChunks) * 8;
    if (d >= p.head_dim) continue;
    float mw[kWarps], m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      mw[w] = ml_s[(w * kRows + r) * 2];
      m = fmaxf(m, mw[w]);
    }
    float l = 0.0f, acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float lw = ml_s[(w * kRows + r) * 2 + 1];
      if (lw <= 0.0f) continue;  // no visible key in this warp's share
      const float f = fast_exp2(mw[w] - m);
      l += f * lw;
      const float* src = o_s + (w * kRows + r) * C::kOStride + d;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] += f * src[e];
    }
    const int head = head0 + r;
    if (kCluster) {
      if (d == 0) part_ml_s[r] = make_float2(m, l);
      float4* dst = reinterpret_cast<float4*>(part_acc_s + r * kD + d);
      dst[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
      dst[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
    } else if (p.splits > 1) {
      const int64_t part = (static_cast<int64_t>(item) * p.num_heads + head) * p.splits + split;
      if (d == 0) {
        p.part_ml[part * 2] = m;
        p.part_ml[part * 2 + 1] = l;
      }
      float4* dst = reinterpret_cast<float4*>(p.part_acc + part * p.head_dim + d);
      dst[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
      dst[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
    } else {
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      uint4 v;
      v.x = pack_bf16x2(acc[0] * inv, acc[1] * inv);
      v.y = pack_bf16x2(acc[2] * inv, acc[3] * inv);
      v.z = pack_bf16x2(acc[4] * inv, acc[5] * inv);
      v.w = pack_bf16x2(acc[6] * inv, acc[7] * inv);
      *reinterpret_cast<uint4*>(p.out + row * p.out_ld + static_cast<int64_t>(head) * p.head_dim + d) = v;
    }
  }
  if constexpr (kCluster) {
    cluster_merge_splits<kD>(p, w, part_acc_s, part_ml_s);
  } else if (p.splits > 1 && p.counters) {
    merge_splits_if_last(p, w);
  }
}

template <int kD>
Status configure_dim() {
  static std::atomic<uint64_t> done{0}, done_cluster{0};
  constexpr size_t bytes = MmaDecodeCfg<kD>::kSmemBytes;
  DS_RETURN_IF_ERROR(ensure_smem_limit(decode_mma_kernel<kD, false>, bytes, done));
  return ensure_smem_limit(decode_mma_kernel<kD, true>, bytes, done_cluster);
}

template <int kD>
Status launch_dim(const DecodeParams& p, int items, cudaStream_t stream) {
  DS_RETURN_IF_ERROR(configure_dim<kD>());
  constexpr size_t bytes = MmaDecodeCfg<kD>::kSmemBytes;
  const dim3 grid(items, p.num_kv_heads * p.head_chunks, p.splits);
  if (!p.cluster_merge) {
    DS_CUDA_RETURN_IF_ERROR(
        launch_kernel(decode_mma_kernel<kD, false>, grid, dim3(kThreads), bytes, stream, p));
  } else {
    // The splits of a head group form one cluster (PDL attribute kept when on).
    cudaLaunchAttribute attrs[2];
    cudaLaunchConfig_t cfg = pdl_cluster_launch_config(grid, dim3(kThreads), bytes, stream, attrs,
                                                       dim3(1, 1, static_cast<unsigned>(p.splits)));
    DS_CUDA_RETURN_IF_ERROR(cudaLaunchKernelEx(&cfg, decode_mma_kernel<kD, true>, p));
  }
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status configure_decode_mma_kernels() {
  DS_RETURN_IF_ERROR(configure_dim<64>());
  return configure_dim<128>();
}

Status launch_decode_mma(const DecodeParams& p, int items, cudaStream_t stream) {
  if (p.head_dim <= 64) return launch_dim<64>(p, items, stream);
  if (p.head_dim <= 128) return launch_dim<128>(p, items, stream);
  return Status::Error(StrCat() << "paged_attention: tensor-core decode takes head_dim <= 128, got " << p.head_dim);
}

}  // namespace ds::cuda::attn
