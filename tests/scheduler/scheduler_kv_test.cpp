// KV-memory behaviour of the scheduler: prefix-cache reuse, LRU eviction,
// preemption on a tiny pool, and abort freeing pages.
#include <gtest/gtest.h>

#include "tests/scheduler/test_model.h"

namespace ds::test {
namespace {

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The KV computed elsewhere must give the very same logits: compare logprobs exactly.
void expect_same_logprobs(const CollectSink& a, const CollectSink& b) {
  const auto ta = a.tokens(), tb = b.tokens();
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_EQ(ta[i].id, tb[i].id) << "token " << i;
    EXPECT_FLOAT_EQ(ta[i].logprob, tb[i].logprob) << "token " << i;
    ASSERT_EQ(ta[i].top.size(), tb[i].top.size());
    for (size_t j = 0; j < ta[i].top.size(); ++j) EXPECT_FLOAT_EQ(ta[i].top[j].logprob, tb[i].top[j].logprob);
  }
}

// Runs one request (greedy, with logprobs) to completion and returns its sink.
std::shared_ptr<CollectSink> run_one(Scheduler& s, const std::vector<int32_t>& prompt, int64_t max_new) {
  RequestSampling sp = greedy(max_new);
  sp.logprobs = 2;
  auto sink = submit(s, prompt, sp);
  EXPECT_TRUE(s.run_until_idle().ok());
  EXPECT_TRUE(sink->finished());
  return sink;
}

TEST(PrefixCache, SharedPrefixIsReusedAndOutputMatchesColdRun) {
  const TestModel& m = TestModel::get();
  const int64_t ps = m.page_size();
  SchedHarness h = make_harness(m, 128, 16, options(4, 16, 200));
  const std::vector<int32_t> shared = make_prompt(4 * ps, m.vocab(), 1);
  const std::vector<int32_t> p1 = concat(shared, make_prompt(3, m.vocab(), 2));
  const std::vector<int32_t> p2 = concat(shared, make_prompt(5, m.vocab(), 3));

  auto first = run_one(*h.scheduler, p1, 6);
  EXPECT_EQ(first->outputs().front().cached_prompt_tokens, 0);
  EXPECT_GT(h.scheduler->stats().kv_pages_cached, 0);
  EXPECT_EQ(h.scheduler->stats().kv_pages_used, 0);

  auto second = run_one(*h.scheduler, p2, 6);
  EXPECT_EQ(second->outputs().front().cached_prompt_tokens, 4 * ps);
  EXPECT_EQ(second->ids(), reference_generate(m, p2, 6, SamplingParams{}, true).output_ids);
  SchedHarness cold = make_harness(m, 128, 16, options(4, 16, 200));
  expect_same_logprobs(*second, *run_one(*cold.scheduler, p2, 6));
  ServingBackend::Stats st = h.scheduler->stats();
  EXPECT_EQ(st.prefix_cache_hit_tokens, 4 * ps);
  EXPECT_EQ(st.prefix_cache_query_tokens, static_cast<int64_t>(p1.size() + p2.size()));

  // The identical prompt again: every full page but the one holding the last token.
  auto again = run_one(*h.scheduler, p1, 6);
  EXPECT_EQ(again->outputs().front().cached_prompt_tokens, ((static_cast<int64_t>(p1.size()) - 1) / ps) * ps);
  expect_same_logprobs(*again, *first);
}

TEST(PrefixCache, LastPromptTokenIsAlwaysRecomputed) {
  const TestModel& m = TestModel::get();
  const int64_t ps = m.page_size();
  SchedHarness h = make_harness(m, 64, 16, options(4, 16, 100));
  const std::vector<int32_t> p = make_prompt(3 * ps, m.vocab(), 5);  // exactly 3 full pages
  auto a = run_one(*h.scheduler, p, 4);
  auto b = run_one(*h.scheduler, p, 4);
  EXPECT_EQ(b->outputs().front().cached_prompt_tokens, 2 * ps);
  expect_same_logprobs(*a, *b);
}

TEST(PrefixCache, PromptLogprobsRequestsComputeEveryRow) {
  const TestModel& m = TestModel::get();
  const int64_t ps = m.page_size();
  SchedHarness h = make_harness(m, 64, 16, options(4, 16, 100));
  const std::vector<int32_t> p = make_prompt(3 * ps + 1, m.vocab(), 6);
  run_one(*h.scheduler, p, 2);
  RequestSampling s = greedy(2);
  s.prompt_logprobs = true;
  auto sink = submit(*h.scheduler, p, s);
  ASSERT_TRUE(h.scheduler->run_until_idle().ok());
  EXPECT_EQ(sink->outputs().front().cached_prompt_tokens, 0);
  EXPECT_EQ(sink->outputs().front().prompt_logprobs.size(), p.size());
}

TEST(PrefixCache, LeastRecentlyUsedPrefixIsEvictedUnderPressure) {
  const TestModel& m = TestModel::get();
  const int64_t ps = m.page_size();
  // 8 pages: the pool holds exactly one max_model_len request.
  SchedHarness h = make_harness(m, 8, 16, options(2, 16, 8 * ps));
  const std::vector<int32_t> a = make_prompt(2 * ps + 1, m.vocab(), 10);
  const std::vector<int32_t> b = make_prompt(2 * ps + 1, m.vocab(), 11);
  const std::vector<int32_t> c = make_prompt(5 * ps + 1, m.vocab(), 12);
  run_one(*h.scheduler, a, 1);  // caches 2 pages
  run_one(*h.scheduler, b, 1);  // caches 2 more
  EXPECT_EQ(h.scheduler->stats().kv_pages_cached, 4);
  EXPECT_EQ(run_one(*h.scheduler, a, 1)->outputs().front().cached_prompt_tokens, 2 * ps);  // a is now newer than b
  auto rc = run_one(*h.scheduler, c, 1);  // needs 6 pages: b's 2 are evicted
  EXPECT_EQ(rc->ids(), reference_generate(m, c, 1, SamplingParams{}, true).output_ids);
  EXPECT_LE(h.kv->usage().peak_used_pages, 8);
  EXPECT_EQ(run_one(*h.scheduler, a, 1)->outputs().front().cached_prompt_tokens, 2 * ps);
  auto rb = run_one(*h.scheduler, b, 1);
  EXPECT_EQ(rb->outputs().front().cached_prompt_tokens, 0);
  EXPECT_EQ(rb->ids(), reference_generate(m, b, 1, SamplingParams{}, true).output_ids);
  EXPECT_EQ(h.scheduler->stats().kv_pages_used, 0);
}

TEST(Preemption, TinyPoolPreemptsNewestAndOutputsStayIdentical) {
  const TestModel& m = TestModel::get();
  const int64_t ps = m.page_size();
  SchedulerOptions o = options(4, 32, 8 * ps);
  o.new_token_reserve_ratio = 0.0;  // admit on input pages only: decode growth must preempt
  SchedHarness h = make_harness(m, 8, 32, o);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<RequestSampling> samplings;
  std::vector<std::shared_ptr<CollectSink>> sinks;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(make_prompt(2 * ps - 1, m.vocab(), 30 + i));
    RequestSampling s = greedy(3 * ps);
    s.logprobs = 1;
    if (i % 2 == 1) {  // seeded sampling must continue seamlessly after recomputation too
      s.temperature = 1.0f;
      s.seed = 1000 + i;
    }
    samplings.push_back(s);
    sinks.push_back(submit(*h.scheduler, prompts.back(), s));
  }
  ASSERT_TRUE(h.scheduler->run_until_idle().ok());
  EXPECT_GT(h.scheduler->stats().preemptions_total, 0);
  EXPECT_LE(h.kv->usage().peak_used_pages, 8);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SamplingParams sp;
    sp.temperature = samplings[i].temperature;
    sp.seed = samplings[i].seed.value_or(0);
    EXPECT_EQ(sinks[i]->ids(), reference_generate(m, prompts[i], 3 * ps, sp, true).output_ids) << "request " << i;
    EXPECT_EQ(sinks[i]->finish(), FinishReason::kLength);
    // The stream continued without repeats: one token per update.
    EXPECT_EQ(sinks[i]->outputs().size(), static_cast<size_t>(3 * ps));
  }
  EXPECT_EQ(h.scheduler->stats().kv_pages_used, 0);
  // Same requests on a roomy pool, without preemption: identical logits.
  SchedHarness roomy = make_harness(m, 64, 32, options(4, 32, 8 * ps));
  std::vector<std::shared_ptr<CollectSink>> calm;
  for (size_t i = 0; i < prompts.size(); ++i) calm.push_back(submit(*roomy.scheduler, prompts[i], samplings[i]));
  ASSERT_TRUE(roomy.scheduler->run_until_idle().ok());
  EXPECT_EQ(roomy.scheduler->stats().preemptions_total, 0);
  for (size_t i = 0; i < prompts.size(); ++i) expect_same_logprobs(*sinks[i], *calm[i]);
}

