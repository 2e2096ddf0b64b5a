// Host entry of the paged-attention kernels: validates parameters and the
// batch description once, then dispatches to the split-KV decode kernel
// (max_q_len == 1), the tensor-core prefill kernel (head_dim <= 128) or the
// generic per-row kernel (larger head dims).
#include "kernels/cuda/attention/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/attention/attention_internal.h"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda {
namespace {

Status check_params(const PagedAttentionParams& p) {
  if (p.num_heads <= 0 || p.num_kv_heads <= 0 || p.num_heads % p.num_kv_heads != 0)
    return Status::Error(StrCat() << "paged_attention: num_heads " << p.num_heads
                                  << " must be a positive multiple of num_kv_heads " << p.num_kv_heads);
  if (p.head_dim <= 0 || p.head_dim % 8 != 0 || p.head_dim > attn::kMaxHeadDim)
    return Status::Error(StrCat() << "paged_attention: head_dim " << p.head_dim << " must be a multiple of 8 in [8, "
                                  << attn::kMaxHeadDim << "]");
  if (p.v_head_dim != p.head_dim)
    return Status::Error(StrCat() << "paged_attention: v_head_dim " << p.v_head_dim << " != head_dim " << p.head_dim
                                  << " is not supported");
  if (p.page_size <= 0) return Status::Error(StrCat() << "paged_attention: page_size " << p.page_size << " must be positive");
  if (!std::isfinite(p.scale) || p.scale <= 0.0f)
    return Status::Error(StrCat() << "paged_attention: softmax scale " << p.scale << " must be positive and finite");
  return Status::Ok();
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

Result<int> current_sm_count() {
  int device = 0, sms = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms > 0 ? sms : 1;
}

}  // namespace

size_t paged_attention_workspace_bytes(const PagedAttentionParams& p, int max_seqs, int max_tokens, int max_kv_len) {
  (void)max_tokens;  // the prefill and generic paths need no workspace
  if (!check_params(p).ok() || max_seqs <= 0 || max_kv_len <= 0) return 0;
  // Set the kernels' smem limits now (outside any graph capture); without a
  // device this fails harmlessly and the launchers retry.
  if (!attn::configure_decode_kernels().ok() || !attn::configure_prefill_kernels().ok())
    (void)cudaGetLastError();  // clear the recorded error
  Result<int> sms = current_sm_count();
  const int num_sms = sms.ok() ? sms.value() : 132;
  // items * splits(items) is not monotone in items: take the largest.
  // Counters (start) and partials (end) are sized for their largest geometries
  // separately, so that no launch's partials reach another one's counters.
  size_t counters = 0, partials = 0;
  for (int items = 1; items <= max_seqs; ++items) {
    const attn::DecodeGeometry g =
        attn::decode_geometry(items, p.num_heads, p.num_kv_heads, p.head_dim, max_kv_len, num_sms);
    counters = std::max(counters, g.counter_bytes);
    partials = std::max(partials, g.partial_bytes);
    if (g.splits == 1) break;  // splits only shrink as items grow
  }
  const size_t bytes = counters + partials == 0 ? 0 : counters + partials + 16;  // + alignment slack
  return bytes;
}

bool paged_attention_rope_supported(const PagedAttentionParams& p, int max_q_len) {
  return max_q_len == 1 && p.head_dim <= attn::kPrefillMaxDim && check_params(p).ok();
}

namespace {

Status check_rope(const PagedAttentionRope& r, const PagedAttentionParams& p, const PagedAttentionBatch& batch,
                  const void* k_pool, const void* v_pool) {
  if (!paged_attention_rope_supported(p, batch.max_q_len))
    return Status::Error(StrCat() << "paged_attention: rope inside attention needs a decode batch (max_q_len "
                                  << batch.max_q_len << ", must be 1) and head_dim <= " << attn::kPrefillMaxDim
                                  << " (got " << p.head_dim << ")");
  if (!r.k || !r.v || !r.positions || !r.slots || !r.inv_freq || !r.k_cache || !r.v_cache)
    return Status::Error("paged_attention: rope has a null k/v/positions/slots/inv_freq/k_cache/v_cache pointer");
  if (r.k_cache != k_pool || r.v_cache != v_pool)
    return Status::Error("paged_attention: rope k_cache/v_cache must be the k_pool/v_pool of the launch");
  const int64_t kv_width = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  if (r.ld < kv_width || r.ld % 8 != 0 || !aligned16(r.k) || !aligned16(r.v))
    return Status::Error(StrCat() << "paged_attention: rope k/v row stride " << r.ld << " must be a multiple of 8 and >= "
                                  << kv_width << ", k and v 16-byte aligned");
  if (r.rotary_dim <= 0 || r.rotary_dim % 2 != 0 || r.rotary_dim > p.head_dim)
    return Status::Error(StrCat() << "paged_attention: rope rotary_dim " << r.rotary_dim << " must be even and in [2, "
                                  << p.head_dim << "]");
  if (!std::isfinite(r.attention_factor))
    return Status::Error("paged_attention: rope attention_factor must be finite");
  return Status::Ok();
}

}  // namespace

Status paged_attention(const void* q, int64_t q_ld, const void* k_pool, const void* v_pool, void* out,
                       const PagedAttentionParams& p, const PagedAttentionBatch& batch, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream, const PagedAttentionRope* rope) {
  DS_RETURN_IF_ERROR(check_params(p));
  const int64_t row_width = static_cast<int64_t>(p.num_heads) * p.head_dim;
  if (q_ld == 0) q_ld = row_width;
  if (q_ld < row_width || q_ld % 8 != 0)
    return Status::Error(StrCat() << "paged_attention: q row stride " << q_ld << " must be a multiple of 8 and >= "
                                  << row_width);
  if (batch.num_seqs < 0 || batch.num_tokens < 0)
    return Status::Error(StrCat() << "paged_attention: negative batch size (" << batch.num_seqs << " sequences, "
                                  << batch.num_tokens << " tokens)");
  if (batch.num_seqs == 0 || batch.num_tokens == 0) return Status::Ok();
  if (!q || !k_pool || !v_pool || !out || !batch.q_start || !batch.kv_len || !batch.page_table)
    return Status::Error("paged_attention: null q/k_pool/v_pool/out or batch q_start/kv_len/page_table pointer");
  if (!aligned16(q) || !aligned16(k_pool) || !aligned16(v_pool) || !aligned16(out))
    return Status::Error("paged_attention: q, k_pool, v_pool and out must be 16-byte aligned");
  if (batch.max_q_len < 1 || batch.max_kv_len < batch.max_q_len)
    return Status::Error(StrCat() << "paged_attention: max_q_len " << batch.max_q_len << " must be >= 1 and <= max_kv_len "
                                  << batch.max_kv_len);
  const int64_t pages_needed = (static_cast<int64_t>(batch.max_kv_len) + p.page_size - 1) / p.page_size;
  if (batch.page_table_stride < pages_needed)
    return Status::Error(StrCat() << "paged_attention: page_table_stride " << batch.page_table_stride << " < "
                                  << pages_needed << " pages needed for max_kv_len " << batch.max_kv_len);
  if (batch.max_q_len == 1 && batch.num_tokens > batch.num_seqs)
    return Status::Error(StrCat() << "paged_attention: decode batch (max_q_len 1) has " << batch.num_tokens
                                  << " query rows for " << batch.num_seqs << " sequences");

  if (rope != nullptr) DS_RETURN_IF_ERROR(check_rope(*rope, p, batch, k_pool, v_pool));

  attn::AttnLaunch a;
  a.rope = rope;
  a.q = q;
  a.q_ld = q_ld;
  a.k = k_pool;
  a.v = v_pool;
  a.out = out;
  a.out_ld = row_width;
  a.q_start = batch.q_start;
  a.kv_len = batch.kv_len;
  a.page_table = batch.page_table;
  a.page_table_stride = batch.page_table_stride;
  a.num_seqs = batch.num_seqs;
  a.num_tokens = batch.num_tokens;
  a.max_kv_len = batch.max_kv_len;
  a.num_heads = p.num_heads;
  a.num_kv_heads = p.num_kv_heads;
  a.head_dim = p.head_dim;
  a.page_size = p.page_size;
  a.scale = p.scale;

  DS_ASSIGN_OR_RETURN(const int sms, current_sm_count());
  if (batch.max_q_len == 1)
    return attn::launch_decode(a, /*row_mode=*/false, /*require_split=*/true, workspace, workspace_bytes, sms, stream);
  if (p.head_dim > attn::kPrefillMaxDim)
    return attn::launch_decode(a, /*row_mode=*/true, /*require_split=*/false, nullptr, 0, sms, stream);
  // Mixed batch: the decode rows (q_len == 1) go to the split-KV kernel, which
  // shares each K/V page among a head group; the prefill kernel skips them.
  const bool mixed = batch.num_seqs > 1;
  DS_RETURN_IF_ERROR(attn::launch_prefill(a, /*skip_single=*/mixed, sms, stream));
  if (!mixed) return Status::Ok();
  return attn::launch_decode(a, /*row_mode=*/false, /*require_split=*/false, workspace, workspace_bytes, sms, stream);
}

}  // namespace ds::cuda
