// Device side of CustomAllReduce (custom_all_reduce.h), shared by the plain
// one-shot kernel (custom_all_reduce.cu) and the one with the fused RMSNorm
// (custom_all_reduce_norm.cu): the peer table, system-scope flag accesses, the
// 16-byte vector conversions, and steps 1-4 of one block's chunk (stage own
// input, raise flags, wait for the peers, sum in rank order).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "runtime/dist/cuda/custom_all_reduce.h"

namespace ds::cuda::car {

constexpr int kThreads = 256;
constexpr size_t kChunkBytes = 8192;  // bytes per block (the grid grows with the message)

struct PeerPtrs {
  const uint8_t* staging[CustomAllReduce::kMaxRanks];  // each rank's staging base (2 halves)
  uint32_t* flags[CustomAllReduce::kMaxRanks];         // each rank's flag array
};

__device__ __forceinline__ void store_release_sys(uint32_t* p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ uint32_t load_acquire_sys(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

template <typename T>
struct Vec;  // 16 bytes of T <-> 8 or 4 floats
template <>
struct Vec<__nv_bfloat16> {
  static constexpr int kN = 8;
  __device__ static void load(const uint4& v, float* f) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
    for (int i = 0; i < 4; ++i) {
      const float2 x = __bfloat1622float2(h[i]);
      f[2 * i] = x.x, f[2 * i + 1] = x.y;
    }
  }
  __device__ static uint4 store(const float* f) {
    uint4 v;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&v);
    for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    return v;
  }
};
template <>
struct Vec<__half> {
  static constexpr int kN = 8;
  __device__ static void load(const uint4& v, float* f) {
    const __half2* h = reinterpret_cast<const __half2*>(&v);
    for (int i = 0; i < 4; ++i) {
      const float2 x = __half22float2(h[i]);
      f[2 * i] = x.x, f[2 * i + 1] = x.y;
    }
  }
  __device__ static uint4 store(const float* f) {
    uint4 v;
    __half2* h = reinterpret_cast<__half2*>(&v);
    for (int i = 0; i < 4; ++i) h[i] = __floats2half2_rn(f[2 * i], f[2 * i + 1]);
    return v;
  }
};
template <>
struct Vec<float> {
  static constexpr int kN = 4;
  __device__ static void load(const uint4& v, float* f) {
    f[0] = __uint_as_float(v.x), f[1] = __uint_as_float(v.y), f[2] = __uint_as_float(v.z), f[3] = __uint_as_float(v.w);
  }
  __device__ static uint4 store(const float* f) {
    return make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]), __float_as_uint(f[3]));
  }
};

// Steps 1-4 of one block's chunk [begin, end) of 16-byte vectors (block slot b
// of the flags and counters). Returns the sum of squares of the values this
// thread stored (kSquares) or 0.
template <typename T, bool kSquares>
__device__ __forceinline__ float all_reduce_chunk(const PeerPtrs& peers, int rank, int world, const uint4* in,
                                                  const uint4* residual, uint4* out, size_t begin, size_t end, int b,
                                                  size_t half_bytes, uint32_t* counter, long long timeout_ns) {
  __shared__ uint32_t epoch_s;
  if (threadIdx.x == 0) epoch_s = counter[b] + 1;
  __syncthreads();
  const uint32_t epoch = epoch_s;
  const size_t half = (epoch & 1u) * half_bytes;

  // 1. Own input into own staging half.
  uint4* mine = reinterpret_cast<uint4*>(const_cast<uint8_t*>(peers.staging[rank]) + half);
  for (size_t i = begin + threadIdx.x; i < end; i += kThreads) mine[i] = in[i];
  __syncthreads();
  // 2. Tell every rank (self included) that this block's chunk is staged.
  if (threadIdx.x < world) {
    __threadfence_system();
    store_release_sys(peers.flags[threadIdx.x] + b * CustomAllReduce::kMaxRanks + rank, epoch);
  }
  // 3. Wait for every rank's chunk (bounded: a missing peer traps).
  if (threadIdx.x < world) {
    const uint32_t* f = peers.flags[rank] + b * CustomAllReduce::kMaxRanks + threadIdx.x;
    const unsigned long long start = global_ns();
    while (static_cast<int32_t>(load_acquire_sys(f) - epoch) < 0) {
      if (static_cast<long long>(global_ns() - start) > timeout_ns) __trap();
    }
  }
  __syncthreads();
  // 4. Sum the ranks' chunks in rank order (the same bits on every rank), after
  //    the residual when there is one (identical on every rank: the replicated
  //    hidden state). residual may be out: each element is read before it is written.
  constexpr int kN = Vec<T>::kN;
  float squares = 0.0f;
  for (size_t i = begin + threadIdx.x; i < end; i += kThreads) {
    float acc[kN], x[kN];
    Vec<T>::load(reinterpret_cast<const uint4*>(peers.staging[0] + half)[i], acc);
    if (residual != nullptr) {
      Vec<T>::load(residual[i], x);
      for (int k = 0; k < kN; ++k) acc[k] = x[k] + acc[k];
    }
    for (int r = 1; r < world; ++r) {
      Vec<T>::load(reinterpret_cast<const uint4*>(peers.staging[r] + half)[i], x);
      for (int k = 0; k < kN; ++k) acc[k] += x[k];
    }
    const uint4 v = Vec<T>::store(acc);
    out[i] = v;
    if constexpr (kSquares) {
      Vec<T>::load(v, x);  // the stored (rounded) values
      for (int k = 0; k < kN; ++k) squares = fmaf(x[k], x[k], squares);
    }
  }
  if (threadIdx.x == 0) counter[b] = epoch;
  return squares;
}

}  // namespace ds::cuda::car
