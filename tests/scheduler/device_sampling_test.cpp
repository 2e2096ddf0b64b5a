// The scheduler's step_sample path (executors that sample on their device), run
// on the real CPU executor with sampling in the step (CpuExecutor::set_sample_in_step:
// the RowSampling semantics of the CUDA executor's device sampler, on the host).
// Greedy results, logprobs and penalties must equal the host-sampling path; seeded
// draws are a pure function of (seed, tokens generated so far, logits).
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/executor/cpu_executor.h"
#include "tests/scheduler/test_model.h"

namespace ds::test {
namespace {

SchedHarness harness(bool sample_in_step, int64_t chunk = 16, int64_t max_running = 6) {
  const TestModel& m = TestModel::get();
  SchedHarness h = make_harness(m, 256, chunk, options(max_running, chunk, 160));
  auto* cpu = dynamic_cast<CpuExecutor*>(h.executor.get());
  DS_CHECK(cpu != nullptr, "the scheduler test model runs on the CPU executor");
  cpu->set_sample_in_step(sample_in_step);
  EXPECT_EQ(h.executor->samples_on_device(), sample_in_step);
  return h;
}

struct RunResult {
  std::vector<std::vector<GeneratedToken>> tokens;
  std::vector<FinishReason> finish;
};

RunResult run(bool sample_in_step, const std::vector<std::vector<int32_t>>& prompts, const std::vector<RequestSampling>& s) {
  SchedHarness h = harness(sample_in_step);
  std::vector<std::shared_ptr<CollectSink>> sinks;
  for (size_t i = 0; i < prompts.size(); ++i) sinks.push_back(submit(*h.scheduler, prompts[i], s[i]));
  EXPECT_TRUE(h.scheduler->run_until_idle().ok());
  RunResult r;
  for (auto& sink : sinks) {
    r.tokens.push_back(sink->tokens());
    r.finish.push_back(sink->finish());
  }
  EXPECT_EQ(h.scheduler->stats().kv_pages_used, 0);
  return r;
}

std::vector<int32_t> ids_of(const std::vector<GeneratedToken>& t) {
  std::vector<int32_t> ids;
  for (const GeneratedToken& g : t) ids.push_back(g.id);
  return ids;
}

TEST(DeviceSamplingPath, GreedyLogprobsAndPenaltiesMatchTheHostPath) {
  const TestModel& m = TestModel::get();
  std::vector<std::vector<int32_t>> prompts;
  std::vector<RequestSampling> s;
  const std::vector<int64_t> lens = {1, 7, 3 * m.page_size() + 1, 23, 40};
  for (size_t i = 0; i < lens.size(); ++i) {
    prompts.push_back(make_prompt(lens[i], m.vocab(), 50 + static_cast<int>(i)));
    RequestSampling g = greedy(9 + static_cast<int64_t>(i));
    g.logprobs = static_cast<int32_t>(i);  // 0: the chosen token's only
    if (i == 2) g.repetition_penalty = 1.7f;
    if (i == 3) {
      g.frequency_penalty = 0.9f;
      g.presence_penalty = 0.4f;
    }
    if (i == 4) g.repetition_penalty = 0.6f;
    s.push_back(g);
  }
  const RunResult host = run(false, prompts, s), device = run(true, prompts, s);
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_EQ(ids_of(device.tokens[i]), ids_of(host.tokens[i])) << "request " << i << " (" << m.source << ")";
    EXPECT_EQ(device.finish[i], host.finish[i]);
    for (size_t t = 0; t < host.tokens[i].size(); ++t) {
      const GeneratedToken &a = device.tokens[i][t], &b = host.tokens[i][t];
      EXPECT_NEAR(a.logprob, b.logprob, 1e-5) << "request " << i << " token " << t;
      ASSERT_EQ(a.top.size(), b.top.size()) << "request " << i << " token " << t;
      for (size_t k = 0; k < a.top.size(); ++k) {
        EXPECT_EQ(a.top[k].id, b.top[k].id);
        EXPECT_NEAR(a.top[k].logprob, b.top[k].logprob, 1e-5);
      }
    }
  }
  // Penalties changed something (else the test would not test them).
  std::vector<RequestSampling> plain = s;
  for (RequestSampling& p : plain) p.repetition_penalty = 1.0f, p.frequency_penalty = 0.0f, p.presence_penalty = 0.0f;
  const RunResult unpenalized = run(true, prompts, plain);
  bool differs = false;
  for (size_t i = 2; i < prompts.size(); ++i) differs |= ids_of(unpenalized.tokens[i]) != ids_of(device.tokens[i]);
  EXPECT_TRUE(differs) << "no penalty changed a greedy pick";
}

TEST(DeviceSamplingPath, SeededDrawsDependOnSeedAndCountersOnly) {
  const TestModel& m = TestModel::get();
  auto sampled = [](uint64_t seed) {
    RequestSampling s;
    s.temperature = 1.5f;
    s.top_k = 30;
    s.top_p = 0.97f;
    s.seed = seed;
    s.max_new_tokens = 20;
    s.ignore_eos = true;
    return s;
  };
  const std::vector<int32_t> prompt = make_prompt(13, m.vocab(), 9);
  // Same seed in one batch -> same tokens; another seed -> other tokens.
  const RunResult together = run(true, {prompt, prompt, prompt, make_prompt(35, m.vocab(), 10)},
                           {sampled(5), sampled(5), sampled(6), greedy(15)});
  EXPECT_EQ(ids_of(together.tokens[0]), ids_of(together.tokens[1]));
  EXPECT_NE(ids_of(together.tokens[0]), ids_of(together.tokens[2]));
  // Alone, the request draws the same tokens: the batch around it does not matter.
  const RunResult alone = run(true, {prompt}, {sampled(5)});
  EXPECT_EQ(ids_of(alone.tokens[0]), ids_of(together.tokens[0]));
  ASSERT_EQ(alone.tokens[0].size(), 20u);
}

TEST(DeviceSamplingPath, PromptLogprobsFallBackToHostSampling) {
  const TestModel& m = TestModel::get();
  SchedHarness h = harness(true);
  const std::vector<int32_t> p1 = make_prompt(12, m.vocab(), 21), p2 = make_prompt(5, m.vocab(), 22);
  RequestSampling echo = greedy(6);
  echo.prompt_logprobs = true;
  auto a = submit(*h.scheduler, p1, echo);
  auto b = submit(*h.scheduler, p2, greedy(8));
  ASSERT_TRUE(h.scheduler->run_until_idle().ok());
  EXPECT_EQ(a->ids(), reference_generate(m, p1, 6, SamplingParams{}, true).output_ids);
  EXPECT_EQ(b->ids(), reference_generate(m, p2, 8, SamplingParams{}, true).output_ids);
  const std::vector<RequestOutput> outs = a->outputs();
  ASSERT_FALSE(outs.empty());
  ASSERT_EQ(outs.front().prompt_logprobs.size(), p1.size());
  EXPECT_FALSE(outs.front().prompt_logprobs[0].has_value());
  for (size_t i = 1; i < p1.size(); ++i) {
    ASSERT_TRUE(outs.front().prompt_logprobs[i].has_value());
    EXPECT_EQ(outs.front().prompt_logprobs[i]->id, p1[i]);
    EXPECT_LE(outs.front().prompt_logprobs[i]->logprob, 0.0f);
  }
}

}  // namespace
}  // namespace ds::test
