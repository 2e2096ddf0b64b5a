// A minimal parallel-for for the reference kernels. Each index is computed by
// exactly one thread in the same arithmetic order, so results do not depend on
// the thread count. Threads: DS_NUM_THREADS if set, else the hardware count.
#pragma once

#include <cstdint>
#include <functional>

namespace ds::ref {

// Number of worker threads parallel_for may use (>= 1).
int num_threads();

// Runs fn(begin, end) over [0, n) in contiguous chunks. Runs inline when the
// work (n * cost_per_index, in multiply-adds) is too small to be worth threads.
void parallel_for(int64_t n, int64_t cost_per_index, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace ds::ref
