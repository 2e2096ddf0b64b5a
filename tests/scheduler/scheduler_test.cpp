// Continuous batching must not change results: every request of a mixed batch
// (chunked prefills next to decodes) gets exactly what a single-request
// Engine::generate run gives it. Plus streaming, stop ids, max tokens, seeds,
// validation and the threaded ServingEngine.
#include <gtest/gtest.h>

#include <thread>

#include "runtime/scheduler/serving_engine.h"
#include "tests/scheduler/test_model.h"

namespace ds::test {
namespace {

class BatchedGreedy : public ::testing::TestWithParam<int64_t> {};

TEST_P(BatchedGreedy, EveryRequestMatchesSingleRequestGenerate) {
  const TestModel& m = TestModel::get();
  const int64_t chunk = GetParam();
  SchedHarness h = make_harness(m, 256, chunk, options(6, chunk, 160));
  const std::vector<int64_t> lens = {1, 5, 3 * m.page_size() + 2, 17, 41, 2, 9};
  const std::vector<int64_t> max_new = {12, 7, 10, 1, 9, 14, 6};
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::shared_ptr<CollectSink>> sinks;
  for (size_t i = 0; i < lens.size(); ++i) {
    prompts.push_back(make_prompt(lens[i], m.vocab(), static_cast<int>(i)));
    sinks.push_back(submit(*h.scheduler, prompts.back(), greedy(max_new[i])));
  }
  ASSERT_TRUE(h.scheduler->run_until_idle().ok());
  for (size_t i = 0; i < lens.size(); ++i) {
    GenerateResult ref = reference_generate(m, prompts[i], max_new[i], SamplingParams{}, true);
    EXPECT_EQ(sinks[i]->ids(), ref.output_ids) << "request " << i << " (" << m.source << ")";
    EXPECT_EQ(sinks[i]->finish(), FinishReason::kLength);
  }
  ServingBackend::Stats st = h.scheduler->stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.waiting, 0);
  EXPECT_EQ(st.kv_pages_used, 0);
  EXPECT_EQ(st.generation_tokens_total, 12 + 7 + 10 + 1 + 9 + 14 + 6);
}

INSTANTIATE_TEST_SUITE_P(ChunkSizes, BatchedGreedy, ::testing::Values(6, 16, 64));

TEST(Scheduler, EosStopsLikeSingleRequestGenerate) {
  const TestModel& m = TestModel::get();
  SchedHarness h = make_harness(m, 256, 32, options(8, 32, 200));
  std::vector<std::shared_ptr<CollectSink>> sinks;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) {
    prompts.push_back(make_prompt(3 + 5 * i, m.vocab(), 100 + i));
    RequestSampling s = greedy(40);
    s.ignore_eos = false;
    sinks.push_back(submit(*h.scheduler, prompts.back(), s));
  }
  ASSERT_TRUE(h.scheduler->run_until_idle().ok());
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateResult ref = reference_generate(m, prompts[i], 40, SamplingParams{}, false);
    EXPECT_EQ(sinks[i]->ids(), ref.output_ids) << "request " << i;
    EXPECT_EQ(sinks[i]->finish(), ref.finish_reason == "stop" ? FinishReason::kStop : FinishReason::kLength);
  }
}

TEST(Scheduler, SeededSamplingMatchesSingleRequestAndIsReproducible) {
  const TestModel& m = TestModel::get();
  SchedHarness h = make_harness(m, 256, 16, options(8, 16, 160));
  const std::vector<int32_t> prompt = make_prompt(11, m.vocab(), 7);
  auto sampled = [](uint64_t seed) {
    RequestSampling s;
    s.temperature = 1.3f;
    s.top_k = 40;
    s.top_p = 0.95f;
    s.seed = seed;
    s.max_new_tokens = 24;
    s.ignore_eos = true;
    return s;
  };
  auto a = submit(*h.scheduler, prompt, sampled(1));
  auto b = submit(*h.scheduler, prompt, sampled(1));
  auto c = submit(*h.scheduler, prompt, sampled(2));
  auto d = submit(*h.scheduler, make_prompt(30, m.vocab(), 8), greedy(20));  // batch neighbour
  ASSERT_TRUE(h.scheduler->run_until_idle().ok());
  EXPECT_EQ(a->ids(), b->ids());
  EXPECT_NE(a->ids(), c->ids());
  SamplingParams sp;
  sp.temperature = 1.3f;
  sp.top_k = 40;
  sp.top_p = 0.95f;
  sp.seed = 1;
  EXPECT_EQ(a->ids(), reference_generate(m, prompt, 24, sp, true).output_ids);
  sp.seed = 2;
  EXPECT_EQ(c->ids(), reference_generate(m, prompt, 24, sp, true).output_ids);
  EXPECT_EQ(d->ids().size(), 20u);
}

