// Stand-ins for the generated fused kernels (decode_layer_kernels.h).
#include <cuda_bf16.h>

#include <algorithm>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"
#include "tools/bench/gpu/decode_layer_kernels.h"

namespace ds::cuda::bench {
namespace {

using bf16 = __nv_bfloat16;
constexpr int kHeadDim = 128;

struct alignas(16) Vec8 {
  bf16 v[8];
};

int threads_for(int64_t width) {
  return static_cast<int>(std::clamp<int64_t>((width / 8 + 31) / 32 * 32, 32, 1024));
}

// Block 0 spreads 64 KiB bulk prefetches over its threads.
__device__ void l2_prefetch(L2Prefetch pf) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (blockIdx.x != 0 || pf.bytes == 0) return;
  constexpr size_t kChunk = size_t{64} << 10;
  const size_t chunks = (pf.bytes + kChunk - 1) / kChunk;
  for (size_t i = threadIdx.x; i < chunks; i += blockDim.x) {
    const size_t off = i * kChunk;
    const unsigned size = static_cast<unsigned>((pf.bytes - off < kChunk ? pf.bytes - off : kChunk) & ~size_t{15});
    if (size) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(static_cast<const char*>(pf.ptr) + off),
                           "r"(size) : "memory");
  }
#endif
}

__device__ float block_sum(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = 0.0f;
  for (int i = 0; i < static_cast<int>((blockDim.x + 31) / 32); ++i) t += red[i];
  return t;
}

__global__ void add_rmsnorm_kernel(bf16* resid, const bf16* delta, const bf16* w, bf16* out, int64_t hidden,
                                   L2Prefetch pf) {
  pdl_wait();
  pdl_trigger();
  l2_prefetch(pf);
  __shared__ float red[32];
  const int64_t row = blockIdx.x;
  Vec8* r = reinterpret_cast<Vec8*>(resid + row * hidden);
  const Vec8* d = reinterpret_cast<const Vec8*>(delta + row * hidden);
  const Vec8* wv = reinterpret_cast<const Vec8*>(w);
  Vec8* o = reinterpret_cast<Vec8*>(out + row * hidden);
  constexpr int kMaxChunks = 3;  // hidden <= 3 * 1024 * 8
  float x[kMaxChunks][8];
  float ss = 0.0f;
#pragma unroll
  for (int c = 0; c < kMaxChunks; ++c) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(c) * blockDim.x;
    if (i < hidden / 8) {
      Vec8 a = r[i], b = d[i];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        a.v[j] = __float2bfloat16_rn(__bfloat162float(a.v[j]) + __bfloat162float(b.v[j]));
        x[c][j] = __bfloat162float(a.v[j]);
        ss += x[c][j] * x[c][j];
      }
      r[i] = a;
    }
  }
  const float inv = rsqrtf(block_sum(ss, red) / static_cast<float>(hidden) + 1e-6f);
#pragma unroll
  for (int c = 0; c < kMaxChunks; ++c) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(c) * blockDim.x;
    if (i < hidden / 8) {
      const Vec8 g = wv[i];
      Vec8 y;
#pragma unroll
      for (int j = 0; j < 8; ++j) y.v[j] = __float2bfloat16_rn(x[c][j] * inv * __bfloat162float(g.v[j]));
      o[i] = y;
    }
  }
}

