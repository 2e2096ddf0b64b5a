// A one-thread kernel that keeps a stream busy for a while, queued ahead of a
// timed section so that the host has enqueued every launch of the section
// before the GPU reaches its start event: the events then time GPU work only,
// not host launch cost (cuBLASLt's is several microseconds per call).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/common/status.h"

namespace ds::cuda {

// Spins for `ns` nanoseconds of %globaltimer on `stream` (not PDL-aware: it
// waits for everything before it and everything after it waits for it).
Status launch_timing_spin(uint32_t ns, cudaStream_t stream);

}  // namespace ds::cuda