TEST(Scheduler, ChunkedPrefillGivesIdenticalLogits) {
  const TestModel& m = TestModel::get();
  const std::vector<int32_t> prompt = make_prompt(37, m.vocab(), 3);
  RequestSampling s = greedy(6);
  s.prompt_logprobs = true;
  s.logprobs = 5;
  std::vector<std::vector<RequestOutput>> runs;
  for (int64_t chunk : {4, 64}) {
    SchedHarness h = make_harness(m, 64, chunk, options(4, chunk, 100));
    auto other = submit(*h.scheduler, make_prompt(9, m.vocab(), 4), greedy(8));  // shares the steps
    auto sink = submit(*h.scheduler, prompt, s);
    ASSERT_TRUE(h.scheduler->run_until_idle().ok());
    runs.push_back(sink->outputs());
  }
  ASSERT_FALSE(runs[0].empty());
  ASSERT_FALSE(runs[1].empty());
  const auto& pa = runs[0][0].prompt_logprobs;
  const auto& pb = runs[1][0].prompt_logprobs;
  ASSERT_EQ(pa.size(), prompt.size());
  ASSERT_EQ(pb.size(), prompt.size());
  EXPECT_FALSE(pa[0].has_value());
  for (size_t i = 1; i < prompt.size(); ++i) {
    ASSERT_TRUE(pa[i].has_value() && pb[i].has_value());
    EXPECT_EQ(pa[i]->id, prompt[i]);
    EXPECT_LT(pa[i]->logprob, 0.0f);
    EXPECT_FLOAT_EQ(pa[i]->logprob, pb[i]->logprob) << "prompt position " << i;
  }
  std::vector<GeneratedToken> ta, tb;
  for (const auto& o : runs[0]) ta.insert(ta.end(), o.tokens.begin(), o.tokens.end());
  for (const auto& o : runs[1]) tb.insert(tb.end(), o.tokens.begin(), o.tokens.end());
  ASSERT_EQ(ta.size(), 6u);
  ASSERT_EQ(tb.size(), 6u);
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_EQ(ta[i].id, tb[i].id);
    EXPECT_FLOAT_EQ(ta[i].logprob, tb[i].logprob);
    ASSERT_EQ(ta[i].top.size(), 5u);
    EXPECT_EQ(ta[i].top[0].id, ta[i].id);  // greedy picks the most likely token
    EXPECT_FLOAT_EQ(ta[i].top[0].logprob, ta[i].logprob);
    for (size_t j = 0; j < 5; ++j) EXPECT_FLOAT_EQ(ta[i].top[j].logprob, tb[i].top[j].logprob);
  }
}

TEST(Scheduler, StreamsOneTokenPerUpdateAndStopsOnMaxTokensOrStopIds) {
  const TestModel& m = TestModel::get();
  const std::vector<int32_t> prompt = make_prompt(10, m.vocab(), 21);
  const std::vector<int32_t> ref = reference_generate(m, prompt, 16, SamplingParams{}, true).output_ids;
  // A stop id: the first token that differs from the first generated one (so it is not at index 0).
  size_t k = 1;
  while (k < ref.size() && ref[k] == ref[0]) ++k;
  ASSERT_LT(k, ref.size());
  const int32_t stop = ref[k];
  size_t first = 0;
  while (ref[first] != stop) ++first;

  SchedHarness h = make_harness(m, 64, 16, options(4, 16, 100));
  auto len = submit(*h.scheduler, prompt, greedy(5));
  RequestSampling ss = greedy(16);
  ss.stop_token_ids = {stop};
  auto stopped = submit(*h.scheduler, prompt, ss);
  ASSERT_TRUE(h.scheduler->run_until_idle().ok());

  const auto outs = len->outputs();
  ASSERT_EQ(outs.size(), 5u);
  for (size_t i = 0; i < outs.size(); ++i) {
    EXPECT_EQ(outs[i].tokens.size(), 1u);
    EXPECT_EQ(outs[i].completion_tokens, static_cast<int64_t>(i + 1));
    EXPECT_EQ(outs[i].prompt_tokens, 10);
    EXPECT_EQ(outs[i].finish, i + 1 == outs.size() ? FinishReason::kLength : FinishReason::kNone);
  }
  EXPECT_EQ(len->ids(), std::vector<int32_t>(ref.begin(), ref.begin() + 5));

  EXPECT_EQ(stopped->ids(), std::vector<int32_t>(ref.begin(), ref.begin() + static_cast<long>(first) + 1));
  EXPECT_EQ(stopped->finish(), FinishReason::kStop);
  ASSERT_TRUE(stopped->outputs().back().matched_stop_token.has_value());
  EXPECT_EQ(*stopped->outputs().back().matched_stop_token, stop);
}

