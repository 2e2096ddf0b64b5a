// Parameters and work-item resolution shared by the decode kernels (the
// tensor-core one for head_dim <= 128, the generic per-row one) and the split
// combine kernel.
#pragma once

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention/attention_common.cuh"
#include "runtime/common/status.h"

namespace ds::cuda::attn {

// Query heads of one KV head per CTA: tensor-core kernel (mma rows), generic kernel.
constexpr int kMmaDecodeHeads = 16;
constexpr int kGenericDecodeHeads = 8;

// Rope + KV write of the new key (PagedAttentionRope), tensor-core kernel only.
struct DecodeRope {
  const __nv_bfloat16* k;  // raw k of query row i: k + i * ld
  const __nv_bfloat16* v;
  int64_t ld;
  __nv_bfloat16* k_cache;
  __nv_bfloat16* v_cache;
  const int32_t* positions;
  const int32_t* slots;
  const float* inv_freq;
  int rotary_dim;
  bool interleaved;
  float attention_factor;
};

struct DecodeParams : BatchParams {
  int head_chunks, heads_per_chunk;
  int splits, chunk_len;
  float* part_ml;   // [items, num_heads, splits, 2]
  float* part_acc;  // [items, num_heads, splits, head_dim]
  unsigned* counters;  // [items, gridDim.y] arrivals, or null: the combine kernel merges
  bool cluster_merge;  // splits <= 8 launched as clusters (1, 1, splits): merged through DSMEM
  bool row_mode;
  bool rope_on;     // rope: q is raw, the new key is roped and written here
  DecodeRope rope;
};

// Resolves a work item to (query row, number of visible keys); false: nothing to do.
__device__ __forceinline__ bool resolve_item(const DecodeParams& p, int item, int& seq, int& row, int& ctx) {
  if (!p.row_mode) {
    seq = item;
    const int q0 = p.q_start[seq];
    if (p.q_start[seq + 1] - q0 != 1 || q0 >= p.num_tokens) return false;
    row = q0;
    ctx = p.kv_len[seq];
  } else {
    row = item;
    int lo = 0, hi = p.num_seqs - 1;  // last seq with q_start <= row
    while (lo < hi) {
      const int mid = (lo + hi + 1) >> 1;
      if (p.q_start[mid] <= row) lo = mid; else hi = mid - 1;
    }
    seq = lo;
    const int q0 = p.q_start[seq], q1 = p.q_start[seq + 1];
    if (row < q0 || row >= q1) return false;
    ctx = p.kv_len[seq] - (q1 - q0) + (row - q0) + 1;
  }
  return true;
}

// One decode CTA's share: work item x (KV head, chunk of its query heads) x
// split -> query heads [head0, head0 + ng) of query `row` over keys [kbeg, kend).
struct DecodeWork {
  int item, kvh, g0, ng, head0, split;
  int seq, row, ctx, kbeg, kend;
  bool empty;  // resolved, but this split holds no key (its neutral partial is written)
};

// Resolves the calling CTA's DecodeWork. False when there is nothing to compute;
// an empty key range has then already been written: the neutral partial (m = -inf,
// l = 0) for the combine kernel when split, else zero output.
__device__ __forceinline__ bool begin_decode_work(const DecodeParams& p, DecodeWork& w) {
  w.item = blockIdx.x;
  w.kvh = blockIdx.y / p.head_chunks;
  w.g0 = (blockIdx.y % p.head_chunks) * p.heads_per_chunk;
  w.ng = min(p.heads_per_chunk, p.group - w.g0);
  w.head0 = w.kvh * p.group + w.g0;
  w.split = blockIdx.z;
  w.empty = false;
  if (w.ng <= 0 || !resolve_item(p, w.item, w.seq, w.row, w.ctx)) return false;
  w.kbeg = w.split * p.chunk_len;
  w.kend = w.split == p.splits - 1 ? w.ctx : min(w.ctx, w.kbeg + p.chunk_len);
  if (w.kbeg < w.kend) return true;
  w.empty = true;
  const int tid = threadIdx.x;
  if (p.splits > 1) {
    if (tid < w.ng && !p.cluster_merge) {  // cluster merge: the kernel puts it in shared memory
      float* ml = p.part_ml + ((static_cast<int64_t>(w.item) * p.num_heads + w.head0 + tid) * p.splits + w.split) * 2;
      ml[0] = -INFINITY;
      ml[1] = 0.0f;
    }
  } else {
    for (int i = tid; i < w.ng * p.head_dim; i += blockDim.x)
      p.out[w.row * p.out_ld + static_cast<int64_t>(w.head0) * p.head_dim + i] = __float2bfloat16(0.0f);
  }
  return false;
}

// Split arrival and merge (tensor-core kernel, p.counters set): every CTA of
// (item, head group) calls this after writing its partial, the neutral one
// included; the last to arrive resets the counter and merges all splits of its
// heads into out, in split order (the result does not depend on arrival order).
// One acq_rel atomic per CTA (after the barrier, thread 0's release covers the
// block's partial stores; its acquire, through the next barrier, makes the
// other CTAs' partials visible), and the merge issues the loads of up to
// kMergeBatch splits before using any, so it costs about one round trip.
constexpr int kMergeBatch = 8;

__device__ __forceinline__ unsigned atomic_add_acq_rel_gpu(unsigned* addr, unsigned v) {
  unsigned old;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(addr), "r"(v) : "memory");
  return old;
}

