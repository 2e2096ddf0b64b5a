// The logit-row cap (SchedulerOptions::max_logit_rows, the CUDA executor's
// max_logit_rows): a step never asks for more logit rows than the executor's
// logits buffer holds, and a prompt-logprob request with more prompt tokens
// than that is served in chunks with the same results as without a cap.
#include <gtest/gtest.h>

#include <algorithm>

#include "runtime/scheduler/serving_engine.h"
#include "tests/scheduler/test_model.h"

namespace ds::test {
namespace {

// The real CPU executor behind a logits buffer of `cap` rows: like the CUDA
// executor, a step asking for more rows is an error.
class CappedLogitsExecutor : public Executor {
 public:
  CappedLogitsExecutor(Executor& inner, int64_t cap) : inner_(inner), cap_(cap) {}
  int64_t token_capacity() const override { return inner_.token_capacity(); }
  int64_t vocab_size() const override { return inner_.vocab_size(); }
  Status step(const StepBatch& batch, float* logits) override {
    const int64_t rows = batch.num_logit_rows();
    max_rows_ = std::max(max_rows_, rows);
    ++steps_;
    if (rows > cap_)
      return Status::Error(StrCat() << "step asks for " << rows << " logit rows, the buffer holds " << cap_);
    return inner_.step(batch, logits);
  }
  int64_t max_rows() const { return max_rows_; }
  int64_t steps() const { return steps_; }

