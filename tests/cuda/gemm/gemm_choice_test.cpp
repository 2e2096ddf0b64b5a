// kAuto's candidate lists (kernels/cuda/gemm/gemm_choice.h), host only (runs in
// CI): the warp GEMV is timed with 1, 2 and 4 warps per row forced, the SwiGLU
// epilogue never gets 4 (a block holds a gate/up pair), the RMSNorm prologue
// and the SwiGLU epilogue exclude cuBLASLt and the tensor-core GEMV, the
// long-k PDL rule offers only the forced splits, and every choice has a name
// that DSRT_GEMM_KERNEL accepts.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/gemm_choice.h"
#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/timing_decoys.h"

namespace ds::cuda::detail {
namespace {

bool has(const std::vector<Choice>& v, Choice c) { return std::find(v.begin(), v.end(), c) != v.end(); }

GemmArgs problem(int64_t m, int64_t n, int64_t k) {
  GemmArgs a;
  a.m = m, a.n = n, a.k = k;
  a.ldx = k, a.ldy = n;
  return a;
}

TEST(GemmChoice, WarpSplitsAreCandidates) {
  const std::vector<Choice> c = choice_candidates(problem(1, 3584, 18944));
  EXPECT_TRUE(has(c, Choice::kCublasLt));
  EXPECT_TRUE(has(c, Choice::kGemvMma));
  EXPECT_TRUE(has(c, Choice::kGemvWarpS1));
  EXPECT_TRUE(has(c, Choice::kGemvWarpS2));
  EXPECT_TRUE(has(c, Choice::kGemvWarpS4));
  EXPECT_TRUE(has(c, Choice::kGemvWarpDeep));  // m = 1 only
  EXPECT_FALSE(has(c, Choice::kGemvWarp));     // its split is one of the forced ones
  const std::vector<Choice> c3 = choice_candidates(problem(3, 3584, 3584));
  EXPECT_FALSE(has(c3, Choice::kGemvWarpDeep));
  EXPECT_TRUE(has(c3, Choice::kGemvWarpS4));
  // Past the warp kernels' m: cuBLASLt and the tensor-core GEMV only.
  const std::vector<Choice> c8 = choice_candidates(problem(kGemvWarpMaxM + 1, 3584, 3584));
  EXPECT_TRUE(has(c8, Choice::kCublasLt));
  EXPECT_FALSE(has(c8, Choice::kGemvWarpS1));
}

TEST(GemmChoice, DeferredNormRunsOnTheWarpRowKernelsAtBatchOne) {
  GemmArgs a = problem(1, 3584, 3584);
  alignas(16) DeferredNormSlot slot{};
  a.norm_in.slot = &slot;
  const std::vector<Choice> c = choice_candidates(a);
  EXPECT_EQ(c, (std::vector<Choice>{Choice::kGemvWarpS1, Choice::kGemvWarpS2, Choice::kGemvWarpS4,
                                    Choice::kGemvWarpDeep}));
  EXPECT_EQ(static_choice(a), Choice::kGemvWarp);
  EXPECT_EQ(make_problem_key(a).deferred, 2);
  GemmArgs p = problem(1, 3584, 18944);
  p.norm_out.slot = &slot;
  EXPECT_EQ(make_problem_key(p).deferred, 1);
  EXPECT_FALSE(make_problem_key(p) == make_problem_key(problem(1, 3584, 18944))) << "a separate kAuto choice";
  EXPECT_FALSE(choice_can_run(Choice::kCublasLt, 1, false, false, true));
  EXPECT_FALSE(choice_can_run(Choice::kGemvMma, 1, false, false, true));
  EXPECT_FALSE(choice_can_run(Choice::kGemvAsync, 1, false, false, true));
  EXPECT_TRUE(choice_can_run(Choice::kGemvWarpS4, 1, false, true, true));
  EXPECT_FALSE(choice_can_run(Choice::kGemvWarpS1, 2, false, false, true)) << "batch 1 only";
}

TEST(GemmChoice, EpiloguesAndProloguesLimitTheCandidates) {
  GemmArgs a = problem(1, 37888, 3584);
  uint16_t out = 0;
  a.swiglu_out = &out;
  const std::vector<Choice> sw = choice_candidates(a);
  EXPECT_TRUE(has(sw, Choice::kGemvWarpS1));
  EXPECT_TRUE(has(sw, Choice::kGemvWarpS2));
  EXPECT_TRUE(has(sw, Choice::kGemvWarpS4)) << "one warp streams a gate/up pair: 4 warps per pair run";
  EXPECT_FALSE(has(sw, Choice::kCublasLt));
  EXPECT_FALSE(has(sw, Choice::kGemvMma));
  EXPECT_TRUE(choice_can_run(Choice::kGemvWarpS4, 1, false, true));
  EXPECT_TRUE(choice_can_run(Choice::kGemvWarpS4, 1, true, false));  // the norm prologue takes 4
  EXPECT_FALSE(choice_can_run(Choice::kGemvWarpS4, kNormPrologueMaxM + 1, true, false));
  EXPECT_FALSE(choice_can_run(Choice::kCublasLt, 1, true, false));
}

TEST(GemmChoice, WarpSplitCounts) {
  EXPECT_EQ(choice_warp_splits(Choice::kGemvWarp), 0);
  EXPECT_EQ(choice_warp_splits(Choice::kGemvWarpS1), 1);
  EXPECT_EQ(choice_warp_splits(Choice::kGemvWarpS2), 2);
  EXPECT_EQ(choice_warp_splits(Choice::kGemvWarpS4), 4);
  EXPECT_EQ(choice_warp_splits(Choice::kCublasLt), -1);
  EXPECT_EQ(choice_warp_splits(Choice::kGemvMma), -1);
}

TEST(GemmChoice, NamesAreDistinct) {
  std::set<std::string> names;
  for (Choice c : {Choice::kCublasLt, Choice::kGemvWarp, Choice::kGemvWarpDeep, Choice::kGemvAsync, Choice::kGemvMma,
                   Choice::kGemvWarpS1, Choice::kGemvWarpS2, Choice::kGemvWarpS4, Choice::kGemvWarpDeepS2,
                   Choice::kGemvWarpDeepS4, Choice::kGemvBulkW8, Choice::kGemvBulkW16,
                   Choice::kGemvBulkW16S6})
    names.insert(choice_name(c));
  EXPECT_EQ(names.size(), 13u);
  EXPECT_TRUE(names.count("gemv-bulk-w16-6k"));
  EXPECT_TRUE(names.count("gemv-bulk-w16"));
  EXPECT_TRUE(names.count("gemv-warp-s4"));
}

// Each bulk choice runs its own layout of the one bulk kernel, every other
// choice none; DSRT_GEMM_KERNEL names them; launch_gemv_bulk refuses a layout
// it has no kernel for before touching the device.
TEST(GemmChoice, BulkChoicesAreLayouts) {
  struct Want {
    Choice c;
    int warps, slot_kib;
  };
  for (const Want& w : {Want{Choice::kGemvBulkW8, 8, 8}, Want{Choice::kGemvBulkW16, 16, 8},
                        Want{Choice::kGemvBulkW16S6, 16, 6}}) {
    EXPECT_TRUE(is_bulk_choice(w.c)) << choice_name(w.c);
    const GemvBulkConfig config = bulk_config(w.c);
    EXPECT_EQ(config.warps, w.warps) << choice_name(w.c);
    EXPECT_EQ(config.slot_kib, w.slot_kib) << choice_name(w.c);
    const ForcedKernels f = parse_forced_kernels(choice_name(w.c));
    EXPECT_TRUE(f.error.empty()) << f.error;
    EXPECT_TRUE(f.all_set && f.all == w.c) << choice_name(w.c);
  }
  for (Choice c : {Choice::kCublasLt, Choice::kGemvWarp, Choice::kGemvAsync, Choice::kGemvMma, Choice::kGemvWarpS4})
    EXPECT_FALSE(is_bulk_choice(c)) << choice_name(c);
  GemmArgs a = problem(1, 8, 64);
  a.x = a.w = reinterpret_cast<const void*>(uintptr_t{256});
  a.y = reinterpret_cast<void*>(uintptr_t{512});
  GemvBulkConfig ten;
  ten.warps = 10;
  const Status st = launch_gemv_bulk(a, ten, 132, nullptr);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("10 warps"), std::string::npos) << st.message();

