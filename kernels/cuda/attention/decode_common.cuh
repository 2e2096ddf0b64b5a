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
  bool early_loads;  // rope_on only: the first K/V tile is loaded before the PDL wait
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

// Resolves the calling CTA's DecodeWork without writing anything. False when
// there is nothing to compute (w.empty: resolved, but no key in its range).
__device__ __forceinline__ bool resolve_decode_work(const DecodeParams& p, DecodeWork& w) {
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
  return false;
}

// An empty key range's result: the neutral partial (m = -inf, l = 0) for the
// merge when split (the cluster merge keeps it in shared memory instead), else
// zero output.
__device__ __forceinline__ void write_empty_decode_work(const DecodeParams& p, const DecodeWork& w) {
  const int tid = threadIdx.x;
  if (p.splits > 1) {
    if (tid < w.ng && !p.cluster_merge) {
      float* ml = p.part_ml + ((static_cast<int64_t>(w.item) * p.num_heads + w.head0 + tid) * p.splits + w.split) * 2;
      ml[0] = -INFINITY;
      ml[1] = 0.0f;
    }
  } else {
    for (int i = tid; i < w.ng * p.head_dim; i += blockDim.x)
      p.out[w.row * p.out_ld + static_cast<int64_t>(w.head0) * p.head_dim + i] = __float2bfloat16(0.0f);
  }
}

// resolve_decode_work, then write_empty_decode_work for an empty key range.
__device__ __forceinline__ bool begin_decode_work(const DecodeParams& p, DecodeWork& w) {
  if (resolve_decode_work(p, w)) return true;
  if (w.empty) write_empty_decode_work(p, w);
  return false;
}

// Generic CUDA-core decode (any head_dim <= 256, row mode too).
Status launch_decode_generic(const DecodeParams& p, int items, cudaStream_t stream);
Status configure_decode_generic_kernel();

// Decode with tensor cores (head_dim <= 128, <= 16 query heads per CTA).
Status launch_decode_mma(const DecodeParams& p, int items, cudaStream_t stream);
Status configure_decode_mma_kernels();

}  // namespace ds::cuda::attn
