// Paged KV cache write and causal paged attention (GQA), reference versions.
//
// Cache layout "NHD": one pool per layer for K and one for V; page p holds
// page_size tokens, element (p, slot, head, d) at
// ((p * page_size + slot) * num_kv_heads + head) * dim + d.
// Token j of a sequence (0-based over its whole history) lives in page
// pages[j / page_size], slot j % page_size.
#pragma once

#include <cstdint>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"

namespace ds::ref {

struct PagedKvLayer {
  void* k = nullptr;
  void* v = nullptr;
  DType dtype = DType::kF32;
  int64_t num_pages = 0;
  int64_t page_size = 0;
  int64_t num_kv_heads = 0;
  int64_t k_dim = 0;
  int64_t v_dim = 0;
};

// One sequence's part of a step: step tokens [first_token, first_token + num_tokens)
// are its history positions [num_cached, num_cached + num_tokens).
struct AttnSequence {
  int64_t first_token = 0;
  int64_t num_tokens = 0;
  int64_t num_cached = 0;
  const int32_t* pages = nullptr;
  int64_t num_pages = 0;
};

// Checks that the sequences lie inside the step's num_tokens, do not overlap,
// and that their page tables cover their history with valid page ids.
Status check_sequences(const AttnSequence* seqs, int64_t num_seqs, int64_t num_tokens, const PagedKvLayer& layer);

// Stores k [T, num_kv_heads*k_dim] and v [T, num_kv_heads*v_dim] of every step
// token into its sequence's pages.
Status kv_cache_write(const float* k, const float* v, int64_t num_tokens, const AttnSequence* seqs, int64_t num_seqs,
                      const PagedKvLayer& layer);

struct PagedAttentionParams {
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t v_head_dim = 0;
  double scale = 1.0;
};

// out [T, num_heads*v_head_dim]: each query token attends causally to its
// sequence's history up to and including itself (the cache must already hold
// this step's K/V). Query head h reads KV head h / (num_heads / num_kv_heads).
Status paged_attention(const float* q, int64_t num_tokens, const AttnSequence* seqs, int64_t num_seqs,
                       const PagedKvLayer& layer, const PagedAttentionParams& p, float* out);

}  // namespace ds::ref
