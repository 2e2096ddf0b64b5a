// Decoy weights for kAuto's timed launches (GemmRunner). kAuto times each
// candidate as three chained launches; on one weight that fits in L2 the second
// and third launch read it from L2, and the kernels whose loads leave it there
// look faster than in a decode step, where every linear's weight comes from
// DRAM (H200, 7B qkv on gemv-warp-s1: 9.6 us timed that way, 11.9 us in a chain
// of distinct weights; docs/PERF.md, session 15). TimingDecoys hands out zeroed
// copies of the weight's shape in turn, at least twice the L2 size in all (at
// most three times), owned until it is destroyed.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "runtime/common/status.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda::detail {

class TimingDecoys {
 public:
  // Decoys for `a`'s weight when it is smaller than l2_bytes and the device
  // memory for them is free; otherwise next() returns a.w itself. DSRT_GEMM_TIMING_DECOYS=0
  // turns them off (A/B runs). The zeroing is queued on `stream`.
  static Result<TimingDecoys> make(const GemmArgs& a, size_t l2_bytes, cudaStream_t stream);
  // The weight pointer for the next timed launch.
  const void* next() { return weights_[turn_++ % weights_.size()]; }
  bool active() const { return pool_.bytes() > 0; }

 private:
  DeviceBuffer pool_;
  std::vector<const void*> weights_;
  size_t turn_ = 0;
};

}  // namespace ds::cuda::detail
