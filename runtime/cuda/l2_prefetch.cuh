// Bulk L2 prefetch (sm_90 `cp.async.bulk.prefetch.L2`): asks the memory system
// to bring [ptr, ptr + bytes) into L2 without waiting for it. The GEMV kernels
// use it for GemmArgs::prefetch_weights (each warp prefetches its own weight
// slice before its PDL wait). Weights are immutable, so the hint never changes
// a result; below sm_90, or for an unaligned or empty range, it does nothing.
#pragma once

#include <cstdint>

namespace ds::cuda {

// ptr 16-byte aligned, bytes a multiple of 16 (else nothing is issued).
__device__ __forceinline__ void l2_prefetch_bulk(const void* ptr, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (bytes != 0 && ((reinterpret_cast<uintptr_t>(ptr) | bytes) & 15) == 0)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(ptr), "r"(bytes) : "memory");
#else
  (void)ptr, (void)bytes;
#endif
}

}  // namespace ds::cuda
