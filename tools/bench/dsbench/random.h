// Seeded randomness of the benchmark: arrival times and request lengths.
// Everything derives from std::mt19937_64, whose output sequence the C++
// standard fixes, and hand-written conversions (no std::*_distribution, whose
// results differ between standard libraries), so a seed gives the same
// workload everywhere.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace ds::bench {

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t next() { return gen_(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  // Uniform integer in [lo, hi] (lo <= hi), unbiased.
  int64_t uniform_int(int64_t lo, int64_t hi);
  // Exponential with the given rate (> 0): mean 1 / rate.
  double exponential(double rate);

 private:
  std::mt19937_64 gen_;
};

// Send times in seconds from the start of the benchmark for `n` requests of a
// Poisson process with `rate` requests/s: the first request at 0, then
// exponential gaps (as sglang.bench_serving and vLLM do). rate <= 0 or
// infinite: all at 0.
std::vector<double> poisson_arrival_offsets(int64_t n, double rate, uint64_t seed);

// Lengths uniform in [max(1, floor(len * range_ratio)), len] (sglang's
// --random-range-ratio semantics; range_ratio 1 gives exactly `len`).
std::vector<int64_t> sample_lengths(int64_t n, int64_t len, double range_ratio, Rng& rng);

}  // namespace ds::bench
