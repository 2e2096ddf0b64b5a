// Summary statistics of latency samples (numpy-compatible percentiles).
#pragma once

#include <cstdint>
#include <vector>

namespace ds::bench {

// Percentile p in [0, 100] with linear interpolation between closest ranks
// (numpy.percentile's default "linear" method). 0 for an empty sample.
double percentile(std::vector<double> values, double p);

struct Summary {
  int64_t count = 0;
  double mean = 0, median = 0, stddev = 0, min = 0, max = 0;
  double p90 = 0, p95 = 0, p99 = 0;
};

// All fields 0 for an empty sample; stddev is the population standard
// deviation (numpy.std's default).
Summary summarize(const std::vector<double>& values);

}  // namespace ds::bench
