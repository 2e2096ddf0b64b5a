// Device helpers of the custom all-reduce kernels (custom_all_reduce.cu: the
// staged and LL protocols): element words <-> float, the rank-order sum both
// protocols share, and the LL line store / load / bounded wait. Include from
// that .cu file only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "runtime/common/dtype.h"
#include "runtime/cuda/pdl.cuh"
#include "runtime/dist/cuda/custom_all_reduce.h"

namespace ds::cuda::ar_detail {

constexpr int kLlThreads = 256;  // LL kernels: one 8-byte payload line per thread

// The start of every all-reduce kernel (launched with PDL, behind a GEMV that
// triggers early): waits for the previous kernels before touching the input or
// the epoch counter, lets the next kernel (which waits for this one to finish)
// be scheduled at once, and returns this call's epoch, *counter + 1, read once
// per block. Every thread of the block calls it.
__device__ __forceinline__ uint32_t begin_call(const uint32_t* counter) {
  __shared__ uint32_t epoch;
  pdl_wait();
  pdl_trigger();
  if (threadIdx.x == 0) epoch = *counter + 1;
  __syncthreads();
  return epoch;
}

__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Element type <-> float, one 32-bit word at a time (2 bf16/f16 or 1 f32).
template <typename T>
struct Word;
template <>
struct Word<__nv_bfloat16> {
  static constexpr int kN = 2;
  __device__ static void unpack(uint32_t w, float* f) {
    const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w));
    f[0] = x.x, f[1] = x.y;
  }
  __device__ static uint32_t pack(const float* f) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(f[0], f[1]);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
};
template <>
struct Word<__half> {
  static constexpr int kN = 2;
  __device__ static void unpack(uint32_t w, float* f) {
    const float2 x = __half22float2(*reinterpret_cast<const __half2*>(&w));
    f[0] = x.x, f[1] = x.y;
  }
  __device__ static uint32_t pack(const float* f) {
    const __half2 h = __floats2half2_rn(f[0], f[1]);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
};
template <>
struct Word<float> {
  static constexpr int kN = 1;
  __device__ static void unpack(uint32_t w, float* f) { f[0] = __uint_as_float(w); }
  __device__ static uint32_t pack(const float* f) { return __float_as_uint(f[0]); }
};

// W words of T <-> W * Word<T>::kN floats.
template <typename T, int W>
struct Vec {
  static constexpr int kN = W * Word<T>::kN;
  __device__ static void load(const uint32_t (&w)[W], float* f) {
#pragma unroll
    for (int i = 0; i < W; ++i) Word<T>::unpack(w[i], f + i * Word<T>::kN);
  }
  __device__ static void store(const float* f, uint32_t (&w)[W]) {
#pragma unroll
    for (int i = 0; i < W; ++i) w[i] = Word<T>::pack(f + i * Word<T>::kN);
  }
};

// Adds the W words `v` of rank r to acc in the order both kernels use: acc =
// in_0, then residual + acc, then acc + in_1 ... + in_{N-1}, every rank alike.
template <typename T, int W>
__device__ __forceinline__ void add_rank(int r, const uint32_t (&v)[W], const uint32_t* residual, float* acc) {
  using V = Vec<T, W>;
  if (r == 0) {
    V::load(v, acc);
    if (residual != nullptr) {
      uint32_t rw[W];
#pragma unroll
      for (int i = 0; i < W; ++i) rw[i] = residual[i];
      float x[V::kN];
      V::load(rw, x);
#pragma unroll
      for (int k = 0; k < V::kN; ++k) acc[k] = x[k] + acc[k];
    }
  } else {
    float x[V::kN];
    V::load(v, x);
#pragma unroll
    for (int k = 0; k < V::kN; ++k) acc[k] += x[k];
  }
}

// Lines per (parity, source rank) region: whole blocks, since every thread of a
// launched block pushes its line.
inline size_t ll_lines_per_rank(size_t ll_max_bytes) { return (ll_max_bytes / 8 + kLlThreads - 1) / kLlThreads * kLlThreads; }

struct LlPeers {
  uint4* recv[CustomAllReduce::kMaxRanks];  // each rank's receive buffer: [2][world][lines_per_rank]
};

__device__ __forceinline__ void ll_store(uint4* p, uint2 v, uint32_t epoch) {
  asm volatile("st.volatile.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(epoch), "r"(v.y),
               "r"(epoch)
               : "memory");
}

__device__ __forceinline__ uint4 ll_load(const uint4* p) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p)
               : "memory");
  return v;
}

// The payload of line p once it holds `epoch` (bounded: a missing peer traps).
__device__ __forceinline__ uint2 ll_wait(const uint4* p, uint32_t epoch, long long timeout_ns) {
  uint4 v = ll_load(p);
  if (v.y == epoch && v.w == epoch) return make_uint2(v.x, v.z);
  const unsigned long long start = global_ns();
  for (;;) {
    v = ll_load(p);
    if (v.y == epoch && v.w == epoch) return make_uint2(v.x, v.z);
    if (static_cast<long long>(global_ns() - start) > timeout_ns) __trap();
  }
}

// launch(T{}) with T the element type of dtype (bf16, f16 or f32).
template <typename F>
cudaError_t for_dtype(DType dtype, F&& launch) {
  switch (dtype) {
    case DType::kBF16: return launch(__nv_bfloat16{});
    case DType::kF16: return launch(__half{});
    default: return launch(float{});
  }
}

}  // namespace ds::cuda::ar_detail
