// L2 prefetch of the next operation's weights (decode steps).
//
// At batch-1 decode every linear streams its weights from HBM once per step,
// and HBM is idle while latency-bound kernels run (decode attention, the
// one-shot all-reduce's wait for its peers) and while a linear whose weights
// are already in L2 runs. A kernel handed an L2Prefetch issues bulk L2
// prefetches (sm_90 `cp.async.bulk.prefetch.L2`) of [ptr, ptr + bytes) after
// its PDL wait, each CTA for its share, so the next linear finds its first
// `bytes` in L2. Weights are immutable, so the hint can never change a result;
// devices below sm_90 ignore it. Which kernel prefetches what is decided once
// when the program is bound (runtime/executor/l2_prefetch_plan.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ds::cuda {

struct L2Prefetch {
  const void* ptr = nullptr;  // 16-byte aligned (the kernels skip an unaligned or empty range)
  uint64_t bytes = 0;         // rounded down to a multiple of 16 by the kernels
};

}  // namespace ds::cuda
