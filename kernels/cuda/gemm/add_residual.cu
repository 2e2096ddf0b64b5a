// add_residual (add_residual.h): one grid-stride pass over [rows, n]. The
// vector path handles 16 bytes per thread per step (8 bf16/f16 or 4 f32) and a
// row's last n % V elements one by one; the scalar path serves misaligned
// pointers or pitches. Both read the residual with plain loads: it may be y.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/gemm/add_residual.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda {
namespace {

template <typename T>
__device__ __forceinline__ float to_f32(T v);
template <>
__device__ __forceinline__ float to_f32(float v) {
  return v;
}
template <>
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
__device__ __forceinline__ float to_f32(__half v) {
  return __half2float(v);
}
template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_f32(float v) {
  return __float2half_rn(v);
}

// Blocks stride over rows (grid y) and, within a row, threads over units: a
// row has n / V vectors followed by its n % V scalar tail elements.
template <typename T, bool VEC>
__global__ void add_residual_kernel(T* y, const T* r, int64_t rows, int64_t n, int64_t ld) {
  constexpr int64_t V = VEC ? 16 / sizeof(T) : 1;
  pdl_wait();
  pdl_trigger();
  const int64_t vecs = n / V, units = vecs + (n - vecs * V);
  for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
    T* yr = y + row * ld;
    const T* rr = r + row * ld;
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < units;
         j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      if (VEC && j < vecs) {
        uint4 a = *reinterpret_cast<const uint4*>(yr + j * V);
        const uint4 b = *reinterpret_cast<const uint4*>(rr + j * V);
        T* ta = reinterpret_cast<T*>(&a);
        const T* tb = reinterpret_cast<const T*>(&b);
#pragma unroll
        for (int i = 0; i < V; ++i) ta[i] = from_f32<T>(to_f32(ta[i]) + to_f32(tb[i]));
        *reinterpret_cast<uint4*>(yr + j * V) = a;
      } else {
        const int64_t c = vecs * V + (j - vecs);
        yr[c] = from_f32<T>(to_f32(yr[c]) + to_f32(rr[c]));
      }
    }
  }
}

template <typename T>
Status launch(void* y, const void* residual, int64_t rows, int64_t n, int64_t ld, cudaStream_t stream) {
  const bool vec = reinterpret_cast<uintptr_t>(y) % 16 == 0 && reinterpret_cast<uintptr_t>(residual) % 16 == 0 &&
                   (ld * static_cast<int64_t>(sizeof(T))) % 16 == 0;
  const int64_t v = vec ? 16 / static_cast<int64_t>(sizeof(T)) : 1;
  const int64_t units = n / v + n % v;  // per row
  const int threads = 256;
  const int64_t col_blocks = (units + threads - 1) / threads;
  const dim3 grid(static_cast<unsigned>(col_blocks < 1024 ? col_blocks : 1024),
                  static_cast<unsigned>(rows < 65535 ? rows : 65535));
  T* yt = static_cast<T*>(y);
  const T* rt = static_cast<const T*>(residual);
  const cudaError_t err = vec ? launch_kernel(add_residual_kernel<T, true>, grid, dim3(threads), 0, stream, yt, rt,
                                              rows, n, ld)
                              : launch_kernel(add_residual_kernel<T, false>, grid, dim3(threads), 0, stream, yt, rt,
                                              rows, n, ld);
  DS_CUDA_RETURN_IF_ERROR(err);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status add_residual(void* y, const void* residual, DType dtype, int64_t rows, int64_t n, int64_t ld,
                    cudaStream_t stream) {
  if (rows < 0 || n < 0)
    return Status::Error(StrCat() << "add_residual: bad shape rows=" << rows << " n=" << n << " (must be >= 0)");
  if (ld < n) return Status::Error(StrCat() << "add_residual: ld = " << ld << " is smaller than n = " << n);
  if (dtype != DType::kBF16 && dtype != DType::kF16 && dtype != DType::kF32)
    return Status::Error(StrCat() << "add_residual: dtype " << dtype_name(dtype) << " is not bf16, f16 or f32");
  if (rows == 0 || n == 0) return Status::Ok();
  if (y == nullptr || residual == nullptr) return Status::Error("add_residual: y and residual must be non-null");
  const uintptr_t esize = dtype == DType::kF32 ? 4 : 2;
  if (reinterpret_cast<uintptr_t>(y) % esize != 0 || reinterpret_cast<uintptr_t>(residual) % esize != 0)
    return Status::Error(StrCat() << "add_residual: y or residual is not aligned to its " << esize
                                  << "-byte elements");
  switch (dtype) {
    case DType::kF32: return launch<float>(y, residual, rows, n, ld, stream);
    case DType::kF16: return launch<__half>(y, residual, rows, n, ld, stream);
    default: return launch<__nv_bfloat16>(y, residual, rows, n, ld, stream);
  }
}

}  // namespace ds::cuda
