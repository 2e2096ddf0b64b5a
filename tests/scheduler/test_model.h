// The model the scheduler tests run on, with the real CPU executor:
//  - $DS_SCHED_TEST_PLAN: a plan that dscc compiled from tests/fixtures/qwen2-tiny-tied
//    (CTest fixture, when the dscc target exists); weights from that fixture;
//  - otherwise a small Qwen2-style plan built by tests/runtime's TinyModel, with
//    a random bf16 checkpoint written to a temporary directory.
// Also: a sink that collects a request's updates, and Engine::generate references.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/engine/engine.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/scheduler/request.h"
#include "runtime/scheduler/scheduler.h"
#include "runtime/weights/weight_loader.h"
#include "tests/runtime/test_util.h"

namespace ds::test {

struct TestModel {
  std::unique_ptr<TempDir> dir;  // hand-built source only
  std::unique_ptr<LoadedPlan> plan;
  std::unique_ptr<LoadedWeights> weights;
  std::string source;            // for test logs

  int64_t vocab() const { return plan->plan().model()->vocab_size(); }
  int64_t page_size() const { return plan->plan().kv_cache()->page_size(); }

  // Loaded once per test binary.
  static const TestModel& get();
};

// Deterministic prompt of n ids in [0, vocab), varied by `salt`.
std::vector<int32_t> make_prompt(int64_t n, int64_t vocab, int salt);

// Single-request reference: Engine::generate on its own KV cache.
GenerateResult reference_generate(const TestModel& m, const std::vector<int32_t>& prompt, int64_t max_new,
                                  const SamplingParams& sampling, bool ignore_eos);

// KV cache + executor + scheduler in manual (step()) mode.
struct SchedHarness {
  std::unique_ptr<KvCache> kv;
  std::unique_ptr<Executor> executor;
  std::unique_ptr<Scheduler> scheduler;
};
SchedHarness make_harness(const TestModel& m, int64_t num_pages, int64_t capacity, SchedulerOptions options);

class CollectSink : public RequestSink {
 public:
  void on_output(RequestOutput&& o) override;
  // Blocks until the final update arrived.
  void wait();
  // Blocks until at least one update arrived.
  void wait_first();
  bool finished() const;
  FinishReason finish() const;
  std::vector<int32_t> ids() const;
  std::vector<GeneratedToken> tokens() const;
  std::vector<RequestOutput> outputs() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RequestOutput> outs_;
  bool done_ = false;
};

// Greedy sampling of exactly max_new tokens (eos ignored).
RequestSampling greedy(int64_t max_new);
// Submits and expects acceptance; the sink collects the request's updates.
std::shared_ptr<CollectSink> submit(Scheduler& s, const std::vector<int32_t>& prompt, const RequestSampling& sp);
SchedulerOptions options(int64_t max_running, int64_t chunk, int64_t max_len);

}  // namespace ds::test