TEST(Admission, DecodeReserveHoldsRequestsBackInsteadOfPreempting) {
  const TestModel& m = TestModel::get();
  const int64_t ps = m.page_size();
  SchedulerOptions o = options(4, 32, 8 * ps);
  o.new_token_reserve_ratio = 1.0;  // reserve every request's full growth: never preempt
  SchedHarness h = make_harness(m, 8, 32, o);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::shared_ptr<CollectSink>> sinks;
  for (int i = 0; i < 3; ++i) {
    prompts.push_back(make_prompt(2 * ps - 1, m.vocab(), 60 + i));
    sinks.push_back(submit(*h.scheduler, prompts.back(), greedy(3 * ps)));  // 5 pages each at the end
  }
  ASSERT_TRUE(h.scheduler->step().ok());
  ServingBackend::Stats st = h.scheduler->stats();
  EXPECT_EQ(st.running, 1);  // a second one would need 5 + 5 > 8 pages
  EXPECT_EQ(st.waiting, 2);
  ASSERT_TRUE(h.scheduler->run_until_idle().ok());
  EXPECT_EQ(h.scheduler->stats().preemptions_total, 0);
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(sinks[i]->ids(), reference_generate(m, prompts[i], 3 * ps, SamplingParams{}, true).output_ids);
}