TEST(Scheduler, SubmitRejectsBadRequestsWithClearErrors) {
  const TestModel& m = TestModel::get();
  SchedHarness h = make_harness(m, 64, 16, options(4, 16, 64));
  auto sink = std::make_shared<CollectSink>();
  auto empty = h.scheduler->submit({}, greedy(4), sink);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("no tokens"), std::string::npos);
  auto too_long = h.scheduler->submit(make_prompt(64, m.vocab(), 1), greedy(4), sink);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.status().message().find("max_model_len"), std::string::npos);
  auto bad_id = h.scheduler->submit({1, static_cast<int32_t>(m.vocab())}, greedy(4), sink);
  ASSERT_FALSE(bad_id.ok());
  EXPECT_NE(bad_id.status().message().find("position 1"), std::string::npos);
  RequestSampling bad = greedy(4);
  bad.top_p = 0.0f;
  auto bad_sampling = h.scheduler->submit({1, 2}, bad, sink);
  ASSERT_FALSE(bad_sampling.ok());
  EXPECT_NE(bad_sampling.status().message().find("top_p"), std::string::npos);
  EXPECT_FALSE(h.scheduler->submit({1, 2}, greedy(4), nullptr).ok());
  // Context clipping: max_new_tokens beyond the context ends with kLength at max_model_len.
  auto clipped = submit(*h.scheduler, make_prompt(60, m.vocab(), 2), greedy(100));
  ASSERT_TRUE(h.scheduler->run_until_idle().ok());
  EXPECT_EQ(clipped->ids().size(), 4u);
  EXPECT_EQ(clipped->finish(), FinishReason::kLength);
}

TEST(ServingEngine, ThreadedSubmitFromManyThreadsMatchesSingleRequest) {
  const TestModel& m = TestModel::get();
  ServingOptions so;
  so.max_running_requests = 4;
  so.chunked_prefill_size = 16;
  so.max_model_len = 128;
  so.kv_pages = 64;
  auto engine = ServingEngine::create(*m.plan, *m.weights, so);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  ServingEngine& e = *engine.value();
  EXPECT_EQ(e.max_model_len(), 128);
  EXPECT_EQ(e.vocab_size(), m.vocab());
  constexpr int kThreads = 3, kPerThread = 3;
  std::vector<std::shared_ptr<CollectSink>> sinks(kThreads * kPerThread);
  std::vector<std::vector<int32_t>> prompts(sinks.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int j = 0; j < kPerThread; ++j) {
        const int i = t * kPerThread + j;
        prompts[i] = make_prompt(4 + 3 * i, m.vocab(), 50 + i);
        sinks[i] = std::make_shared<CollectSink>();
        auto id = e.submit(prompts[i], greedy(8), sinks[i]);
        EXPECT_TRUE(id.ok()) << id.status().message();
      }
    });
  for (auto& th : threads) th.join();
  for (size_t i = 0; i < sinks.size(); ++i) {
    sinks[i]->wait();
    EXPECT_EQ(sinks[i]->ids(), reference_generate(m, prompts[i], 8, SamplingParams{}, true).output_ids) << i;
  }
  ServingBackend::Stats st = e.stats();
  EXPECT_EQ(st.generation_tokens_total, 8 * kThreads * kPerThread);
  EXPECT_EQ(st.kv_pages_total, 64);
  // A request left running is aborted on shutdown.
  auto pending = std::make_shared<CollectSink>();
  ASSERT_TRUE(e.submit(make_prompt(20, m.vocab(), 99), greedy(100), pending).ok());
  engine.value().reset();
  EXPECT_TRUE(pending->finished());
  EXPECT_NE(pending->finish(), FinishReason::kNone);
}

