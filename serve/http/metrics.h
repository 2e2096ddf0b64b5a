// Prometheus metrics of the server: request latencies measured in the HTTP
// layer (TTFT, inter-token latency, end-to-end) plus the backend's gauges and
// counters (ServingBackend::Stats), rendered in the text exposition format.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/scheduler/request.h"

namespace ds::http {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends "# HELP", "# TYPE" and the _bucket/_sum/_count lines.
  void render(const std::string& name, const std::string& help, std::string* out) const;
  uint64_t count() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last = +Inf
  double sum_ = 0.0;
  uint64_t total_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  Histogram ttft_seconds;
  Histogram itl_seconds;
  Histogram e2e_seconds;
  std::atomic<int64_t> http_requests_in_flight{0};

  // Finished generation requests (one per choice) by finish reason.
  void count_finished(const std::string& reason);
  std::string render(const ServingBackend::Stats& stats, const std::string& model_name) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> finished_;
};

}  // namespace ds::http
