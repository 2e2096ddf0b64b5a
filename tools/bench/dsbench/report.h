// Benchmark metrics (sglang.bench_serving's definitions) and their output as
// a table and as JSON.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/bench/dsbench/client.h"
#include "tools/bench/dsbench/runner.h"
#include "tools/bench/dsbench/stats.h"

namespace ds::bench {

struct BenchMetrics {
  int64_t completed = 0;
  int64_t failed = 0;        // sent, and failed (HTTP error, connection, protocol)
  int64_t aborted = 0;       // in flight when the run was stopped
  int64_t not_sent = 0;      // never sent (the run stopped first)
  double duration_s = 0;
  int64_t total_input_tokens = 0;   // successful requests
  int64_t total_output_tokens = 0;
  double request_throughput = 0;    // completed / duration
  double input_throughput = 0;      // tok/s
  double output_throughput = 0;
  double total_throughput = 0;
  double concurrency = 0;           // sum of E2E latencies / duration
  Summary ttft_ms, tpot_ms, itl_ms, e2e_ms;
};

// TTFT, E2E: successful requests. TPOT = (E2E - TTFT) / (output_tokens - 1)
// for streamed requests with more than one output token (a non-streamed
// request has TTFT = E2E and no TPOT). ITL: every gap between text-carrying
// chunks of successful streamed requests.
BenchMetrics compute_metrics(const RunResult& run);

// First `max_errors` distinct error messages with their counts.
std::vector<std::pair<std::string, int64_t>> error_summary(const RunResult& run, size_t max_errors);

struct ReportHeader {
  std::string base_url;
  std::string model;
  std::string endpoint;
  std::string dataset;
  double request_rate = 0;     // <= 0 or inf: "inf"
  int64_t max_concurrency = 0; // <= 0: "not set"
  bool stream = true;
};

void print_report(std::ostream& os, const ReportHeader& header, const BenchMetrics& m);

// {"config": <config>, "metrics": {...}, "errors": [...], "requests": [...]}.
// With `details`, each request also carries its ITLs and generated text.
nlohmann::json report_json(const nlohmann::json& config, const BenchMetrics& m, const RunResult& run, bool details);

nlohmann::json summary_json(const Summary& s);

}  // namespace ds::bench
