// The overlap schedule (scheduler.h, overlap_schedule.cpp) on the real CPU
// executor with sampling in the step and pipelined sampling (the CUDA
// executor's contract, CpuExecutor::set_sample_in_step / set_pipelined_sampling):
// the same requests give the same tokens, logprobs, finish reasons and
// per-update counts as the synchronous schedule; steps fall back to the
// synchronous order for a penalized request's pending token, prompt logprobs
// and short KV; aborts and
// stops while a step is queued leave no request or KV page behind.
#include <gtest/gtest.h>

#include <thread>

#include "runtime/executor/cpu_executor.h"
#include "tests/scheduler/test_model.h"

namespace ds::test {
namespace {

SchedHarness harness(bool overlap, int64_t num_pages = 256, int64_t chunk = 16, int64_t max_running = 4,
                     double reserve = 0.3, int64_t max_len = 160) {
  const TestModel& m = TestModel::get();
  SchedulerOptions o = options(max_running, chunk, max_len);
  o.overlap_schedule = overlap;
  o.new_token_reserve_ratio = reserve;
  SchedHarness h = make_harness(m, num_pages, chunk, o);
  auto* cpu = dynamic_cast<CpuExecutor*>(h.executor.get());
  DS_CHECK(cpu != nullptr, "the scheduler test model runs on the CPU executor");
  cpu->set_sample_in_step(true);
  cpu->set_pipelined_sampling(true);
  return h;
}

struct RunOutputs {
  std::vector<std::vector<RequestOutput>> outputs;
  ServingBackend::Stats stats;
};

RunOutputs run(SchedHarness h, const std::vector<std::vector<int32_t>>& prompts, const std::vector<RequestSampling>& s) {
  std::vector<std::shared_ptr<CollectSink>> sinks;
  for (size_t i = 0; i < prompts.size(); ++i) sinks.push_back(submit(*h.scheduler, prompts[i], s[i]));
  EXPECT_TRUE(h.scheduler->run_until_idle().ok());
  RunOutputs r;
  for (auto& sink : sinks) r.outputs.push_back(sink->outputs());
  r.stats = h.scheduler->stats();
  EXPECT_EQ(r.stats.kv_pages_used, 0);
  EXPECT_EQ(r.stats.running + r.stats.waiting, 0);
  return r;
}

// Every update equal: tokens, logprobs, counts, finish reasons.
void expect_same(const RunOutputs& a, const RunOutputs& b) {
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    ASSERT_EQ(a.outputs[i].size(), b.outputs[i].size()) << "request " << i;
    for (size_t u = 0; u < a.outputs[i].size(); ++u) {
      const RequestOutput &x = a.outputs[i][u], &y = b.outputs[i][u];
      EXPECT_EQ(x.finish, y.finish) << "request " << i << " update " << u;
      EXPECT_EQ(x.completion_tokens, y.completion_tokens) << "request " << i << " update " << u;
      EXPECT_EQ(x.matched_stop_token, y.matched_stop_token) << "request " << i << " update " << u;
      ASSERT_EQ(x.tokens.size(), y.tokens.size()) << "request " << i << " update " << u;
      for (size_t t = 0; t < x.tokens.size(); ++t) {
        EXPECT_EQ(x.tokens[t].id, y.tokens[t].id) << "request " << i << " update " << u;
        EXPECT_EQ(x.tokens[t].logprob, y.tokens[t].logprob) << "request " << i << " update " << u;
        ASSERT_EQ(x.tokens[t].top.size(), y.tokens[t].top.size());
        for (size_t k = 0; k < x.tokens[t].top.size(); ++k) EXPECT_EQ(x.tokens[t].top[k].id, y.tokens[t].top[k].id);
      }
    }
  }
}

std::vector<int32_t> ids_of(const std::vector<RequestOutput>& outs) {
  std::vector<int32_t> ids;
  for (const RequestOutput& o : outs)
    for (const GeneratedToken& t : o.tokens) ids.push_back(t.id);
  return ids;
}

TEST(OverlapSchedule, SameOutputsAsTheSynchronousSchedule) {
  const TestModel& m = TestModel::get();
  const std::vector<int64_t> lens = {1, 5, 17, 33, 3 * m.page_size() + 1, 8, 40, 2, 12};
  std::vector<std::vector<int32_t>> prompts;
  std::vector<RequestSampling> s;
  for (size_t i = 0; i < lens.size(); ++i) {
    prompts.push_back(make_prompt(lens[i], m.vocab(), 70 + static_cast<int>(i)));
    RequestSampling g = greedy(1 + 3 * static_cast<int64_t>(i));  // 1 .. 25 new tokens
    if (i % 3 == 1) {  // seeded draws
      g.temperature = 1.3f;
      g.top_k = 40;
      g.top_p = 0.95f;
      g.seed = 500 + i;
    }
    g.logprobs = static_cast<int32_t>(i % 4) - 1;
    s.push_back(g);
  }
  // A stop token in the middle of request 6's greedy output (its third token).
  const std::vector<int32_t> ref6 = reference_generate(m, prompts[6], s[6].max_new_tokens, SamplingParams{}, true).output_ids;
  ASSERT_GE(ref6.size(), 4u);
  s[6].stop_token_ids = {ref6[2]};
  const RunOutputs sync = run(harness(false), prompts, s), overlap = run(harness(true), prompts, s);
  EXPECT_EQ(sync.stats.overlap_steps_total, 0);
  EXPECT_GT(overlap.stats.overlap_steps_total, 10);
  expect_same(overlap, sync);
  EXPECT_EQ(overlap.outputs[6].back().finish, FinishReason::kStop);
  EXPECT_LE(ids_of(overlap.outputs[6]).size(), 3u);
  EXPECT_EQ(ids_of(overlap.outputs[0]), reference_generate(m, prompts[0], 1, SamplingParams{}, true).output_ids);
  EXPECT_EQ(ids_of(overlap.outputs[8]), reference_generate(m, prompts[8], 25, SamplingParams{}, true).output_ids);
  EXPECT_EQ(overlap.stats.generation_tokens_total, sync.stats.generation_tokens_total);
}

TEST(OverlapSchedule, PenaltiesAlternateAndPromptLogprobsRunSynchronously) {
  const TestModel& m = TestModel::get();
  std::vector<std::vector<int32_t>> prompts;
  std::vector<RequestSampling> s;
  for (int i = 0; i < 3; ++i) {
    prompts.push_back(make_prompt(9 + i, m.vocab(), 90 + i));
    s.push_back(greedy(6));
  }
  s[0].max_new_tokens = 20;  // outlives the others
  s[0].frequency_penalty = 0.8f;
  const RunOutputs sync = run(harness(false), prompts, s), overlap = run(harness(true), prompts, s);
  // Alone at the end, the penalized request overlaps every other step (a step
  // after it sampled must first collect its token for the history).
  const RunOutputs plain = run(harness(true), prompts, std::vector<RequestSampling>(3, greedy(20)));
  EXPECT_GT(overlap.stats.overlap_steps_total, 3);
  EXPECT_LT(overlap.stats.overlap_steps_total, plain.stats.overlap_steps_total - 5);
  expect_same(overlap, sync);
  // Short-lived: once it finished, the others' steps overlap again.
  s[0].max_new_tokens = 2;
  s[1].max_new_tokens = 20;
  const RunOutputs sync2 = run(harness(false), prompts, s), overlap2 = run(harness(true), prompts, s);
  EXPECT_GT(overlap2.stats.overlap_steps_total, 5);
  expect_same(overlap2, sync2);
  // Prompt logprobs (every prompt row's logits on the host).
  RequestSampling echo = greedy(4);
  echo.prompt_logprobs = true;
  const RunOutputs sync3 = run(harness(false), {prompts[0], prompts[1]}, {echo, greedy(12)});
  const RunOutputs overlap3 = run(harness(true), {prompts[0], prompts[1]}, {echo, greedy(12)});
  expect_same(overlap3, sync3);
  ASSERT_FALSE(overlap3.outputs[0].empty());
  EXPECT_EQ(overlap3.outputs[0].front().prompt_logprobs.size(), prompts[0].size());
}

TEST(OverlapSchedule, ShortKvFallsBackAndPreemptedRequestsStayIdentical) {
  const TestModel& m = TestModel::get();
  const int64_t ps = m.page_size();
  std::vector<std::vector<int32_t>> prompts;
  std::vector<RequestSampling> s;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(make_prompt(2 * ps - 1, m.vocab(), 110 + i));
    RequestSampling g = greedy(3 * ps);
    g.logprobs = 1;
    s.push_back(g);
  }
  // 8 pages for 4 requests of up to 5 pages each, nothing reserved: decodes preempt.
  const RunOutputs tiny = run(harness(true, 8, 32, 4, 0.0, 8 * ps), prompts, s);
  EXPECT_GT(tiny.stats.preemptions_total, 0);
  const RunOutputs roomy = run(harness(true, 64, 32, 4, 0.0, 8 * ps), prompts, s);
  EXPECT_EQ(roomy.stats.preemptions_total, 0);
  EXPECT_GT(roomy.stats.overlap_steps_total, 0);
  expect_same(tiny, roomy);
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(ids_of(tiny.outputs[i]), reference_generate(m, prompts[i], 3 * ps, SamplingParams{}, true).output_ids);
}

