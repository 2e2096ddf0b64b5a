// Tensor parallelism on the CPU executor: a plan sharded for N ranks (built the
// way dscc --tp shards: column/row-parallel linears + all_reduce, vocab-parallel
// embedding and lm_head + all_gather, replicated KV heads when N > kv heads)
// must score like the unsharded plan of the same checkpoint.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/engine/engine.h"
#include "runtime/executor/cpu_executor.h"
#include "runtime/executor/dist_executor.h"
#include "runtime/executor/tp_executor.h"
#include "tests/runtime/test_util.h"

namespace ds {
namespace {

using test::TempDir;
using test::TinyModel;

struct Model {
  std::unique_ptr<LoadedPlan> plan;
  std::unique_ptr<LoadedWeights> weights;
};

Model load(const TinyModel& m, const TempDir& dir, const std::string& name) {
  Model out;
  auto lp = LoadedPlan::from_bytes(m.plan_bytes(dir.path()), name);
  EXPECT_TRUE(lp.ok()) << lp.status().message();
  if (!lp.ok()) return out;
  out.plan = std::move(lp).value();
  auto lw = LoadedWeights::load(*out.plan, WeightLoadOptions{});
  EXPECT_TRUE(lw.ok()) << lw.status().message();
  if (lw.ok()) out.weights = std::move(lw).value();
  return out;
}

std::vector<int32_t> prompt(int n, int vocab) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back((i * 11 + 5) % vocab);
  return ids;
}

// (tp, fused, tied, token capacity)
class TpScore : public ::testing::TestWithParam<std::tuple<int, bool, bool, int>> {};

TEST_P(TpScore, MatchesUnshardedPlan) {
  const auto [tp, fused, tied, capacity] = GetParam();
  TinyModel m;
  m.fused = fused;
  m.tied = tied;
  TempDir dir;
  test::write_bytes(dir.file("model.safetensors"), test::safetensors_bytes(m.checkpoint(21)));
  Model dense = load(m, dir, "tp1.dsplan");
  TinyModel ms = m;
  ms.tp = tp;
  Model sharded = load(ms, dir, "tp.dsplan");
  ASSERT_TRUE(dense.weights && sharded.weights);
  EXPECT_EQ(sharded.plan->plan().tp_size(), tp);
  auto e1 = Engine::create(*dense.plan, *dense.weights, EngineOptions{capacity, 0});
  auto en = Engine::create(*sharded.plan, *sharded.weights, EngineOptions{capacity, 0});
  ASSERT_TRUE(e1.ok()) << e1.status().message();
  ASSERT_TRUE(en.ok()) << en.status().message();
  const auto ids = prompt(11, static_cast<int>(m.vocab));
  auto want = (*e1)->score(ids, m.vocab);
  auto got = (*en)->score(ids, m.vocab);
  ASSERT_TRUE(want.ok()) << want.status().message();
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->size(), want->size());
  double err = 0;
  for (size_t t = 0; t < got->size(); ++t) {
    const PositionScore& g = (*got)[t];
    const PositionScore& w = (*want)[t];
    err = std::max(err, std::abs(g.logsumexp - w.logsumexp));
    // Compare logits by id (top lists hold the whole vocabulary here).
    std::vector<float> gv(static_cast<size_t>(m.vocab)), wv(static_cast<size_t>(m.vocab));
    for (size_t j = 0; j < g.top_ids.size(); ++j) gv[static_cast<size_t>(g.top_ids[j])] = g.top_logits[j];
    for (size_t j = 0; j < w.top_ids.size(); ++j) wv[static_cast<size_t>(w.top_ids[j])] = w.top_logits[j];
    for (size_t v = 0; v < gv.size(); ++v) err = std::max(err, static_cast<double>(std::abs(gv[v] - wv[v])));
  }
  EXPECT_LT(err, 1e-4);
  // Greedy generation follows the same tokens.
  GenerateOptions go;
  go.max_new_tokens = 6;
  go.ignore_eos = true;
  auto g1 = (*e1)->generate(prompt(5, static_cast<int>(m.vocab)), go);
  auto gn = (*en)->generate(prompt(5, static_cast<int>(m.vocab)), go);
  ASSERT_TRUE(g1.ok()) << g1.status().message();
  ASSERT_TRUE(gn.ok()) << gn.status().message();
  EXPECT_EQ(gn->output_ids, g1->output_ids);
}

