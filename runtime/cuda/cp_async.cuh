// Asynchronous 16-byte global -> shared copies (cp.async, sm_80+), shared by the
// kernels that stage operands through shared memory (decode/prefill attention,
// the cp.async GEMV). Include from .cu files only.
#pragma once

#include <cuda_runtime.h>

namespace ds::cuda {

// Copies 16 bytes; copies nothing and zero-fills when !valid (gmem must still be
// a mapped address: callers pass a base pointer then).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace ds::cuda