TEST(OverlapSchedule, AbortWhileAStepIsQueued) {
  const TestModel& m = TestModel::get();
  SchedHarness h = harness(true);
  const std::vector<int32_t> pa = make_prompt(7, m.vocab(), 130), pb = make_prompt(11, m.vocab(), 131),
                             pc = make_prompt(3, m.vocab(), 132);
  auto a = submit(*h.scheduler, pa, greedy(14));
  auto b = submit(*h.scheduler, pb, greedy(14));
  auto c = submit(*h.scheduler, pc, greedy(14));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(h.scheduler->step().ok());
  // Request ids are 1, 2, 3 in submission order: abort b with a step queued.
  h.scheduler->abort(2);
  ASSERT_TRUE(h.scheduler->run_until_idle().ok());
  EXPECT_EQ(b->finish(), FinishReason::kAbort);
  const std::vector<RequestOutput> bo = b->outputs();
  const std::vector<int32_t> bids = ids_of(bo);
  EXPECT_LT(bids.size(), 14u);
  EXPECT_EQ(bo.back().completion_tokens, static_cast<int64_t>(bids.size())) << "no pending token reported";
  const std::vector<int32_t> bref = reference_generate(m, pb, 14, SamplingParams{}, true).output_ids;
  EXPECT_EQ(bids, std::vector<int32_t>(bref.begin(), bref.begin() + static_cast<std::ptrdiff_t>(bids.size())));
  EXPECT_EQ(a->ids(), reference_generate(m, pa, 14, SamplingParams{}, true).output_ids);
  EXPECT_EQ(c->ids(), reference_generate(m, pc, 14, SamplingParams{}, true).output_ids);
  EXPECT_EQ(h.scheduler->stats().kv_pages_used, 0);
  EXPECT_GT(h.scheduler->stats().overlap_steps_total, 0);
}