 private:
  Executor& inner_;
  int64_t cap_;
  int64_t max_rows_ = 0;
  int64_t steps_ = 0;
};

struct Served {
  std::vector<RequestOutput> echo;               // the prompt-logprob request
  std::vector<std::vector<int32_t>> neighbours;  // the other requests' tokens
  int64_t max_rows = 0;
  int64_t steps = 0;
};

// Three greedy neighbours plus one request that wants every prompt logprob
// (longer than the cap), two of the neighbours admitted first so that decodes
// take rows in the same steps. cap == 0: no cap.
Served serve(const TestModel& m, int64_t cap) {
  const int64_t chunk = 64, max_running = 4;
  SchedHarness h = make_harness(m, 128, chunk, options(max_running, chunk, 160));
  CappedLogitsExecutor capped(*h.executor, cap > 0 ? cap : chunk);
  SchedulerOptions o = options(max_running, chunk, 160);
  o.max_logit_rows = cap;
  auto s = Scheduler::create(capped, *h.kv, o);
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (!s.ok()) return {};
  Scheduler& sched = **s;
  std::vector<std::shared_ptr<CollectSink>> others;
  others.push_back(submit(sched, make_prompt(5, m.vocab(), 31), greedy(12)));
  others.push_back(submit(sched, make_prompt(9, m.vocab(), 32), greedy(10)));
  EXPECT_TRUE(sched.step().ok());  // both prefilled: they decode next to the long prompt
  RequestSampling echo = greedy(4);
  echo.prompt_logprobs = true;
  echo.logprobs = 3;
  auto long_prompt = submit(sched, make_prompt(45, m.vocab(), 33), echo);
  others.push_back(submit(sched, make_prompt(3, m.vocab(), 34), greedy(6)));
  EXPECT_TRUE(sched.run_until_idle().ok());
  Served run;
  run.echo = long_prompt->outputs();
  for (auto& sink : others) {
    EXPECT_EQ(sink->finish(), FinishReason::kLength);
    run.neighbours.push_back(sink->ids());
  }
  EXPECT_EQ(long_prompt->finish(), FinishReason::kLength);
  run.max_rows = capped.max_rows();
  run.steps = capped.steps();
  return run;
}

TEST(LogitRowCap, PromptLogprobsLongerThanTheCapAreServedInChunks) {
  const TestModel& m = TestModel::get();
  const Served free = serve(m, 0);
  const Served capped = serve(m, 4);
  ASSERT_FALSE(free.echo.empty());
  ASSERT_FALSE(capped.echo.empty());
  // Uncapped, one step asks for the whole prompt's rows; capped, never more than 4.
  EXPECT_GT(free.max_rows, 44);
  EXPECT_LE(capped.max_rows, 4);
  EXPECT_GT(capped.steps, free.steps);

  const auto& pa = free.echo[0].prompt_logprobs;
  const auto& pb = capped.echo[0].prompt_logprobs;
  ASSERT_EQ(pa.size(), 45u);
  ASSERT_EQ(pb.size(), 45u);
  EXPECT_FALSE(pb[0].has_value());
  const std::vector<int32_t> prompt = make_prompt(45, m.vocab(), 33);
  for (size_t i = 1; i < pa.size(); ++i) {
    ASSERT_TRUE(pa[i].has_value() && pb[i].has_value()) << "prompt position " << i;
    EXPECT_EQ(pb[i]->id, prompt[i]);
    EXPECT_FLOAT_EQ(pa[i]->logprob, pb[i]->logprob) << "prompt position " << i;
  }
  std::vector<GeneratedToken> ta, tb;
  for (const auto& o : free.echo) ta.insert(ta.end(), o.tokens.begin(), o.tokens.end());
  for (const auto& o : capped.echo) tb.insert(tb.end(), o.tokens.begin(), o.tokens.end());
  ASSERT_EQ(ta.size(), 4u);
  ASSERT_EQ(tb.size(), 4u);
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_EQ(ta[i].id, tb[i].id);
    EXPECT_FLOAT_EQ(ta[i].logprob, tb[i].logprob);
  }
  // The neighbours are unaffected by the chunking.
  EXPECT_EQ(free.neighbours, capped.neighbours);
  ASSERT_EQ(capped.neighbours.size(), 3u);
  EXPECT_EQ(capped.neighbours[0].size(), 12u);
}

TEST(LogitRowCap, CapBelowMaxRunningRequestsIsRejected) {
  const TestModel& m = TestModel::get();
  SchedHarness h = make_harness(m, 64, 32, options(4, 32, 100));
  SchedulerOptions o = options(4, 32, 100);
  o.max_logit_rows = 3;
  auto s = Scheduler::create(*h.executor, *h.kv, o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("max_logit_rows 3 is below max_running_requests 4"), std::string::npos)
      << s.status().message();
  o.max_logit_rows = -1;
  EXPECT_FALSE(Scheduler::create(*h.executor, *h.kv, o).ok());
}

TEST(LogitRowCap, EngineScoreFeedsChunksOfAtMostTheCap) {
  const TestModel& m = TestModel::get();
  const std::vector<int32_t> ids = make_prompt(37, m.vocab(), 35);
  EngineOptions whole{64, 0};
  auto a = Engine::create(*m.plan, *m.weights, whole);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ((*a)->max_logit_rows(), 64);  // min(token capacity, 256)
  EngineOptions capped{64, 0};
  capped.max_logit_rows = 5;
  auto b = Engine::create(*m.plan, *m.weights, capped);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ((*b)->max_logit_rows(), 5);
  auto sa = (*a)->score(ids, 3);
  auto sb = (*b)->score(ids, 3);
  ASSERT_TRUE(sa.ok() && sb.ok());
  ASSERT_EQ(sa->size(), ids.size());
  ASSERT_EQ(sb->size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ((*sa)[i].top_ids, (*sb)[i].top_ids) << "position " << i;
    EXPECT_FLOAT_EQ((*sa)[i].top_logits[0], (*sb)[i].top_logits[0]) << "position " << i;
    EXPECT_DOUBLE_EQ((*sa)[i].logsumexp, (*sb)[i].logsumexp) << "position " << i;
  }
  capped.max_logit_rows = -1;
  EXPECT_FALSE(Engine::create(*m.plan, *m.weights, capped).ok());
}

TEST(LogitRowCap, ServingDefaultHoldsARowPerRunningRequestAndAtMostTheChunk) {
  ServingOptions o;
  o.max_running_requests = 64;
  EXPECT_EQ(resolve_max_logit_rows(o, 2048), kDefaultMaxLogitRows);  // 256 rows, not 2048
  EXPECT_EQ(resolve_max_logit_rows(o, 100), 100);
  o.max_running_requests = 512;
  EXPECT_EQ(resolve_max_logit_rows(o, 2048), 512);
  o.max_logit_rows = 1000;
  EXPECT_EQ(resolve_max_logit_rows(o, 2048), 1000);
  EXPECT_EQ(resolve_max_logit_rows(o, 640), 640);
  o.max_logit_rows = -1;
  EXPECT_FALSE(o.validate().ok());
}

TEST(ServingDefaults, ChunkedPrefillSizeByGpuMemory) {
  const size_t gib = size_t{1} << 30;
  // CPU backend (no GPU) and GPUs below kLargeGpuBytes: 2048; H100 / H200 class: 4096.
  EXPECT_EQ(default_chunked_prefill_size(8192, 64, 0), 2048);
  EXPECT_EQ(default_chunked_prefill_size(8192, 64, 24 * gib), 2048);
  EXPECT_EQ(default_chunked_prefill_size(8192, 64, kLargeGpuBytes - 1), 2048);
  EXPECT_EQ(default_chunked_prefill_size(8192, 64, kLargeGpuBytes), 4096);
  EXPECT_EQ(default_chunked_prefill_size(8192, 64, 141 * gib), 4096);
  // At most max_model_len, at least a decode slot per running request.
  EXPECT_EQ(default_chunked_prefill_size(1024, 64, 141 * gib), 1024);
  EXPECT_EQ(default_chunked_prefill_size(1024, 2000, 141 * gib), 2000);
  EXPECT_EQ(default_chunked_prefill_size(8192, 5000, 0), 5000);
}

TEST(LogitRowCap, ServingEngineRejectsACapBelowMaxRunningRequests) {
  const TestModel& m = TestModel::get();
  ServingOptions o;
  o.max_running_requests = 8;
  o.max_logit_rows = 4;
  o.start_loop = false;
  auto e = ServingEngine::create(*m.plan, *m.weights, o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("max_logit_rows 4 is below max_running_requests 8"), std::string::npos)
      << e.status().message();
  o.max_logit_rows = 8;
  EXPECT_TRUE(ServingEngine::create(*m.plan, *m.weights, o).ok());
}

}  // namespace
}  // namespace ds::test
