// Rope and KV write inside the tensor-core decode kernel (PagedAttentionRope,
// decode_mma_attention.cu): the decode step's rope + KV-write group is not
// launched; the attention CTA ropes its raw q rows in shared memory, and the
// CTA whose key range holds the new key (history position ctx - 1) ropes the
// row's raw k, keeps k and v to patch its tile's shared-memory row after the
// (stale) cache load, and, for head chunk 0, writes both into the cache at the
// row's slot. Same f32 arithmetic as the generated rope kernel (sincosf of
// position * inv_freq, scaled by the attention factor), rounded to bf16.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/attention/decode_common.cuh"

namespace ds::cuda::attn {

// Rope pair `pi` of a head: its dims (a, b) and whether it rotates (by
// frequency index pi); neox pairs (pi, pi + rot/2), then the dims from rot on
// pass through two at a time; interleaved pairs (2pi, 2pi + 1).
__device__ __forceinline__ bool rope_pair(const DecodeRope& r, int pi, int& a, int& b) {
  const int half_rot = r.rotary_dim / 2;
  if (r.interleaved) {
    a = 2 * pi, b = a + 1;
    return pi < half_rot;
  }
  if (pi < half_rot) {
    a = pi, b = pi + half_rot;
    return true;
  }
  a = r.rotary_dim + 2 * (pi - half_rot), b = a + 1;
  return false;
}

// One pair of dims of the new key / value per thread: threads [0, D/2) hold
// rope(k) at rope_pair's dims, threads [D/2, D) hold v at dims 2i, 2i + 1
// (i = tid - D/2); `on` only in the CTA that holds the new key.
struct NewKv {
  int a = 0, b = 0;
  __nv_bfloat16 x = __float2bfloat16(0.0f), y = __float2bfloat16(0.0f);
  bool on = false;
};

// Thread tid < rotary_dim / 2 puts (cos, sin) of rotary pair tid at the row's
// position into cs_s[tid] (visible after the caller's next barrier) and returns
// it; other threads return (1, 0).
__device__ __forceinline__ float2 decode_rope_table(const DecodeParams& p, int row, float2* cs_s) {
  const DecodeRope& r = p.rope;
  const int tid = threadIdx.x;
  if (tid >= r.rotary_dim / 2) return make_float2(1.0f, 0.0f);
  float sn, cs;
  sincosf(static_cast<float>(r.positions[row]) * r.inv_freq[tid], &sn, &cs);
  cs *= r.attention_factor;
  sn *= r.attention_factor;
  cs_s[tid] = make_float2(cs, sn);
  return cs_s[tid];
}

// When `holds_new`: this thread's share of the new key / value (c: the thread's
// decode_rope_table entry), also written into the cache by head chunk 0 when the
// row's slot is >= 0.
__device__ __forceinline__ NewKv decode_rope_new_kv(const DecodeParams& p, const DecodeWork& w, bool holds_new,
                                                    float2 c) {
  const DecodeRope& r = p.rope;
  const int tid = threadIdx.x, half = p.head_dim / 2;
  NewKv nk;
  if (!holds_new || tid >= p.head_dim) return nk;
  const int64_t kv_off = w.row * r.ld + static_cast<int64_t>(w.kvh) * p.head_dim;
  if (tid < half) {  // a pair of the new key: rotating (tid < rotary_dim / 2) or passing through
    int a, b;
    if (rope_pair(r, tid, a, b)) {
      const float xa = __bfloat162float(r.k[kv_off + a]), xb = __bfloat162float(r.k[kv_off + b]);
      nk = NewKv{a, b, __float2bfloat16(xa * c.x - xb * c.y), __float2bfloat16(xb * c.x + xa * c.y), true};
    } else {
      nk = NewKv{a, b, r.k[kv_off + a], r.k[kv_off + b], true};
    }
  } else {  // v
    const int a = 2 * (tid - half);
    nk = NewKv{a, a + 1, r.v[kv_off + a], r.v[kv_off + a + 1], true};
  }
  const int32_t slot = r.slots[w.row];
  if (slot >= 0 && blockIdx.y % p.head_chunks == 0) {
    __nv_bfloat16* dst =
        (tid < half ? r.k_cache : r.v_cache) + (static_cast<int64_t>(slot) * p.num_kv_heads + w.kvh) * p.head_dim;
    dst[nk.a] = nk.x;
    dst[nk.b] = nk.y;
  }
  return nk;
}

// Ropes the raw q rows [0, ng) of q_s (row stride `stride`) in place with the cs_s table.
__device__ __forceinline__ void decode_rope_q(const DecodeParams& p, __nv_bfloat16* q_s, int stride, int ng,
                                              const float2* cs_s) {
  const int half = p.head_dim / 2;
  for (int i = threadIdx.x; i < ng * half; i += blockDim.x) {
    int a, b;
    if (!rope_pair(p.rope, i % half, a, b)) continue;
    const float2 c = cs_s[i % half];
    __nv_bfloat16* qr = q_s + (i / half) * stride;
    const float xa = __bfloat162float(qr[a]), xb = __bfloat162float(qr[b]);
    qr[a] = __float2bfloat16(xa * c.x - xb * c.y);
    qr[b] = __float2bfloat16(xb * c.x + xa * c.y);
  }
}

}  // namespace ds::cuda::attn
