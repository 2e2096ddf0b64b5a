// Internal launchers of the paged-attention kernels (host side; no CUDA
// headers beyond the runtime API). paged_attention.cpp validates arguments and
// picks the path; these only size grids, set smem limits and launch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/attention/paged_attention.h"
#include "runtime/common/status.h"

namespace ds::cuda::attn {

// Everything the kernels read, already validated.
struct AttnLaunch {
  const void* q = nullptr;
  int64_t q_ld = 0;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  int64_t out_ld = 0;
  const int32_t* q_start = nullptr;
  const int32_t* kv_len = nullptr;
  const int32_t* page_table = nullptr;
  int64_t page_table_stride = 0;
  int num_seqs = 0;
  int num_tokens = 0;
  int max_kv_len = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int page_size = 0;
  float scale = 0.0f;
  const PagedAttentionRope* rope = nullptr;  // validated; decode, tensor-core kernel only
};

// Split-KV geometry of the decode kernel for `items` work items.
struct DecodeGeometry {
  int head_chunks = 1;      // query heads of one KV head split into chunks of <= 8
  int heads_per_chunk = 1;
  int splits = 1;
  int chunk_len = 0;        // keys per split
  // Split workspace: arrival counters at its start (zero between launches), the
  // partials (m, l, acc) at its end; workspace_bytes = their sum (0 unsplit).
  size_t counter_bytes = 0;
  size_t partial_bytes = 0;
  size_t workspace_bytes = 0;
};
DecodeGeometry decode_geometry(int items, int num_heads, int num_kv_heads, int head_dim, int max_kv_len, int num_sms);

// Decode kernel; when split, the last CTA of each (item, head group) to finish
// merges the partials (tensor-core kernel) or a combine kernel does (generic
// one). row_mode: one work item per query row (any q_len, no split; the generic
// path for head_dim > 128), else one per sequence, covering the sequences with
// q_len == 1 (others are skipped). When `workspace_bytes` is too small for the
// split geometry: an error if `require_split`, else one split (no workspace).
// The workspace must be sized by paged_attention_workspace_bytes (counters at
// its start, partials at its end never overlap across geometries) and zeroed
// before its first use.
Status launch_decode(const AttnLaunch& a, bool row_mode, bool require_split, void* workspace, size_t workspace_bytes,
                     int num_sms, cudaStream_t stream);

// FlashAttention-2 class tiled kernel; head_dim <= 128. skip_single: leave
// sequences with q_len == 1 to launch_decode.
Status launch_prefill(const AttnLaunch& a, bool skip_single, int num_sms, cudaStream_t stream);

// Raise every kernel's dynamic smem limit on the current device (idempotent;
// also done lazily by the launchers). paged_attention_workspace_bytes calls
// these so that a CUDA graph captured later needs no attribute changes.
Status configure_decode_kernels();
Status configure_prefill_kernels();

// Largest head_dim the tensor-core prefill kernel takes.
constexpr int kPrefillMaxDim = 128;
constexpr int kMaxHeadDim = 256;

}  // namespace ds::cuda::attn
