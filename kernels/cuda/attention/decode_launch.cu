// Split-KV decode launcher: geometry (splits depend only on host-known
// bounds), workspace layout, kernel choice (tensor-core for head_dim <= 128,
// generic otherwise) and the combine kernel that merges the generic kernel's
// splits (the tensor-core kernel merges its own: merge_splits_if_last).
#include <cuda_bf16.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>

#include "kernels/cuda/attention/attention_common.cuh"
#include "kernels/cuda/attention/attention_internal.h"
#include "kernels/cuda/attention/decode_common.cuh"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda::attn {
namespace {

using bf16 = __nv_bfloat16;

// Merges the splits of one (item, query head): out = sum w_s acc_s / sum w_s l_s
// with w_s = 2^(m_s - max m). Warp 0 computes the weights; the four warps then
// sum interleaved splits over float4 slices of the head and meet in smem.
constexpr int kCombineThreads = 128;
constexpr int kMaxSplits = 128;  // num_kv_splits' cap

__global__ void __launch_bounds__(kCombineThreads) combine_kernel(const DecodeParams p) {
  pdl_wait();  // PDL-aware launch (runtime/cuda/pdl.h): nothing is read before the wait
  pdl_trigger();
  __shared__ float w_s[kMaxSplits];
  __shared__ __align__(16) float acc_s[kCombineThreads / 32][kMaxHeadDim];
  __shared__ float l_total;
  const int item = blockIdx.x, h = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int seq, row, ctx;
  if (!resolve_item(p, item, seq, row, ctx)) return;
  const int valid = min(min(p.splits, kMaxSplits), max(1, (ctx + p.chunk_len - 1) / p.chunk_len));
  const int64_t base = (static_cast<int64_t>(item) * p.num_heads + h) * p.splits;
  const float* ml = p.part_ml + base * 2;
  if (warp == 0) {
    float m = -INFINITY;
    for (int s = lane; s < valid; s += 32) m = fmaxf(m, ml[2 * s]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float l = 0.0f;
    for (int s = lane; s < valid; s += 32) {
      const float ls = ml[2 * s + 1];
      const float w = ls > 0.0f ? fast_exp2(ml[2 * s] - m) : 0.0f;  // neutral partials: weight 0, acc unread
      w_s[s] = w;
      l += w * ls;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
    if (lane == 0) l_total = l;
  }
  __syncthreads();
  for (int d = lane * 4; d < p.head_dim; d += 128) {
    float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
    for (int s = warp; s < valid; s += kCombineThreads / 32) {
      const float w = w_s[s];
      if (w != 0.0f) {
        const float4 v = *reinterpret_cast<const float4*>(p.part_acc + (base + s) * p.head_dim + d);
        a.x += w * v.x;
        a.y += w * v.y;
        a.z += w * v.z;
        a.w += w * v.w;
      }
    }
    *reinterpret_cast<float4*>(&acc_s[warp][d]) = a;
  }
  __syncthreads();
  const float inv = l_total > 0.0f ? 1.0f / l_total : 0.0f;
  for (int d = tid; d < p.head_dim; d += kCombineThreads) {
    float o = 0.0f;
#pragma unroll
    for (int w = 0; w < kCombineThreads / 32; ++w) o += acc_s[w][d];
    p.out[row * p.out_ld + static_cast<int64_t>(h) * p.head_dim + d] = __float2bfloat16(o * inv);
  }
}

// sm_90+: split decode of <= 8 splits runs as thread-block clusters that merge
// through distributed shared memory (H200 batch-1 decode A/B, same calls: 7B
// 231.8 -> 232.1, 32B 59.3 -> 59.6, 58.3 -> 58.5, 58.5 -> 58.6 tok/s).
// DSRT_ATTN_CLUSTER_MERGE=0 keeps the global-memory merge of the last CTA.
constexpr int kMaxClusterSplits = 8;  // the portable cluster size
bool cluster_merge_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("DSRT_ATTN_CLUSTER_MERGE");
    return !(e && std::string(e) == "0");
  }();
  return on && detail::pdl_device_ok();  // compute capability >= 9.0 (clusters)
}

// DSRT_ATTN_EARLY_LOADS=0: the tensor-core decode kernel issues nothing before
// its PDL wait even with the rope inside (A/B of decode_mma_kernel's early loads).
bool early_loads_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("DSRT_ATTN_EARLY_LOADS");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

// (m, l) floats of `partials` partials, rounded up so the accumulators after them are 16-byte aligned.
size_t ml_floats(size_t partials) { return (partials * 2 + 3) / 4 * 4; }

}  // namespace

Status configure_decode_kernels() {
  DS_RETURN_IF_ERROR(configure_decode_mma_kernels());
  return configure_decode_generic_kernel();
}

