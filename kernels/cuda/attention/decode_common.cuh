// Parameters and work-item resolution shared by the decode kernels (the
// tensor-core one for head_dim <= 128, the generic per-row one) and the split
// combine kernel.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "runtime/common/status.h"

namespace ds::cuda::attn {

// Query heads of one KV head per CTA: tensor-core kernel (mma rows), generic kernel.
constexpr int kMmaDecodeHeads = 16;
constexpr int kGenericDecodeHeads = 8;

struct DecodeParams {
  const __nv_bfloat16* q;
  int64_t q_ld;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  __nv_bfloat16* out;
  int64_t out_ld;
  const int32_t* q_start;
  const int32_t* kv_len;
  const int32_t* page_table;
  int64_t pt_stride;
  int num_seqs, num_tokens;
  int num_heads, num_kv_heads, head_dim, page_size, group;
  int head_chunks, heads_per_chunk;
  int splits, chunk_len;
  float scale_log2;
  float* part_ml;   // [items, num_heads, splits, 2]
  float* part_acc;  // [items, num_heads, splits, head_dim]
  bool row_mode;
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

// Generic CUDA-core decode (any head_dim <= 256, row mode too).
Status launch_decode_generic(const DecodeParams& p, int items, cudaStream_t stream);
Status configure_decode_generic_kernel();

// Decode with tensor cores (head_dim <= 128, <= 16 query heads per CTA).
Status launch_decode_mma(const DecodeParams& p, int items, cudaStream_t stream);
Status configure_decode_mma_kernels();

}  // namespace ds::cuda::attn
