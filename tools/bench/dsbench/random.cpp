#include "tools/bench/dsbench/random.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ds::bench {

double Rng::uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }

int64_t Rng::uniform_int(int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) + 1;  // 0 = full range
  if (span == 0) return static_cast<int64_t>(gen_());
  // Rejection sampling: discard the top partial bucket.
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % span;
  uint64_t x;
  do {
    x = gen_();
  } while (x >= limit);
  return static_cast<int64_t>(static_cast<uint64_t>(lo) + x % span);
}

double Rng::exponential(double rate) { return -std::log1p(-uniform()) / rate; }

std::vector<double> poisson_arrival_offsets(int64_t n, double rate, uint64_t seed) {
  std::vector<double> out(static_cast<size_t>(std::max<int64_t>(n, 0)), 0.0);
  if (!(rate > 0) || std::isinf(rate)) return out;
  Rng rng(seed);
  double t = 0;
  for (size_t i = 1; i < out.size(); ++i) {
    t += rng.exponential(rate);
    out[i] = t;
  }
  return out;
}

std::vector<int64_t> sample_lengths(int64_t n, int64_t len, double range_ratio, Rng& rng) {
  const int64_t hi = std::max<int64_t>(len, 1);
  const int64_t lo = std::clamp<int64_t>(static_cast<int64_t>(std::floor(static_cast<double>(len) * range_ratio)), 1, hi);
  std::vector<int64_t> out(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (auto& v : out) v = rng.uniform_int(lo, hi);
  return out;
}

}  // namespace ds::bench