TEST(ServingEngine, AbortFromAnotherThreadEndsTheStreamAndFreesPages) {
  const TestModel& m = TestModel::get();
  ServingOptions so;
  so.max_running_requests = 2;
  so.chunked_prefill_size = 8;
  so.max_model_len = 200;
  so.kv_pages = 128;
  so.enable_prefix_cache = false;
  auto engine = ServingEngine::create(*m.plan, *m.weights, so);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  ServingEngine& e = *engine.value();
  auto sink = std::make_shared<CollectSink>();
  auto id = e.submit(make_prompt(20, m.vocab(), 5), greedy(180), sink);
  ASSERT_TRUE(id.ok());
  sink->wait_first();
  e.abort(id.value());
  sink->wait();
  EXPECT_EQ(sink->finish(), FinishReason::kAbort);
  EXPECT_LT(sink->ids().size(), 180u);
  // Stats are published at the end of the loop iteration that handled the abort.
  ServingBackend::Stats st;
  do st = e.stats(); while (st.running != 0);
  EXPECT_EQ(st.kv_pages_used, 0);
  EXPECT_EQ(e.kv_cache().usage().used_pages, 0);
}

TEST(ServingEngine, KvBudgetFromPagesOrMemoryFraction) {
  const TestModel& m = TestModel::get();
  auto one = KvCacheConfig::from_plan(*m.plan->plan().kv_cache(), 1);
  ASSERT_TRUE(one.ok());
  const int64_t per_page = one.value().bytes_per_page();
  ServingOptions so;
  so.max_model_len = 64;
  so.chunked_prefill_size = 16;
  so.max_running_requests = 4;
  so.kv_memory_bytes = per_page * 100;
  so.kv_memory_fraction = 0.5;
  auto pages = resolve_kv_pages(*m.plan, so, 64);
  ASSERT_TRUE(pages.ok());
  EXPECT_EQ(pages.value(), 50);
  so.kv_pages = 7;  // explicit pages win
  EXPECT_EQ(resolve_kv_pages(*m.plan, so, 64).value(), 7);
  so.kv_pages = 0;
  so.kv_memory_bytes = per_page / 2;
  auto none = resolve_kv_pages(*m.plan, so, 64);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("holds no page"), std::string::npos);
  so.kv_memory_bytes = per_page * 100;
  so.start_loop = false;
  auto e = ServingEngine::create(*m.plan, *m.weights, so);
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e.value()->stats().kv_pages_total, 50);
}

TEST(ServingEngine, RejectsInconsistentOptions) {
  const TestModel& m = TestModel::get();
  const int64_t plan_len = m.plan->plan().model()->max_model_len();
  ServingOptions so;
  so.max_model_len = plan_len + 1;
  auto too_long = ServingEngine::create(*m.plan, *m.weights, so);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.status().message().find("max_model_len"), std::string::npos);
  so = ServingOptions{};
  so.max_model_len = 64;
  so.chunked_prefill_size = 8;
  so.max_running_requests = 9;
  auto too_many = ServingEngine::create(*m.plan, *m.weights, so);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("max_running_requests"), std::string::npos);
  so.max_running_requests = 8;
  so.kv_pages = 1;  // cannot hold one max_model_len request
  auto small = ServingEngine::create(*m.plan, *m.weights, so);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("fewer than max_model_len"), std::string::npos);
  so.kv_pages = 0;
  so.chunked_prefill_size = 0;  // auto: at least one decode slot per running request
  so.max_running_requests = 100;
  so.start_loop = false;
  auto autosized = ServingEngine::create(*m.plan, *m.weights, so);
  ASSERT_TRUE(autosized.ok()) << autosized.status().message();
  EXPECT_EQ(autosized.value()->scheduler().token_budget(), 100);
  so.kv_memory_fraction = 1.5;
  EXPECT_FALSE(ServingEngine::create(*m.plan, *m.weights, so).ok());
}

}  // namespace
}  // namespace ds::test
