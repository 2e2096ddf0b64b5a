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

struct ReduceSmem {
  float v[kWarps];
  int i[kWarps];
  float s[kWarps];
  float final_v;
  int final_i;
  float final_s;
};

// Block argmax of per-thread candidates; every thread gets the result.
__device__ __forceinline__ void block_argmax(float& bv, int& bi, ReduceSmem& sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_down_sync(kFullMask, bv, off);
    const int oi = __shfl_down_sync(kFullMask, bi, off);
    keep_better(bv, bi, ov, oi);
  }
  if (lane == 0) {
    sm.v[warp] = bv;
    sm.i[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    bv = lane < kWarps ? sm.v[lane] : -INFINITY;
    bi = lane < kWarps ? sm.i[lane] : INT_MAX;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const float ov = __shfl_down_sync(kFullMask, bv, off);
      const int oi = __shfl_down_sync(kFullMask, bi, off);
      keep_better(bv, bi, ov, oi);
    }
    if (lane == 0) {
      sm.final_v = bv;
      sm.final_i = bi;
    }
  }
  __syncthreads();
  bv = sm.final_v;
  bi = sm.final_i;
}

// Argmax over a whole row (lowest id on ties); 0 when no value compares (NaN row).
__device__ __forceinline__ int row_argmax(const RowView& rv, ReduceSmem& sm, float* max_value) {
  float bv = -INFINITY;
  int bi = INT_MAX;
  for (int64_t g = threadIdx.x; g < rv.groups; g += kThreads) {
    float v[4];
    const int n = rv.load(g, v);
    for (int j = 0; j < n; ++j) keep_better(bv, bi, v[j], static_cast<int>(g * 4 + j));
  }
  block_argmax(bv, bi, sm);
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
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float om = __shfl_down_sync(kFullMask, m, off);
    const float os = __shfl_down_sync(kFullMask, s, off);
    lse_merge(m, s, om, os);
  }
  if (lane == 0) {
    sm.v[warp] = m;
    sm.s[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < kWarps ? sm.v[lane] : -INFINITY;
    s = lane < kWarps ? sm.s[lane] : 0.0f;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const float om = __shfl_down_sync(kFullMask, m, off);
      const float os = __shfl_down_sync(kFullMask, s, off);
      lse_merge(m, s, om, os);
    }
    if (lane == 0) {
      sm.final_v = m;
      sm.final_s = s;
    }
  }
  __syncthreads();
  m = sm.final_v;
  s = sm.final_s;
  if (isinf(m)) return m;
  return m + logf(s);
}

}  // namespace ds::cuda::sampling