// Folds a batch of split partials (m, l) / acc into the running (m, l, a), all
// relative to m; partials with l = 0 (no visible key) weigh nothing, whatever
// their acc holds (a select, so garbage there cannot turn into NaN).
__device__ __forceinline__ void merge_split_batch(const float2 (&ml)[kMergeBatch], const float4 (&v)[kMergeBatch],
                                                  float& m, float& l, float4& a) {
  float mb = m;
#pragma unroll
  for (int j = 0; j < kMergeBatch; ++j)
    if (ml[j].y > 0.0f) mb = fmaxf(mb, ml[j].x);
  if (mb == -INFINITY) return;  // nothing visible so far
  const float rescale = fast_exp2(m - mb);  // m = -inf: 0 (l and a are 0 then)
  l *= rescale;
  a.x *= rescale, a.y *= rescale, a.z *= rescale, a.w *= rescale;
#pragma unroll
  for (int j = 0; j < kMergeBatch; ++j) {
    const bool on = ml[j].y > 0.0f;
    const float f = on ? fast_exp2(ml[j].x - mb) : 0.0f;
    l += on ? f * ml[j].y : 0.0f;
    a.x += on ? f * v[j].x : 0.0f;
    a.y += on ? f * v[j].y : 0.0f;
    a.z += on ? f * v[j].z : 0.0f;
    a.w += on ? f * v[j].w : 0.0f;
  }
  m = mb;
}

// out row `row`, head `head`, dims d..d+3 = a / l (0 when nothing was visible).
__device__ __forceinline__ void store_merged(const DecodeParams& p, int row, int head, int d, float l, float4 a) {
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  uint2 o;
  o.x = pack_bf16x2(a.x * inv, a.y * inv);
  o.y = pack_bf16x2(a.z * inv, a.w * inv);
  *reinterpret_cast<uint2*>(p.out + row * p.out_ld + static_cast<int64_t>(head) * p.head_dim + d) = o;
}

__device__ __forceinline__ void merge_splits_if_last(const DecodeParams& p, const DecodeWork& w) {
  __shared__ bool last_s;
  __syncthreads();  // every partial store of the block precedes thread 0's release
  if (threadIdx.x == 0) {
    unsigned* c = p.counters + static_cast<int64_t>(w.item) * gridDim.y + blockIdx.y;
    const bool last = atomic_add_acq_rel_gpu(c, 1u) + 1u == static_cast<unsigned>(p.splits);
    if (last) *c = 0u;  // read again only by the next launch, after this grid completes
    last_s = last;
  }
  __syncthreads();
  if (!last_s) return;
  const int quads = p.head_dim / 4;
  for (int i = threadIdx.x; i < w.ng * quads; i += blockDim.x) {
    const int r = i / quads, d = (i % quads) * 4;
    const int64_t base = (static_cast<int64_t>(w.item) * p.num_heads + w.head0 + r) * p.splits;
    // Online merge over batches of splits: m, l, a are relative to m.
    float m = -INFINITY, l = 0.0f;
    float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int s0 = 0; s0 < p.splits; s0 += kMergeBatch) {
      float2 ml[kMergeBatch];
      float4 v[kMergeBatch];
#pragma unroll
      for (int j = 0; j < kMergeBatch; ++j) {
        const int s = s0 + j;
        // Neutral partials (l = 0) leave acc unwritten: read, then weighted by a select.
        ml[j] = s < p.splits ? __ldcg(reinterpret_cast<const float2*>(p.part_ml) + base + s) : make_float2(-INFINITY, 0.0f);
        v[j] = s < p.splits ? __ldcg(reinterpret_cast<const float4*>(p.part_acc + (base + s) * p.head_dim + d))
                            : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
      merge_split_batch(ml, v, m, l, a);
    }
    store_merged(p, w.row, w.head0 + r, d, l, a);
  }
}

// Generic CUDA-core decode (any head_dim <= 256, row mode too).
Status launch_decode_generic(const DecodeParams& p, int items, cudaStream_t stream);
Status configure_decode_generic_kernel();

// Decode with tensor cores (head_dim <= 128, <= 16 query heads per CTA).
Status launch_decode_mma(const DecodeParams& p, int items, cudaStream_t stream);
Status configure_decode_mma_kernels();

}  // namespace ds::cuda::attn
