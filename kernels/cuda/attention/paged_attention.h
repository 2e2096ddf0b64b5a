// Paged causal attention (GQA) over the KV cache, bf16, for the CUDA executor.
//
// KV layout ("NHD", as kernels/ref/paged_attention.h): per layer one K pool and
// one V pool, element (page, slot, kv_head, d) at
// ((page * page_size + slot) * num_kv_heads + kv_head) * dim + d.
// Token j of sequence s (0-based over its whole history) lives in page
// page_table[s * page_table_stride + j / page_size], slot j % page_size.
//
// Step tokens are ragged: sequence s owns query rows [q_start[s], q_start[s+1])
// of q, which are its history positions [kv_len[s] - q_len, kv_len[s]) with
// q_len = q_start[s+1] - q_start[s]; query i attends keys [0, kv_len - q_len + i]
// (the cache already holds this step's K/V). q_len may be 0 (padding).
//
// Two paths behind one launcher:
//   decode  (max_q_len == 1): split-KV / flash-decoding; the grid depends only on
//           (num_seqs, heads, max_kv_len bound), never on the actual lengths,
//           which are read on the device -> CUDA-graph safe.
//   prefill (any q_len, chunked prefill over a cached prefix, mixed batches):
//           FlashAttention-2 class tiled kernel on tensor cores, online softmax.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "runtime/common/status.h"

namespace ds::cuda {

struct PagedAttentionParams {
  int num_heads = 0;      // query heads (this rank's)
  int num_kv_heads = 0;   // num_heads % num_kv_heads == 0
  int head_dim = 0;       // q/k dim: 64, 128 fast paths; any multiple of 8 up to 256 correct
  int v_head_dim = 0;     // == head_dim for Qwen2
  int page_size = 16;
  float scale = 0.0f;     // softmax scale (1/sqrt(head_dim) typically)
};

// Device-side description of a step (all pointers are device memory).
struct PagedAttentionBatch {
  int num_seqs = 0;
  const int32_t* q_start = nullptr;     // [num_seqs + 1]
  const int32_t* kv_len = nullptr;      // [num_seqs]
  const int32_t* page_table = nullptr;  // [num_seqs, page_table_stride]
  int64_t page_table_stride = 0;
  int num_tokens = 0;                   // total query rows (q_start[num_seqs]), host copy
  int max_q_len = 0;                    // host-known bound on any q_len (1: decode path)
  int max_kv_len = 0;                   // host-known bound on any kv_len (grid/split sizing)
};

// Rope and KV write inside decode attention (pure decode steps, max_q_len == 1,
// head_dim <= 128: the tensor-core decode kernel). `q` passed to
// paged_attention is then the raw q of each query row (before rope), and the
// new key of each sequence (history position kv_len - 1) is not yet in the
// cache: the kernel ropes q, ropes the raw k of the row, uses that k and the
// row's v for the new key and writes both into the pools at slots[row] (no
// write when slots[row] < 0), exactly what a separate rope + KV-write kernel
// followed by plain attention computes (same f32 arithmetic, bf16 rounding).
// Rope: pair p < rotary_dim / 2 rotates by position * inv_freq[p], cos and sin
// scaled by attention_factor (YaRN); pairs (p, p + rotary_dim / 2) (neox) or
// (2p, 2p + 1) (interleaved); dims >= rotary_dim pass through.
struct PagedAttentionRope {
  const void* k = nullptr;           // raw k of query row i: k + i * ld, num_kv_heads * head_dim bf16
  const void* v = nullptr;           // v of row i: v + i * ld
  int64_t ld = 0;                    // row stride of k and v, elements
  void* k_cache = nullptr;           // the K pool again, writable (== k_pool)
  void* v_cache = nullptr;           // the V pool, writable (== v_pool)
  const int32_t* positions = nullptr;  // [num_tokens] rope positions
  const int32_t* slots = nullptr;      // [num_tokens] flat cache slot (page * page_size + offset) or -1
  const float* inv_freq = nullptr;     // [rotary_dim / 2], device memory
  int rotary_dim = 0;                  // even, <= head_dim
  bool interleaved = false;            // false: neox pairs (rotate_half)
  float attention_factor = 1.0f;
};

// Workspace (device bytes) the launcher needs for up to `max_seqs` sequences
// and `max_tokens` query rows with kv lengths up to `max_kv_len`. Zero-fill it
// once before its first use (it holds split arrival counters that every launch
// leaves at zero); one workspace serves launches on one stream at a time.
size_t paged_attention_workspace_bytes(const PagedAttentionParams& p, int max_seqs, int max_tokens, int max_kv_len);

// q: [num_tokens, num_heads * head_dim] bf16 (row stride q_ld elements, 0: num_heads*head_dim);
// k_pool/v_pool: bf16 pools of one layer; out: [num_tokens, num_heads * v_head_dim] bf16.
// Checks params (head counts, dims, page size) and returns an error for unsupported ones.
// rope (optional): see PagedAttentionRope; an error unless the batch is pure decode and
// head_dim <= 128 (paged_attention_rope_supported).
Status paged_attention(const void* q, int64_t q_ld, const void* k_pool, const void* v_pool, void* out,
                       const PagedAttentionParams& p, const PagedAttentionBatch& batch, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream, const PagedAttentionRope* rope = nullptr);

// Whether paged_attention takes a PagedAttentionRope for these params at a step of max_q_len.
bool paged_attention_rope_supported(const PagedAttentionParams& p, int max_q_len);

}  // namespace ds::cuda