// tp 4 > 2 kv heads: each KV head is shared by two ranks (slice_rank_divisor 2).
// Capacity 3 splits the prefill into chunks that cross page boundaries.
INSTANTIATE_TEST_SUITE_P(Plans, TpScore,
                         ::testing::Values(std::make_tuple(2, false, false, 64), std::make_tuple(2, true, true, 3),
                                           std::make_tuple(4, false, true, 64), std::make_tuple(4, true, false, 3)));

TEST(TpExecutor, ShardedPlanNeedsAMatchingGroup) {
  TinyModel m;
  m.tp = 2;
  TempDir dir;
  test::write_bytes(dir.file("model.safetensors"), test::safetensors_bytes(m.checkpoint(3)));
  Model sh = load(m, dir, "tp2.dsplan");
  ASSERT_TRUE(sh.weights);
  auto cfg = KvCacheConfig::from_plan(*sh.plan->plan().kv_cache(), 16);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  auto kv = KvCache::create(*cfg);
  ASSERT_TRUE(kv.ok());
  auto ex = CpuExecutor::create(*sh.plan, *sh.weights, **kv, 8);
  ASSERT_FALSE(ex.ok());
  EXPECT_NE(ex.status().message().find("sharded for 2 tensor-parallel ranks"), std::string::npos)
      << ex.status().message();
  // Rank 0 of the TpExecutor must get rank 0's weights.
  WeightLoadOptions o;
  o.tp_rank = 1;
  auto w1 = LoadedWeights::load(*sh.plan, o);
  ASSERT_TRUE(w1.ok()) << w1.status().message();
  auto tpe = TpExecutor::create(*sh.plan, **w1, **kv, 8, CommOptions{});
  ASSERT_FALSE(tpe.ok());
  EXPECT_NE(tpe.status().message().find("weights of rank 1"), std::string::npos) << tpe.status().message();
}

TEST(TpExecutor, BadTokenFailsOnEveryRankWithoutHanging) {
  TinyModel m;
  m.tp = 2;
  TempDir dir;
  test::write_bytes(dir.file("model.safetensors"), test::safetensors_bytes(m.checkpoint(5)));
  Model sh = load(m, dir, "tp2.dsplan");
  ASSERT_TRUE(sh.weights);
  auto cfg = KvCacheConfig::from_plan(*sh.plan->plan().kv_cache(), 16);
  ASSERT_TRUE(cfg.ok());
  auto kv = KvCache::create(*cfg);
  ASSERT_TRUE(kv.ok());
  auto tpe = TpExecutor::create(*sh.plan, *sh.weights, **kv, 8, CommOptions{});
  ASSERT_TRUE(tpe.ok()) << tpe.status().message();
  PageTable pt;
  ASSERT_TRUE((*kv)->reserve(pt, 2).ok());
  StepBatch b;
  b.tokens = {1, static_cast<int32_t>(m.vocab)};  // second id is outside the vocabulary
  b.positions = {0, 1};
  b.logit_rows = {1};
  b.sequences.push_back(StepSequence{0, 2, 0, pt.pages});
  std::vector<float> logits(static_cast<size_t>(m.vocab));
  Status s = (*tpe)->step(b, logits.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("outside the vocabulary [0, 40)"), std::string::npos) << s.message();
  // The group is still usable: a valid step runs.
  b.tokens = {1, 2};
  Status ok = (*tpe)->step(b, logits.data());
  EXPECT_TRUE(ok.ok()) << ok.message();
}

TEST(DistExecutor, StepMessagesRoundTrip) {
  StepBatch b;
  b.tokens = {5, 6, 7};
  b.positions = {3, 4, 0};
  b.logit_rows = {1, 2};
  b.sequences.push_back(StepSequence{0, 2, 3, {4, 9}});
  b.sequences.push_back(StepSequence{2, 1, 0, {1}});
  std::string bytes;
  encode_step(b, bytes);
  auto d = decode_step(bytes);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->tokens, b.tokens);
  EXPECT_EQ(d->positions, b.positions);
  EXPECT_EQ(d->logit_rows, b.logit_rows);
  ASSERT_EQ(d->sequences.size(), 2u);
  EXPECT_EQ(d->sequences[0].num_cached, 3);
  EXPECT_EQ(d->sequences[0].page_table, (std::vector<int32_t>{4, 9}));
  EXPECT_EQ(d->sequences[1].first_token, 2);
  EXPECT_FALSE(decode_step(bytes.substr(0, bytes.size() - 1)).ok());
  EXPECT_FALSE(decode_step(bytes + "x").ok());
  EXPECT_FALSE(decode_step("").ok());
}

}  // namespace
}  // namespace ds
