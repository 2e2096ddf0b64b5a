// The L2 prefetch plan of a decode program (runtime/executor/l2_prefetch_plan.h).
#include "runtime/executor/l2_prefetch_plan.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace ds {
namespace {

using Role = PrefetchOp::Role;
constexpr uint64_t kMiB = 1u << 20;
constexpr size_t kNone = PrefetchAssignment::kNone;

PrefetchOp linear(uint64_t mib) { return {Role::kLinear, mib * kMiB}; }
PrefetchOp attention() { return {Role::kLatencyBound, 0}; }
PrefetchOp fused() { return {Role::kOther, 0}; }

void expect(const PrefetchAssignment& a, size_t target, uint64_t offset_mib, uint64_t bytes) {
  EXPECT_EQ(a.target, target);
  EXPECT_EQ(a.offset, offset_mib * kMiB);
  EXPECT_EQ(a.bytes, bytes);
}

// One 7B-like layer at batch 1: qkv, attention, o, gate_up, down, then the next qkv.
TEST(L2PrefetchPlan, AttentionPrefetchesOProjWhichPrefetchesGateUpHead) {
  const std::vector<PrefetchOp> ops = {linear(33), attention(), linear(25), linear(271), linear(136), linear(33)};
  const auto a = plan_l2_prefetch(ops, 30 * kMiB);
  ASSERT_EQ(a.size(), ops.size());
  expect(a[0], kNone, 0, 0);          // qkv streams from HBM
  expect(a[1], 2, 0, 25 * kMiB);      // attention: all of o_proj (under the budget)
  expect(a[2], 3, 0, 30 * kMiB);      // o_proj, now in L2: the first 30 MiB of gate_up
  expect(a[3], kNone, 0, 0);          // gate_up is not wholly prefetched: no source
  expect(a[4], kNone, 0, 0);
  expect(a[5], kNone, 0, 0);          // last linear: nothing after it
}

// A target bigger than the budget is covered up to the budget only, and then
// its own kernel streams from HBM (not a source).
TEST(L2PrefetchPlan, BudgetCapsEachTarget) {
  const std::vector<PrefetchOp> ops = {attention(), linear(52), linear(300)};
  const auto a = plan_l2_prefetch(ops, 30 * kMiB);
  expect(a[0], 1, 0, 30 * kMiB);
  expect(a[1], kNone, 0, 0);
}

// TP: o_proj, all-reduce, gate_up: the all-reduce continues where o_proj stopped,
// up to the budget; ops between a source and its target do not matter.
TEST(L2PrefetchPlan, SeveralSourcesShareOneTargetInOrder) {
  const std::vector<PrefetchOp> ops = {attention(), fused(), linear(20), attention(), fused(), linear(280)};
  const auto a = plan_l2_prefetch(ops, 30 * kMiB);
  expect(a[0], 2, 0, 20 * kMiB);
  expect(a[1], kNone, 0, 0);
  expect(a[2], 5, 0, 30 * kMiB);  // o_proj wholly in L2: head of gate_up
  expect(a[3], kNone, 0, 0);      // the budget of gate_up is used up
  // With a larger budget the all-reduce takes the next slice.
  const auto b = plan_l2_prefetch(ops, 40 * kMiB);
  expect(b[2], 5, 0, 40 * kMiB);
  const std::vector<PrefetchOp> ops2 = {attention(), linear(50), attention(), linear(280)};
  const auto c = plan_l2_prefetch(ops2, 30 * kMiB);
  expect(c[0], 1, 0, 30 * kMiB);   // o is only partly prefetched: it streams, prefetches nothing
  expect(c[1], kNone, 0, 0);
  expect(c[2], 3, 0, 30 * kMiB);   // the all-reduce then prefetches gate_up's head
}

TEST(L2PrefetchPlan, ZeroBudgetAndNoLinearsPlanNothing) {
  const std::vector<PrefetchOp> ops = {attention(), linear(10), attention()};
  for (const auto& x : plan_l2_prefetch(ops, 0)) EXPECT_EQ(x.bytes, 0u);
  const auto a = plan_l2_prefetch(ops, 30 * kMiB);
  expect(a[2], kNone, 0, 0);  // nothing after the last attention
  EXPECT_TRUE(plan_l2_prefetch({}, kMiB).empty());
  const auto z = plan_l2_prefetch({attention(), PrefetchOp{Role::kLinear, 0}}, kMiB);
  expect(z[0], kNone, 0, 0);  // an empty weight: nothing to prefetch
}

TEST(L2PrefetchPlan, BudgetFromEnvironmentOrL2Size) {
  unsetenv("DSRT_L2_PREFETCH_MB");
  EXPECT_EQ(l2_prefetch_budget(50 * kMiB), 0u);
  setenv("DSRT_L2_PREFETCH_MB", "12", 1);
  EXPECT_EQ(l2_prefetch_budget(50 * kMiB), 12 * kMiB);
  setenv("DSRT_L2_PREFETCH_MB", "0", 1);
  EXPECT_EQ(l2_prefetch_budget(50 * kMiB), 0u);
  setenv("DSRT_L2_PREFETCH_MB", "-3", 1);
  EXPECT_EQ(l2_prefetch_budget(50 * kMiB), 0u);  // ignored with a warning
  setenv("DSRT_L2_PREFETCH_MB", "lots", 1);
  EXPECT_EQ(l2_prefetch_budget(50 * kMiB), 0u);
  unsetenv("DSRT_L2_PREFETCH_MB");
}

}  // namespace
}  // namespace ds