TEST(OverlapSchedule, LoopThreadAndStopWithAQueuedStep) {
  const TestModel& m = TestModel::get();
  SchedHarness h = harness(true);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::shared_ptr<CollectSink>> sinks;
  h.scheduler->start();
  for (int i = 0; i < 6; ++i) {
    prompts.push_back(make_prompt(4 + 3 * i, m.vocab(), 150 + i));
    sinks.push_back(submit(*h.scheduler, prompts.back(), greedy(10)));
  }
  for (auto& s : sinks) s->wait();
  for (size_t i = 0; i < sinks.size(); ++i)
    EXPECT_EQ(sinks[i]->ids(), reference_generate(m, prompts[i], 10, SamplingParams{}, true).output_ids) << i;
  // Long requests, stopped while steps are queued: every sink ends, nothing leaks.
  std::vector<std::shared_ptr<CollectSink>> long_sinks;
  for (int i = 0; i < 3; ++i) long_sinks.push_back(submit(*h.scheduler, prompts[i], greedy(100)));
  for (auto& s : long_sinks) s->wait_first();
  h.scheduler->stop();
  for (auto& s : long_sinks) {
    EXPECT_TRUE(s->finished());
    EXPECT_TRUE(s->finish() == FinishReason::kAbort || s->finish() == FinishReason::kLength);
  }
  EXPECT_EQ(h.scheduler->stats().kv_pages_used, 0);
  EXPECT_GT(h.scheduler->stats().overlap_steps_total, 0);
}

}  // namespace
}  // namespace ds::test
