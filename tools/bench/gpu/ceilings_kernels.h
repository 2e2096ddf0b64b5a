// Kernels of the ceilings benchmark (ceilings_kernels.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/common/status.h"

namespace ds::cuda::bench {

// Reads `bytes` (a multiple of 16) from `src` with 16-byte loads; writes one
// word to `sink` only if the data has an impossible checksum (keeps the loads).
Status launch_stream_read(const void* src, size_t bytes, uint32_t* sink, int num_sms, cudaStream_t stream);

// One launch of the PDL boundary probe (PDL attribute as the executor sets it):
// `blocks` blocks of 128 threads that trigger, wait, and (read_x) read the
// k-element bf16 row x (k % 8 == 0) per warp and write one float per warp to y
// (4 * blocks floats).
Status launch_pdl_probe(const void* x, int k, float* y, int blocks, bool read_x, cudaStream_t stream);

}  // namespace ds::cuda::bench
