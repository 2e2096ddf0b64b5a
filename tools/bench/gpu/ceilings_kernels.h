// Kernels of the ceilings benchmark (ceilings_kernels.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/common/status.h"

namespace ds::cuda::bench {

// Reads `bytes` (a multiple of 16) from `src` with 16-byte loads; writes one
// word to `sink` only if the data has an impossible checksum (keeps the loads).
Status launch_stream_read(const void* src, size_t bytes, uint32_t* sink, int num_sms, cudaStream_t stream);

}  // namespace ds::cuda::bench
