#include "tests/scheduler/test_model.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace ds::test {
namespace {

std::unique_ptr<TestModel> load() {
  auto m = std::make_unique<TestModel>();
  const char* env = std::getenv("DS_SCHED_TEST_PLAN");
  WeightLoadOptions wo;
  if (env && *env) {
    auto lp = LoadedPlan::from_file(env);
    if (!lp.ok()) {
      ADD_FAILURE() << lp.status().message();
      return nullptr;
    }
    m->plan = std::move(lp).value();
    wo.model_path = DS_SCHED_FIXTURE_DIR;
    m->source = std::string("dscc plan ") + env;
  } else {
    TinyModel tm;
    tm.vocab = 97;
    tm.max_model_len = 256;
    tm.page_size = 4;
    tm.hidden = 32;
    tm.head_dim = 8;
    tm.intermediate = 48;
    m->dir = std::make_unique<TempDir>();
    write_bytes(m->dir->file("model.safetensors"), safetensors_bytes(tm.checkpoint(7)));
    auto lp = LoadedPlan::from_bytes(tm.plan_bytes(m->dir->path()), "tiny.dsplan");
    if (!lp.ok()) {
      ADD_FAILURE() << lp.status().message();
      return nullptr;
    }
    m->plan = std::move(lp).value();
    m->source = "hand-built TinyModel plan";
  }
  auto lw = LoadedWeights::load(*m->plan, wo);
  if (!lw.ok()) {
    ADD_FAILURE() << lw.status().message();
    return nullptr;
  }
  m->weights = std::move(lw).value();
  return m;
}

}  // namespace

const TestModel& TestModel::get() {
  static std::unique_ptr<TestModel> model = load();
  DS_CHECK(model != nullptr, "test model failed to load");
  return *model;
}

std::vector<int32_t> make_prompt(int64_t n, int64_t vocab, int salt) {
  std::vector<int32_t> ids;
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(salt + 1);
  for (int64_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ids.push_back(static_cast<int32_t>(x % static_cast<uint64_t>(vocab)));
  }
  return ids;
}

GenerateResult reference_generate(const TestModel& m, const std::vector<int32_t>& prompt, int64_t max_new,
                                  const SamplingParams& sampling, bool ignore_eos) {
  auto e = Engine::create(*m.plan, *m.weights, EngineOptions{64, 0});
  DS_CHECK(e.ok(), e.status().message());
  GenerateOptions go;
  go.max_new_tokens = max_new;
  go.sampling = sampling;
  go.ignore_eos = ignore_eos;
  auto r = e.value()->generate(prompt, go);
  DS_CHECK(r.ok(), r.status().message());
  return std::move(r).value();
}

SchedHarness make_harness(const TestModel& m, int64_t num_pages, int64_t capacity, SchedulerOptions options) {
  SchedHarness h;
  auto cfg = KvCacheConfig::from_plan(*m.plan->plan().kv_cache(), num_pages);
  DS_CHECK(cfg.ok(), cfg.status().message());
  auto kv = KvCache::create(cfg.value());
  DS_CHECK(kv.ok(), kv.status().message());
  h.kv = std::move(kv).value();
  auto ex = make_executor(*m.plan, *m.weights, *h.kv, capacity);
  DS_CHECK(ex.ok(), ex.status().message());
  h.executor = std::move(ex).value();
  if (options.eos_token_ids.empty()) {
    const plan::Plan& p = m.plan->plan();
    if (p.generation() && p.generation()->eos_token_ids())
      options.eos_token_ids.assign(p.generation()->eos_token_ids()->begin(), p.generation()->eos_token_ids()->end());
  }
  auto s = Scheduler::create(*h.executor, *h.kv, options);
  DS_CHECK(s.ok(), s.status().message());
  h.scheduler = std::move(s).value();
  return h;
}

void CollectSink::on_output(RequestOutput&& o) {
  std::lock_guard<std::mutex> lk(mu_);
  EXPECT_FALSE(done_) << "update after the final one";
  if (o.finish != FinishReason::kNone) done_ = true;
  outs_.push_back(std::move(o));
  cv_.notify_all();
}

void CollectSink::wait() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return done_; });
}

void CollectSink::wait_first() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return !outs_.empty(); });
}

bool CollectSink::finished() const {
  std::lock_guard<std::mutex> lk(mu_);
  return done_;
}

FinishReason CollectSink::finish() const {
  std::lock_guard<std::mutex> lk(mu_);
  return outs_.empty() ? FinishReason::kNone : outs_.back().finish;
}

std::vector<GeneratedToken> CollectSink::tokens() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<GeneratedToken> t;
  for (const RequestOutput& o : outs_) t.insert(t.end(), o.tokens.begin(), o.tokens.end());
  return t;
}

std::vector<int32_t> CollectSink::ids() const {
  std::vector<int32_t> ids;
  for (const GeneratedToken& t : tokens()) ids.push_back(t.id);
  return ids;
}

std::vector<RequestOutput> CollectSink::outputs() const {
  std::lock_guard<std::mutex> lk(mu_);
  return outs_;
}

RequestSampling greedy(int64_t max_new) {
  RequestSampling s;
  s.temperature = 0.0f;
  s.max_new_tokens = max_new;
  s.ignore_eos = true;
  return s;
}

std::shared_ptr<CollectSink> submit(Scheduler& s, const std::vector<int32_t>& prompt, const RequestSampling& sp) {
  auto sink = std::make_shared<CollectSink>();
  auto id = s.submit(prompt, sp, sink);
  EXPECT_TRUE(id.ok()) << id.status().message();
  return sink;
}

SchedulerOptions options(int64_t max_running, int64_t chunk, int64_t max_len) {
  SchedulerOptions o;
  o.max_running_requests = max_running;
  o.chunked_prefill_size = chunk;
  o.max_model_len = max_len;
  return o;
}

}  // namespace ds::test
