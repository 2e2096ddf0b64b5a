// Timing of ds::cuda::paged_attention on synthetic paged batches (shared by
// ds_attention_bench and the speed report of tests/cuda/attention).
#pragma once

#include <cstddef>
#include <vector>

#include "runtime/common/status.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda {

struct AttnShape {
  const char* name;
  int heads, kv_heads, dim;
};

struct AttnTiming {
  double us = 0.0;        // mean per launch
  size_t kv_bytes = 0;    // K/V bytes of the histories (each read once)
  double flops = 0.0;     // 4 * dim * heads * sum over query rows of visible keys
  double gbps() const { return kv_bytes / (us * 1e3); }
  double tflops() const { return flops / (us * 1e6); }
};

// One batch: sequence i has q_lens[i] query rows at the end of a kv_lens[i]
// history (page size 16, pages shuffled over the pool). 3 warm-ups, then the
// mean over one CUDA graph of `reps` launches (no host launch gaps timed); pools smaller than ~200 MB are
// replicated and rotated so that K/V come from HBM, not L2.
Result<AttnTiming> time_paged_attention(const AttnShape& s, const std::vector<int>& q_lens,
                                        const std::vector<int>& kv_lens, int reps, const Stream& stream);

}  // namespace ds::cuda
