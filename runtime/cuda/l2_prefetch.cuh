// Device side of L2Prefetch (runtime/cuda/l2_prefetch.h).
#pragma once

#include <cstdint>

#include "runtime/cuda/l2_prefetch.h"

namespace ds::cuda {

// One lane's slice of a prefetch: lane `lane` of part `part` of `parts` takes
// 1/(32 parts) of the range (16-byte granules) as one bulk prefetch. Split in
// two calls so that kernels whose hot loop holds many registers compute the
// slice early (three live registers) and issue it after their PDL wait.
struct L2PrefetchSlice {
  const char* ptr;
  uint32_t bytes;  // 0: nothing
};

__device__ __forceinline__ L2PrefetchSlice l2_prefetch_slice(const L2Prefetch& pf, unsigned part, unsigned parts,
                                                             int lane) {
  const uint64_t granules = pf.bytes >> 4;
  if (granules == 0 || (reinterpret_cast<uintptr_t>(pf.ptr) & 15) != 0 || parts == 0) return {nullptr, 0};
  const uint64_t slices = static_cast<uint64_t>(parts) * 32, idx = static_cast<uint64_t>(part) * 32 + lane;
  const uint64_t g0 = granules * idx / slices, g1 = granules * (idx + 1) / slices;
  const uint64_t n = (g1 - g0) << 4;
  return {static_cast<const char*>(pf.ptr) + (g0 << 4), static_cast<uint32_t>(n < (1u << 30) ? n : (1u << 30))};
}

// Fire and forget: nothing waits for the data. A no-op below sm_90.
__device__ __forceinline__ void l2_prefetch_issue(const L2PrefetchSlice& s) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (s.bytes != 0) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(s.ptr), "r"(s.bytes) : "memory");
#else
  (void)s;
#endif
}

// Both at once, for kernels with registers to spare (every lane of one warp calls it).
__device__ __forceinline__ void l2_prefetch_part(const L2Prefetch& pf, unsigned part, unsigned parts, int lane) {
  l2_prefetch_issue(l2_prefetch_slice(pf, part, parts, lane));
}

// The CTA's linear index and the grid's CTA count (any grid shape).
__device__ __forceinline__ unsigned cta_linear_index() {
  return blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
}
__device__ __forceinline__ unsigned cta_count() { return gridDim.x * gridDim.y * gridDim.z; }

}  // namespace ds::cuda
