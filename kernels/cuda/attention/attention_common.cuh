// Device helpers shared by the paged-attention kernels: 16-byte cp.async with
// zero fill, bf16 packing, page-table addressing and the split-KV geometry.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

#include "kernels/cuda/attention/attention_internal.h"
#include "runtime/cuda/cp_async.cuh"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda::attn {

constexpr float kLog2e = 1.4426950408889634f;
// Keys per split granule: every split covers a multiple of this many keys.
constexpr int kSplitGranule = 64;
// Decode with kv length bounds up to this splits into single-tile (64-key) parts.
constexpr int kSingleKernelMaxKv = 512;

// The batch every paged-attention kernel reads (prefill, decode and the split
// combine extend it): queries, paged K/V pools, output, ragged sequence bounds.
struct BatchParams {
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
  float scale_log2;
};

// BatchParams of a validated launch description.
inline void set_batch_params(BatchParams& p, const AttnLaunch& a) {
  p.q = static_cast<const __nv_bfloat16*>(a.q);
  p.q_ld = a.q_ld;
  p.k = static_cast<const __nv_bfloat16*>(a.k);
  p.v = static_cast<const __nv_bfloat16*>(a.v);
  p.out = static_cast<__nv_bfloat16*>(a.out);
  p.out_ld = a.out_ld;
  p.q_start = a.q_start;
  p.kv_len = a.kv_len;
  p.page_table = a.page_table;
  p.pt_stride = a.page_table_stride;
  p.num_seqs = a.num_seqs;
  p.num_tokens = a.num_tokens;
  p.num_heads = a.num_heads;
  p.num_kv_heads = a.num_kv_heads;
  p.head_dim = a.head_dim;
  p.page_size = a.page_size;
  p.group = a.num_heads / a.num_kv_heads;
  p.scale_log2 = a.scale * kLog2e;
}

// 2^x on the SFU (ex2.approx.ftz: ~2 ulp, 2^-inf = +0); exp2f without fast
// math adds a denormal-scaling sequence around it.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// 8 bf16 (one 16-byte chunk) -> 8 floats.
__device__ __forceinline__ void unpack_bf16x8(const uint4& v, float* out) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

// Tensor-core fragments (mma.sync m16n8k16 bf16 -> f32 and ldmatrix).
__device__ __forceinline__ void ldmatrix_x4(uint32_t* r, const __nv_bfloat16* p) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t* r, const __nv_bfloat16* p) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}
// d += a (16x16, row) * b (16x8, col); bf16 in, f32 accumulate.
__device__ __forceinline__ void mma_16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Element offset of (token j of a sequence, kv head) in an NHD pool.
__device__ __forceinline__ int64_t kv_offset(const int32_t* pages, int j, int page_size, int num_kv_heads, int kvh,
                                             int dim) {
  const int64_t page = pages[j / page_size];
  return ((page * page_size + j % page_size) * num_kv_heads + kvh) * static_cast<int64_t>(dim);
}

// Number of KV splits of the decode kernel. Depends only on host-known bounds
// (work items, head groups, the kv length bound, SM count), never on actual
// lengths, so a CUDA graph captured with it stays valid.
// split_short = false: bounds <= kSingleKernelMaxKv run unsplit (DSRT_ATTN_SHORT_SPLITS=0).
// DSRT_ATTN_SPLIT_FLOOR=0: the KV split count rounds up (more CTAs than resident
// slots) and every split decode of <= 8 splits merges in a cluster (A/B switch).
inline bool split_floor_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("DSRT_ATTN_SPLIT_FLOOR");
    return !(e && e[0] == '0' && e[1] == 0);
  }();
  return on;
}

inline int num_kv_splits(int items, int groups, int max_kv_len, int num_sms, bool split_short = true) {
  const int base = items * groups;
  if (base <= 0 || max_kv_len <= 0) return 1;
  if (!split_short && max_kv_len <= kSingleKernelMaxKv) return 1;
  // Short bounds: splits of one 64-key tile each, so that a CTA's keys arrive in one
  // round trip instead of a chain of pipelined tiles; longer ones keep >= 128 keys
  // per split (two tiles, the second in flight while the first is used).
  const int granules = max_kv_len <= kSingleKernelMaxKv ? 1 : 2;
  const int max_by_len = (max_kv_len + granules * kSplitGranule - 1) / (granules * kSplitGranule);
  // At most two CTAs per SM (what fits at head_dim 128: registers), all resident in one
  // wave: the most splits whose CTAs all fit, never a tail wave. (Rounding up instead,
  // e.g. 3 splits of 128 head groups = 384 CTAs for 264 slots, made a second wave: 7B
  // 32 x 512 keys 26.5 us against 17.3 us with 2 splits, H200 batch 130.)
  // DSRT_ATTN_CTAS_PER_SM=N (1-16) sets the per-SM target; DSRT_ATTN_SPLIT_FLOOR=0
  // rounds up as before (A/B runs).
  static const int per_sm = [] {
    const char* e = std::getenv("DSRT_ATTN_CTAS_PER_SM");
    const int v = e ? std::atoi(e) : 0;
    return v >= 1 && v <= 16 ? v : 2;
  }();
  const int slots = per_sm * num_sms;
  const int want = split_floor_enabled() ? slots / base : (slots + base - 1) / base;
  int splits = want < max_by_len ? want : max_by_len;
  if (splits > 128) splits = 128;
  return splits < 1 ? 1 : splits;
}

// Keys per split (a multiple of kSplitGranule).
inline int split_chunk_len(int max_kv_len, int splits) {
  const int per = (max_kv_len + splits - 1) / splits;
  return (per + kSplitGranule - 1) / kSplitGranule * kSplitGranule;
}

// Raises `kernel`'s dynamic smem limit to `bytes` once per device (bit per
// device in `done`). Not a stream operation: safe before or during capture.
template <typename Kernel>
Status ensure_smem_limit(Kernel kernel, size_t bytes, std::atomic<uint64_t>& done) {
  int device = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  const uint64_t bit = uint64_t{1} << (device & 63);
  if (done.load(std::memory_order_acquire) & bit) return Status::Ok();
  DS_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  done.fetch_or(bit, std::memory_order_acq_rel);
  return Status::Ok();
}

}  // namespace ds::cuda::attn
