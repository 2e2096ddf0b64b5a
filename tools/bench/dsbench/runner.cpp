#include "tools/bench/dsbench/runner.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

#include "tools/bench/dsbench/random.h"

namespace ds::bench {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

void fill_token_counts(RequestOutcome& o, const BenchRequest& req, const Tokenizer* tok) {
  o.prompt_tokens = o.usage_prompt_tokens.value_or(req.prompt_len);
  if (o.usage_completion_tokens) {
    o.output_tokens = *o.usage_completion_tokens;
    return;
  }
  if (tok) {
    auto ids = tok->encode(o.generated_text, /*add_special_tokens=*/false);
    if (ids.ok()) {
      o.output_tokens = static_cast<int64_t>(ids->size());
      return;
    }
  }
  o.output_tokens = o.chunks;
}

RunResult run_benchmark(const ClientConfig& client, const std::vector<BenchRequest>& requests,
                        const RunConfig& cfg, const Tokenizer* tok, const std::atomic<bool>* interrupt) {
  RunResult result;
  const size_t n = requests.size();
  result.outcomes.resize(n);
  if (n == 0) return result;

  const std::vector<double> arrivals = poisson_arrival_offsets(static_cast<int64_t>(n), cfg.request_rate, cfg.seed);
  int64_t workers = cfg.max_concurrency > 0 ? cfg.max_concurrency : kMaxWorkers;
  workers = std::min<int64_t>({workers, kMaxWorkers, static_cast<int64_t>(n)});

  ActiveClients active;
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  std::deque<size_t> queue;
  bool closed = false;  // no more requests will be queued
  size_t finished = 0;

  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.max_duration_s));
  Clock::time_point last_end = start;

  auto worker = [&]() {
    for (;;) {
      size_t i;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv_work.wait(lock, [&] { return !queue.empty() || closed; });
        if (queue.empty()) return;
        i = queue.front();
        queue.pop_front();
      }
      RequestOutcome o;
      const Clock::time_point t = Clock::now();
      if (active.stopped()) {
        o.aborted = true;
        o.error = "not sent: benchmark stopped (--max-duration or interrupt)";
      } else {
        const double remaining = std::max(0.001, seconds_between(t, deadline)) + 1.0;
        o = send_request(client, requests[i], active, remaining);
        o.start_s = seconds_between(start, t);
        if (o.success) fill_token_counts(o, requests[i], tok);
      }
      std::lock_guard<std::mutex> lock(mu);
      result.outcomes[i] = std::move(o);
      if (result.outcomes[i].sent) last_end = std::max(last_end, Clock::now());
      ++finished;
      cv_done.notify_all();
    }
  };

  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(workers));
  for (int64_t w = 0; w < workers; ++w) {
    try {
      threads.emplace_back(worker);
    } catch (const std::system_error& e) {
      // Out of threads (ulimit): go on with those started, if any.
      std::fprintf(stderr, "dsbench: warning: started %zu of %lld worker threads (%s)\n", threads.size(),
                   static_cast<long long>(workers), e.what());
      break;
    }
  }
  if (threads.empty()) {
    for (RequestOutcome& o : result.outcomes) o.error = "not sent: no worker thread could be started";
    return result;
  }

  auto should_stop = [&]() {
    if (interrupt && interrupt->load()) {
      result.interrupted = true;
      return true;
    }
    if (Clock::now() >= deadline) {
      result.deadline_hit = true;
      return true;
    }
    return false;
  };
  constexpr auto kPoll = std::chrono::milliseconds(20);

  // Dispatch at the arrival times.
  bool stopping = false;
  size_t queued_total = 0;
  for (size_t i = 0; i < n && !stopping; ++i) {
    const Clock::time_point due =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arrivals[i]));
    while (Clock::now() < due) {
      if (should_stop()) {
        stopping = true;
        break;
      }
      std::this_thread::sleep_until(std::min(due, Clock::now() + kPoll));
    }
    if (stopping || should_stop()) {
      stopping = true;
      break;
    }
    std::lock_guard<std::mutex> lock(mu);
    queue.push_back(i);
    ++queued_total;
    cv_work.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    closed = true;
  }
  cv_work.notify_all();

  // Wait for the queued requests; on deadline / interrupt abort those in
  // flight (workers then drain the queue without sending).
  {
    std::unique_lock<std::mutex> lock(mu);
    Clock::time_point next_progress = start + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(cfg.progress_interval_s));
    while (finished < queued_total) {
      cv_done.wait_for(lock, kPoll);
      if (cfg.progress_interval_s > 0 && Clock::now() >= next_progress) {
        size_t failed = 0;
        for (const RequestOutcome& o : result.outcomes) failed += o.sent && !o.success;
        std::fprintf(stderr, "dsbench: %zu/%zu requests done (%zu failed), %.0f s\n", finished, n, failed,
                     seconds_between(start, Clock::now()));
        next_progress += std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(cfg.progress_interval_s));
      }
      lock.unlock();
      if (!stopping && should_stop()) stopping = true;
      if (stopping) active.stop_all();
      lock.lock();
    }
  }
  active.stop_all();
  for (auto& t : threads) t.join();
  for (RequestOutcome& o : result.outcomes) {
    if (!o.sent && !o.aborted && o.error.empty()) {
      o.aborted = true;
      o.error = "not sent: benchmark stopped (--max-duration or interrupt)";
    }
  }
  result.duration_s = seconds_between(start, last_end);
  return result;
}

}  // namespace ds::bench
