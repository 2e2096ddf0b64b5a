// Device side of programmatic dependent launch (see pdl.h) and the launcher
// the PDL-aware kernels use. Include from .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "runtime/cuda/pdl.h"

namespace ds::cuda {

// Blocks until the grids this one depends on have completed and their memory
// is visible; a no-op when the kernel was launched without the attribute (and
// before sm_90). Call before the first access to anything a previous kernel writes.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next PDL-launched kernel of the stream be scheduled (it still waits
// for this grid's completion in its pdl_wait()). A no-op without dependents.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when
// pdl_active(). The kernel must call pdl_wait() before touching non-weight memory.
template <typename... Params, typename... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          Args&&... args) {
  cudaLaunchAttribute attr;
  cudaLaunchConfig_t cfg = pdl_launch_config(grid, block, smem, stream, &attr);
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace ds::cuda