TEST(Abort, FreesPagesWhileWaitingMidPrefillAndDecoding) {
  const TestModel& m = TestModel::get();
  const int64_t ps = m.page_size();
  SchedulerOptions o = options(2, 4, 200);
  o.enable_prefix_cache = false;
  SchedHarness h = make_harness(m, 64, 4, o);
  Scheduler& s = *h.scheduler;
  auto decoding = std::make_shared<CollectSink>();
  auto prefilling = std::make_shared<CollectSink>();
  auto waiting = std::make_shared<CollectSink>();
  auto id_decoding = s.submit(make_prompt(3, m.vocab(), 40), greedy(50), decoding);
  auto id_prefilling = s.submit(make_prompt(6 * ps, m.vocab(), 41), greedy(50), prefilling);
  auto id_waiting = s.submit(make_prompt(5, m.vocab(), 42), greedy(50), waiting);  // max_running 2: waits
  ASSERT_TRUE(id_decoding.ok() && id_prefilling.ok() && id_waiting.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.step().ok());
  ServingBackend::Stats st = s.stats();
  EXPECT_EQ(st.running, 2);
  EXPECT_EQ(st.waiting, 1);
  EXPECT_GT(st.kv_pages_used, 0);
  EXPECT_FALSE(decoding->ids().empty());   // in decode
  EXPECT_TRUE(prefilling->ids().empty());  // still in its chunked prefill

  s.abort(id_prefilling.value());
  s.abort(id_waiting.value());
  ASSERT_TRUE(s.step().ok());
  EXPECT_EQ(prefilling->finish(), FinishReason::kAbort);
  EXPECT_EQ(waiting->finish(), FinishReason::kAbort);
  EXPECT_TRUE(waiting->ids().empty());
  s.abort(id_decoding.value());
  ASSERT_TRUE(s.step().ok());
  EXPECT_EQ(decoding->finish(), FinishReason::kAbort);
  st = s.stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.waiting, 0);
  EXPECT_EQ(st.kv_pages_used, 0);
  EXPECT_EQ(h.kv->usage().used_pages, 0);
  s.abort(id_decoding.value());  // finished: no-op
  s.abort(777);                  // unknown: no-op
  EXPECT_FALSE(s.step().value());
}

}  // namespace
}  // namespace ds::test
