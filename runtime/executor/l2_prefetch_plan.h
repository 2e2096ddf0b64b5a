// Which kernel of a decode program prefetches which weights into L2
// (the device side is runtime/cuda/l2_prefetch.h).
//
// At small batches a decode step is a chain of kernels of which the linears
// stream their weights from HBM and the others leave HBM idle. The plan fills
// those idle stretches with the weights of the linear that comes next:
//  - a latency-bound kernel (decode attention, the custom all-reduce) is a
//    source: it prefetches the next linear's weights;
//  - a linear whose whole weight is already prefetched reads it from L2, so it
//    is a source too (attention -> o_proj whole -> o_proj prefetches the head of
//    gate_up);
//  - other linears stream from HBM themselves and prefetch nothing (moving
//    bytes between two HBM-bound kernels gains nothing and evicts).
// Each target linear gets at most `budget` bytes prefetched, in order from its
// first byte, possibly by several sources (o_proj, then the all-reduce after it).
// Pure host logic, no CUDA: the executor maps its program onto PrefetchOp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ds {

struct PrefetchOp {
  enum class Role { kOther, kLatencyBound, kLinear };
  Role role = Role::kOther;
  uint64_t weight_bytes = 0;  // kLinear: bytes of its weight (one contiguous tensor)
};

struct PrefetchAssignment {
  static constexpr size_t kNone = static_cast<size_t>(-1);
  size_t target = kNone;  // index of the linear whose weight is prefetched
  uint64_t offset = 0;    // first byte of that weight
  uint64_t bytes = 0;     // 0: nothing
};

// One assignment per op (kNone where the op prefetches nothing). budget 0: none.
std::vector<PrefetchAssignment> plan_l2_prefetch(const std::vector<PrefetchOp>& ops, uint64_t budget);

// The budget for a device with `l2_bytes` of L2: the environment variable
// DSRT_L2_PREFETCH_MB when set (0 turns prefetching off; a value that is not a
// non-negative integer is ignored with a warning on stderr), else 60% of the L2
// (two targets' prefetches can be in flight at once: the linear being read from
// L2 and the head of the next one).
uint64_t l2_prefetch_budget(uint64_t l2_bytes);

}  // namespace ds