__global__ void rope_kv_kernel(const bf16* qkv, bf16* q_out, bf16* k_pool, bf16* v_pool, const int32_t* slot,
                               int heads, int kv_heads, int position, L2Prefetch pf) {
  pdl_wait();
  pdl_trigger();
  l2_prefetch(pf);
  const int64_t row = blockIdx.x;
  const int64_t width = static_cast<int64_t>(heads + 2 * kv_heads) * kHeadDim;
  const bf16* src = qkv + row * width;
  const int64_t s = slot[row];
  // One thread per rotated pair (q and k heads), then v copied.
  const int pairs = (heads + kv_heads) * (kHeadDim / 2);
  for (int i = threadIdx.x; i < pairs; i += blockDim.x) {
    const int head = i / (kHeadDim / 2), d = i % (kHeadDim / 2);
    const float inv_freq = __powf(1.0e6f, -2.0f * d / kHeadDim);
    float sn, cs;
    __sincosf(position * inv_freq, &sn, &cs);
    const float a = __bfloat162float(src[head * kHeadDim + d]);
    const float b = __bfloat162float(src[head * kHeadDim + d + kHeadDim / 2]);
    const bf16 ra = __float2bfloat16_rn(a * cs - b * sn), rb = __float2bfloat16_rn(b * cs + a * sn);
    if (head < heads) {
      q_out[row * heads * kHeadDim + head * kHeadDim + d] = ra;
      q_out[row * heads * kHeadDim + head * kHeadDim + d + kHeadDim / 2] = rb;
    } else if (s >= 0) {
      bf16* k = k_pool + (s * kv_heads + (head - heads)) * kHeadDim;
      k[d] = ra;
      k[d + kHeadDim / 2] = rb;
    }
  }
  if (s >= 0)
    for (int i = threadIdx.x; i < kv_heads * kHeadDim; i += blockDim.x)
      v_pool[s * kv_heads * kHeadDim + i] = src[(heads + kv_heads) * kHeadDim + i];
}

__global__ void silu_mul_kernel(const bf16* gu, bf16* out, int64_t inter, L2Prefetch pf) {
  pdl_wait();
  pdl_trigger();
  l2_prefetch(pf);
  const int64_t row = blockIdx.x;
  const Vec8* g = reinterpret_cast<const Vec8*>(gu + row * 2 * inter);
  const Vec8* u = reinterpret_cast<const Vec8*>(gu + row * 2 * inter + inter);
  Vec8* o = reinterpret_cast<Vec8*>(out + row * inter);
  for (int64_t i = threadIdx.x; i < inter / 8; i += blockDim.x) {
    const Vec8 a = g[i], b = u[i];
    Vec8 y;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float x = __bfloat162float(a.v[j]);
      y.v[j] = __float2bfloat16_rn(x / (1.0f + __expf(-x)) * __bfloat162float(b.v[j]));
    }
    o[i] = y;
  }
}

}  // namespace

Status launch_add_rmsnorm(void* resid, const void* delta, const void* w, void* out, int64_t rows, int64_t hidden,
                          cudaStream_t stream, L2Prefetch pf) {
  if (hidden % 8 != 0 || hidden > 3 * 1024 * 8) return Status::Error("add_rmsnorm: hidden must be 8k and <= 24576");
  DS_CUDA_RETURN_IF_ERROR(launch_kernel(add_rmsnorm_kernel, dim3(static_cast<unsigned>(rows)),
                                        dim3(threads_for(hidden)), 0, stream, static_cast<bf16*>(resid),
                                        static_cast<const bf16*>(delta), static_cast<const bf16*>(w),
                                        static_cast<bf16*>(out), hidden, pf));
  return Status::Ok();
}

Status launch_rope_kv(const void* qkv, void* q_out, void* k_pool, void* v_pool, const int32_t* slot, int64_t rows,
                      int heads, int kv_heads, int position, cudaStream_t stream, L2Prefetch pf) {
  DS_CUDA_RETURN_IF_ERROR(launch_kernel(rope_kv_kernel, dim3(static_cast<unsigned>(rows)), dim3(512), 0, stream,
                                        static_cast<const bf16*>(qkv), static_cast<bf16*>(q_out),
                                        static_cast<bf16*>(k_pool), static_cast<bf16*>(v_pool), slot, heads, kv_heads,
                                        position, pf));
  return Status::Ok();
}

Status launch_silu_mul(const void* gu, void* out, int64_t rows, int64_t inter, cudaStream_t stream,
                       L2Prefetch pf) {
  if (inter % 8 != 0) return Status::Error("silu_mul: inter must be a multiple of 8");
  DS_CUDA_RETURN_IF_ERROR(launch_kernel(silu_mul_kernel, dim3(static_cast<unsigned>(rows)), dim3(threads_for(inter)),
                                        0, stream, static_cast<const bf16*>(gu), static_cast<bf16*>(out), inter, pf));
  return Status::Ok();
}

}  // namespace ds::cuda::bench