  GemvBulkConfig big;
  big.slot_kib = 16;
  const Status st2 = launch_gemv_bulk(a, big, 132, nullptr);
  EXPECT_FALSE(st2.ok());
  EXPECT_NE(st2.message().find("16 KiB"), std::string::npos) << st2.message();
}

// kAuto's timing decoys: none for a weight of at least the L2 size or without
// an L2 figure (every launch reads the weight); for a smaller one (a device
// present), distinct zeroed copies in turn, at least twice the L2 size in all.
TEST(GemmChoice, TimingDecoysNotForLargeWeights) {
  GemmArgs a = problem(1, 4096, 4096);  // 32 MiB of bf16
  a.w = reinterpret_cast<const void*>(uintptr_t{1} << 30);
  for (size_t l2 : {size_t{0}, size_t{32} << 20, size_t{16} << 20}) {
    Result<TimingDecoys> d = TimingDecoys::make(a, l2, nullptr);
    ASSERT_TRUE(d.ok()) << d.status().message();
    EXPECT_FALSE(d->active()) << "l2 " << l2;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(d->next(), a.w) << "l2 " << l2;
  }
}

TEST(GemmChoice, TimingDecoysRotate) {
  GemmArgs a = problem(1, 4096, 4096);
  a.w = reinterpret_cast<const void*>(uintptr_t{1} << 30);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    (void)cudaGetLastError();
    GTEST_SKIP() << "no CUDA device: the decoys themselves are not allocated here";
  }
  const size_t l2 = size_t{50} << 20;
  Result<TimingDecoys> d = TimingDecoys::make(a, l2, nullptr);
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_TRUE(d->active());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::set<const void*> seen;
  const void* first = d->next();
  seen.insert(first);
  for (const void* p = d->next(); p != first; p = d->next()) {
    EXPECT_NE(p, a.w);
    seen.insert(p);
    ASSERT_LT(seen.size(), 65u);
  }
  EXPECT_GE(seen.size() * 4096 * 4096 * 2, 2 * l2);
  uint16_t probe[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  ASSERT_EQ(cudaMemcpy(probe, *seen.rbegin(), sizeof(probe), cudaMemcpyDeviceToHost), cudaSuccess);
  for (uint16_t v : probe) EXPECT_EQ(v, 0);
}

// The long-k rule (m <= 2, k >= 4n) applies only with PDL on an sm_90+ device; when it
// applies, it offers exactly the forced warp splits and (m = 1) the bulk GEMV.
TEST(GemmChoice, LongKRuleOffersOnlyWarpSplits) {
  EXPECT_TRUE(layer_rule_candidates(problem(1, 3584, 3584)).empty());  // k < 4n: never
  EXPECT_TRUE(layer_rule_candidates(problem(3, 3584, 18944)).empty());  // m > 2: never
  const std::vector<Choice> r = layer_rule_candidates(problem(1, 3584, 18944));
  if (r.empty()) GTEST_SKIP() << "PDL off here (no sm_90+ device or DSRT_PDL=0): the rule does not apply";
  std::vector<Choice> want = {Choice::kGemvWarpS1, Choice::kGemvWarpS2, Choice::kGemvWarpS4};
  if (gemv_bulk_candidates_on())
    want.insert(want.end(), {Choice::kGemvBulkW8, Choice::kGemvBulkW16, Choice::kGemvBulkW16S6});
  EXPECT_EQ(r, want);
}

// DSRT_GEMM_KERNEL's forms: one name for every problem, NxK=name entries per
// weight shape, both; anything else is an error (and forces nothing).
TEST(GemmChoice, ForcedKernelsParse) {
  ForcedKernels none = parse_forced_kernels(nullptr);
  EXPECT_FALSE(none.all_set);
  EXPECT_TRUE(none.by_shape.empty() && none.error.empty());
  EXPECT_TRUE(parse_forced_kernels("").error.empty());

  ForcedKernels all = parse_forced_kernels("gemv-warp-s4");
  EXPECT_TRUE(all.error.empty()) << all.error;
  EXPECT_TRUE(all.all_set);
  EXPECT_EQ(all.all, Choice::kGemvWarpS4);
  EXPECT_TRUE(all.by_shape.empty());

  ForcedKernels both = parse_forced_kernels("gemv-warp,3584x3584=gemv-async,4608x3584=cublaslt,");
  ASSERT_TRUE(both.error.empty()) << both.error;
  EXPECT_TRUE(both.all_set);
  EXPECT_EQ(both.all, Choice::kGemvWarp);
  ASSERT_EQ(both.by_shape.size(), 2u);
  EXPECT_EQ(both.by_shape[0].n, 3584);
  EXPECT_EQ(both.by_shape[0].k, 3584);
  EXPECT_EQ(both.by_shape[0].choice, Choice::kGemvAsync);
  EXPECT_EQ(both.by_shape[1].n, 4608);
  EXPECT_EQ(both.by_shape[1].choice, Choice::kCublasLt);

  // The deep kernel at forced splits: named, runnable at m = 1 only, never a kAuto candidate.
  ForcedKernels deep = parse_forced_kernels("3584x18944=gemv-warp-deep-s4,5120x27648=gemv-warp-deep-s2");
  ASSERT_TRUE(deep.error.empty()) << deep.error;
  ASSERT_EQ(deep.by_shape.size(), 2u);
  EXPECT_EQ(deep.by_shape[0].choice, Choice::kGemvWarpDeepS4);
  EXPECT_EQ(deep.by_shape[1].choice, Choice::kGemvWarpDeepS2);
  EXPECT_EQ(choice_warp_splits(Choice::kGemvWarpDeepS4), 4);
  EXPECT_EQ(choice_warp_splits(Choice::kGemvWarpDeepS2), 2);
  EXPECT_TRUE(choice_can_run(Choice::kGemvWarpDeepS4, 1, false));
  EXPECT_FALSE(choice_can_run(Choice::kGemvWarpDeepS4, 2, false));
  for (Choice c : choice_candidates(problem(1, 3584, 18944)))
    EXPECT_TRUE(c != Choice::kGemvWarpDeepS2 && c != Choice::kGemvWarpDeepS4) << choice_name(c);

  for (const char* bad : {"gemv-fast", "3584x3584=gemv-fast", "3584=gemv-warp", "x3584=gemv-warp", "3584x=gemv-warp",
                          "0x3584=gemv-warp", "35a4x3584=gemv-warp", "3584x3584x2=gemv-warp"}) {
    const ForcedKernels f = parse_forced_kernels(bad);
    EXPECT_FALSE(f.error.empty()) << bad;
    EXPECT_FALSE(f.all_set) << bad;
    EXPECT_TRUE(f.by_shape.empty()) << bad;
  }
}

}  // namespace
}  // namespace ds::cuda::detail
