// Block-wide building blocks of the sampling kernel (one CTA per logit row):
// vectorized row traversal, (value, id) argmax and logsumexp reductions, and
// the order key that sorts a row the way the CPU sampler does (value
// descending, then id ascending) as one unsigned 64-bit number.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdint>

namespace ds::cuda::sampling {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFullMask = 0xFFFFFFFFu;

// A logit row read in groups of 4 consecutive tokens (one float4 when the row
// is 16-byte aligned and the vocab a multiple of 4).
struct RowView {
  float* row;
  int64_t vocab;
  int64_t groups;  // ceil(vocab / 4)
  bool vec;

  // Loads group g into v[0..3]; returns how many of the 4 tokens exist.
  __device__ __forceinline__ int load(int64_t g, float v[4]) const {
    const int64_t base = g * 4;
    if (vec) {
      const float4 t = *reinterpret_cast<const float4*>(row + base);
      v[0] = t.x;
      v[1] = t.y;
      v[2] = t.z;
      v[3] = t.w;
      return 4;
    }
    const int n = vocab - base < 4 ? static_cast<int>(vocab - base) : 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = j < n ? row[base + j] : 0.0f;
    return n;
  }
};

// Monotone map float -> uint32 (-0 and +0 map to the same key, as they compare
// equal on the CPU).
__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t u = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Unique rank key: larger = earlier in (value desc, id asc) order. A prefix of
// that order is exactly {tokens with rank_key >= some cut}.
__device__ __forceinline__ uint64_t rank_key(float x, uint32_t id) {
  return (static_cast<uint64_t>(order_key(x)) << 32) | static_cast<uint64_t>(0xFFFFFFFFu - id);
}
__device__ __forceinline__ uint32_t rank_key_id(uint64_t key) {
  return 0xFFFFFFFFu - static_cast<uint32_t>(key);
}

// (value, id) "better" relation of argmax: larger value, then lower id. NaN is
// never better.
__device__ __forceinline__ void keep_better(float& bv, int& bi, float v, int i) {
  if (v > bv || (v == bv && i < bi)) {
    bv = v;
    bi = i;
  }
}

// Sum over the 32 lanes of a warp; every lane gets it.
__device__ __forceinline__ unsigned long long warp_sum_u64(unsigned long long v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}

struct ReduceSmem {
  float v[kWarps];
  int i[kWarps];
  float s[kWarps];
  float final_v;
  int final_i;
  float final_s;
};

// Block-wide reduction of per-thread (a, b) pairs under an associative
// `merge(a, b, other_a, other_b)`; lanes past the last warp contribute the
// identity (id_a, id_b). Every thread gets the result. `sm_b`/`final_b` are the
// ReduceSmem slots for the second member (i/final_i or s/final_s).
template <typename T, typename Merge>
__device__ __forceinline__ void block_reduce_pair(float& a, T& b, float id_a, T id_b, T* sm_b, T& final_b,
                                                  ReduceSmem& sm, Merge merge) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  auto warp_reduce = [&]() {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const float oa = __shfl_down_sync(kFullMask, a, off);
      const T ob = __shfl_down_sync(kFullMask, b, off);
      merge(a, b, oa, ob);
    }
  };
  warp_reduce();
  if (lane == 0) {
    sm.v[warp] = a;
    sm_b[warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < kWarps ? sm.v[lane] : id_a;
    b = lane < kWarps ? sm_b[lane] : id_b;
    warp_reduce();
    if (lane == 0) {
      sm.final_v = a;
      final_b = b;
    }
  }
  __syncthreads();
  a = sm.final_v;
  b = final_b;
}

// Block argmax of per-thread candidates; every thread gets the result.
__device__ __forceinline__ void block_argmax(float& bv, int& bi, ReduceSmem& sm) {
  block_reduce_pair(bv, bi, -INFINITY, INT_MAX, sm.i, sm.final_i, sm,
                    [](float& v, int& i, float ov, int oi) { keep_better(v, i, ov, oi); });
}

// Block argmax of the token groups [g0, g1): (value, id) of the best token,
// (-inf, INT_MAX) when no value compares; every thread gets it.
__device__ __forceinline__ void range_argmax(const RowView& rv, int64_t g0, int64_t g1, ReduceSmem& sm, float& bv,
                                             int& bi) {
  bv = -INFINITY;
  bi = INT_MAX;
  for (int64_t g = g0 + threadIdx.x; g < g1; g += kThreads) {
    float v[4];
    const int n = rv.load(g, v);
    for (int j = 0; j < n; ++j) keep_better(bv, bi, v[j], static_cast<int>(g * 4 + j));
  }
  block_argmax(bv, bi, sm);
}

// Argmax over a whole row (lowest id on ties); 0 when no value compares (NaN row).
__device__ __forceinline__ int row_argmax(const RowView& rv, ReduceSmem& sm, float* max_value) {
  float bv;
  int bi;
  range_argmax(rv, 0, rv.groups, sm, bv, bi);
  if (max_value) *max_value = bv;
  return bi == INT_MAX ? 0 : bi;
}

// Online (max, sum of exp(x - max)) pair, merged across threads.
__device__ __forceinline__ void lse_add(float& m, float& s, float x) {
  if (x == -INFINITY) return;
  if (x > m) {
    s = s * expf(m - x) + 1.0f;
    m = x;
  } else {
    s += expf(x - m);
  }
}
__device__ __forceinline__ void lse_merge(float& m, float& s, float om, float os) {
  if (om == -INFINITY) return;
  if (m == -INFINITY) {
    m = om;
    s = os;
    return;
  }
  if (om > m) {
    s = s * expf(m - om) + os;
    m = om;
  } else {
    s += os * expf(om - m);
  }
}

// log(sum(exp(row))) of the whole row; +-inf when the max is infinite.
__device__ __forceinline__ float row_logsumexp(const RowView& rv, ReduceSmem& sm) {
  float m = -INFINITY, s = 0.0f;
  for (int64_t g = threadIdx.x; g < rv.groups; g += kThreads) {
    float v[4];
    const int n = rv.load(g, v);
    for (int j = 0; j < n; ++j) lse_add(m, s, v[j]);
  }
  block_reduce_pair(m, s, -INFINITY, 0.0f, sm.s, sm.final_s, sm,
                    [](float& m1, float& s1, float m2, float s2) { lse_merge(m1, s1, m2, s2); });
  if (isinf(m)) return m;
  return m + logf(s);
}

}  // namespace ds::cuda::sampling
