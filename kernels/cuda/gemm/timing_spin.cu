// launch_timing_spin (timing_spin.h).
#include "kernels/cuda/gemm/timing_spin.h"

#include "runtime/cuda/cuda_check.h"

namespace ds::cuda {
namespace {

__global__ void timing_spin_kernel(uint32_t ns) {
  uint64_t start;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  for (;;) {
    uint64_t now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    if (now - start >= ns) break;
    __nanosleep(500);
  }
}

}  // namespace

Status launch_timing_spin(uint32_t ns, cudaStream_t stream) {
  timing_spin_kernel<<<1, 1, 0, stream>>>(ns);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda
