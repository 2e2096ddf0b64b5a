// Drives the benchmark: sends the requests at their (Poisson) arrival times,
// at most `max_concurrency` in flight (one worker thread per in-flight
// request), within a bounded run time, and collects the outcomes.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "serve/tokenizer/tokenizer.h"
#include "tools/bench/dsbench/client.h"
#include "tools/bench/dsbench/dataset.h"

namespace ds::bench {

// Upper bound of worker threads (the effective concurrency limit when
// --max-concurrency is not given).
constexpr int64_t kMaxWorkers = 2048;

struct RunConfig {
  double request_rate = 0;      // requests/s; <= 0 or inf: all at once
  int64_t max_concurrency = 0;  // <= 0: unlimited (kMaxWorkers)
  double max_duration_s = 3600; // then in-flight requests are aborted and the rest not sent
  uint64_t seed = 0;            // arrival times
  double progress_interval_s = 0;  // > 0: a progress line on stderr this often
};

struct RunResult {
  std::vector<RequestOutcome> outcomes;  // in dataset order
  double duration_s = 0;                 // first send to last completion
  bool deadline_hit = false;
  bool interrupted = false;
};

// Runs `requests` against the server. `interrupt` (e.g. set by SIGINT) stops
// the run like the deadline does. `tok` (may be null) re-tokenizes generated
// text when the server reports no usage.
RunResult run_benchmark(const ClientConfig& client, const std::vector<BenchRequest>& requests,
                        const RunConfig& cfg, const Tokenizer* tok, const std::atomic<bool>* interrupt);

// Final token counts of one outcome: usage when the server sent it, else the
// re-tokenized text (with `tok`) or the number of text chunks, and the
// dataset's prompt length.
void fill_token_counts(RequestOutcome& o, const BenchRequest& req, const Tokenizer* tok);

}  // namespace ds::bench
