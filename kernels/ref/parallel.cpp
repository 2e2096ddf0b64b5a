#include "kernels/ref/parallel.h"

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <vector>

namespace ds::ref {

int num_threads() {
  static const int n = [] {
    if (const char* env = std::getenv("DS_NUM_THREADS")) {
      const int v = std::atoi(env);
      if (v >= 1) return std::min(v, 256);
    }
    const unsigned hw = std::thread::hardware_concurrency();
    return static_cast<int>(std::clamp<unsigned>(hw, 1, 64));
  }();
  return n;
}

void parallel_for(int64_t n, int64_t cost_per_index, const std::function<void(int64_t, int64_t)>& fn) {
  constexpr int64_t kMinWorkPerThread = 1 << 18;
  if (n <= 0) return;
  const int64_t by_work = std::max<int64_t>(1, n * std::max<int64_t>(cost_per_index, 1) / kMinWorkPerThread);
  const int64_t threads = std::min<int64_t>({static_cast<int64_t>(num_threads()), n, by_work});
  if (threads <= 1) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads - 1));
  const int64_t chunk = (n + threads - 1) / threads;
  for (int64_t t = 1; t < threads; ++t) {
    const int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) pool.emplace_back(fn, b, e);
  }
  fn(0, std::min(n, chunk));
  for (std::thread& th : pool) th.join();
}

}  // namespace ds::ref