DecodeGeometry decode_geometry(int items, int num_heads, int num_kv_heads, int head_dim, int max_kv_len, int num_sms) {
  DecodeGeometry g;
  const int group = num_heads / num_kv_heads;
  // Tensor-core kernel: 16 query heads per CTA (mma rows); generic one: 8.
  const int max_heads = head_dim <= kPrefillMaxDim ? kMmaDecodeHeads : kGenericDecodeHeads;
  g.head_chunks = (group + max_heads - 1) / max_heads;
  g.heads_per_chunk = (group + g.head_chunks - 1) / g.head_chunks;
  // DSRT_ATTN_SHORT_SPLITS=0: short bounds unsplit (one CTA per head group walks every tile).
  static const bool split_short = [] {
    const char* e = std::getenv("DSRT_ATTN_SHORT_SPLITS");
    return !(e && std::string(e) == "0");
  }();
  g.splits = num_kv_splits(items, num_kv_heads * g.head_chunks, max_kv_len, num_sms, split_short);
  g.chunk_len = split_chunk_len(max_kv_len > 0 ? max_kv_len : 1, g.splits);
  if (g.splits > 1) {
    const size_t partials = static_cast<size_t>(items) * num_heads * g.splits;
    g.partial_bytes = (ml_floats(partials) + partials * head_dim) * sizeof(float);
    g.counter_bytes = (static_cast<size_t>(items) * num_kv_heads * g.head_chunks * sizeof(unsigned) + 15) / 16 * 16;
    g.workspace_bytes = g.counter_bytes + g.partial_bytes;
  }
  return g;
}

Status launch_decode(const AttnLaunch& a, bool row_mode, bool require_split, void* workspace, size_t workspace_bytes,
                     int num_sms, cudaStream_t stream) {
  const int items = row_mode ? a.num_tokens : a.num_seqs;
  if (items <= 0) return Status::Ok();
  DecodeGeometry g = decode_geometry(items, a.num_heads, a.num_kv_heads, a.head_dim, a.max_kv_len, num_sms);
  const bool ws_short = g.workspace_bytes > workspace_bytes || (g.workspace_bytes > 0 && workspace == nullptr);
  if (row_mode || (ws_short && !require_split)) {  // one split, no workspace
    g.splits = 1;
    g.chunk_len = a.max_kv_len > 0 ? a.max_kv_len : 1;
    g.workspace_bytes = 0;
  }
  if (g.splits > 1 && ws_short)
    return Status::Error(StrCat() << "paged_attention: decode of " << items << " sequences (max_kv_len " << a.max_kv_len
                                  << ", " << g.splits << " KV splits) needs " << g.workspace_bytes
                                  << " workspace bytes, got " << workspace_bytes
                                  << " (size it with paged_attention_workspace_bytes)");
  DecodeParams p{};
  set_batch_params(p, a);
  p.head_chunks = g.head_chunks;
  p.heads_per_chunk = g.heads_per_chunk;
  p.splits = g.splits;
  p.chunk_len = g.chunk_len;
  const bool mma = !row_mode && a.head_dim <= kPrefillMaxDim;
  if (g.splits > 1) {
    // Counters at the start, partials at the end (16-byte aligned): a workspace sized by
    // paged_attention_workspace_bytes holds the largest of each, so no launch's partials
    // overlap another geometry's counters.
    const uintptr_t begin = reinterpret_cast<uintptr_t>(workspace);
    const uintptr_t part = (begin + workspace_bytes - g.partial_bytes) & ~uintptr_t{15};
    if (part < begin + g.counter_bytes)
      return Status::Error(StrCat() << "paged_attention: workspace of " << workspace_bytes
                                    << " bytes is too small once aligned (size it with paged_attention_workspace_bytes)");
    p.part_ml = reinterpret_cast<float*>(part);
    p.part_acc = p.part_ml + ml_floats(static_cast<size_t>(items) * a.num_heads * g.splits);
    p.counters = mma ? static_cast<unsigned*>(workspace) : nullptr;
    // Clusters when they are cheap to place: every CTA of the launch on its own SM, or
    // pairs. Clusters of up to 8 CTAs at two per SM wait for co-scheduling (7B, 8
    // sequences x 512 keys, 256 CTAs: 14.5 us with clusters of 8, 8.7 us with the
    // global-memory merge; H200 batch 130).
    const int64_t ctas = static_cast<int64_t>(items) * a.num_kv_heads * g.head_chunks * g.splits;
    const bool cheap_clusters = !split_floor_enabled() || ctas <= num_sms || g.splits <= 2;
    p.cluster_merge = mma && g.splits <= kMaxClusterSplits && cheap_clusters && cluster_merge_enabled();
  }
  p.row_mode = row_mode;
  p.rope_on = false;
  p.early_loads = false;
  if (a.rope != nullptr) {
    if (!mma)
      return Status::Error("paged_attention: rope inside attention needs the tensor-core decode kernel "
                           "(one query row per sequence, head_dim <= 128)");
    const PagedAttentionRope& r = *a.rope;
    p.rope_on = true;
    p.early_loads = early_loads_enabled();
    p.rope.k = static_cast<const __nv_bfloat16*>(r.k);
    p.rope.v = static_cast<const __nv_bfloat16*>(r.v);
    p.rope.ld = r.ld;
    p.rope.k_cache = static_cast<__nv_bfloat16*>(r.k_cache);
    p.rope.v_cache = static_cast<__nv_bfloat16*>(r.v_cache);
    p.rope.positions = r.positions;
    p.rope.slots = r.slots;
    p.rope.inv_freq = r.inv_freq;
    p.rope.rotary_dim = r.rotary_dim;
    p.rope.interleaved = r.interleaved;
    p.rope.attention_factor = r.attention_factor;
  }
  if (mma) {
    DS_RETURN_IF_ERROR(launch_decode_mma(p, items, stream));
  } else {
    DS_RETURN_IF_ERROR(launch_decode_generic(p, items, stream));
  }
  if (p.splits > 1 && !p.counters) {
    DS_CUDA_RETURN_IF_ERROR(launch_kernel(combine_kernel, dim3(items, p.num_heads), dim3(kCombineThreads), 0, stream, p));
    DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  return Status::Ok();
}

}  // namespace ds::cuda::attn