// Pipelined device sampling of the CUDA executor (Executor::enqueue_step_sample,
// collect_samples, previous_sample_token): decode steps queued before the host
// knows their input tokens (the unpack kernel reads the ids the last sampling
// drew) give the same samples as the synchronous step_sample path fed with the
// ids explicitly, greedy and seeded-random, with CUDA graphs and eagerly, and
// misuse is an error. Needs the plans of tools/gpu/make_plans.sh.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "executor_harness.h"
#include "pipelined_schedule.h"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda::testing {
namespace {

constexpr const char* kModel = "qwen2-tiny-r1";

#define SKIP_WITHOUT_GPU_OR_PLANS()                                                                         \
  do {                                                                                                      \
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";                                       \
    if (!std::filesystem::exists(plan_path(kModel, "sm_90a")))                                              \
      FAIL() << "missing " << plan_path(kModel, "sm_90a") << ": run tools/gpu/make_plans.sh on the development " \
             << "machine";                                                                                  \
  } while (0)

class PipelinedSampling : public ::testing::TestWithParam<bool> {};

TEST_P(PipelinedSampling, QueuedStepsSampleWhatSynchronousStepsSample) {
  SKIP_WITHOUT_GPU_OR_PLANS();
  const bool graphs = GetParam();
  try {
    Fixture f = take(load_fixture(kModel, /*dummy=*/false), "load fixture");
    Side sync_side = take(make_gpu_side(f, graphs), "cuda executor");
    Side pipe_side = take(make_gpu_side(f, graphs), "cuda executor");
    ASSERT_TRUE(pipe_side.exec().pipelines_sampling());
    const int64_t V = sync_side.exec().vocab_size();
    const auto want = run_synchronous(sync_side, V);
    const auto got = run_pipelined(pipe_side, V);
    ASSERT_EQ(want.size(), static_cast<size_t>(kPipelinedDecodeSteps + 1));
    ASSERT_EQ(got.size(), want.size());
    int changed = 0;  // the decode inputs must actually move (not the same id every step)
    for (size_t step = 0; step < want.size(); ++step) {
      EXPECT_EQ(got[step], want[step]) << "step " << step << (graphs ? " (graphs)" : " (eager)");
      if (step > 0 && want[step] != want[step - 1]) ++changed;
    }
    EXPECT_GT(changed, 0);
  } catch (const std::exception&) {
  }
}

INSTANTIATE_TEST_SUITE_P(GraphsAndEager, PipelinedSampling, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "graphs" : "eager"; });

TEST(PipelinedSamplingErrors, MisuseIsAnError) {
  SKIP_WITHOUT_GPU_OR_PLANS();
  try {
    Fixture f = take(load_fixture(kModel, /*dummy=*/true), "load fixture");
    Side side = take(make_gpu_side(f, true), "cuda executor");
    Executor& e = side.exec();
    const int64_t V = e.vocab_size();
    auto expect_error = [](const Status& s, const char* needle) {
      EXPECT_FALSE(s.ok()) << needle;
      EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
    };
    std::vector<RowSample> out;
    std::vector<RowSampling> one(1);
    one[0].temperature = 0.0f;
    expect_error(e.collect_samples(&out), "nothing is queued");
    // No sampling ran yet: a previous_sample_token names nothing.
    StepBatch early = take(side.build({Part{0, {previous_sample_token(0)}, false}}), "build");
    expect_error(e.enqueue_step_sample(early, one), "previous_sample_token");
    std::vector<Part> first = {Part{0, {token_at(0, 0, V), token_at(0, 1, V)}, false}};
    StepBatch b = take(side.build(first), "build");
    expect_error(e.enqueue_step_sample(b, {}), "sampling rows");
    ASSERT_TRUE(e.enqueue_step_sample(b, one).ok());
    side.commit(first);
    // Row 1 does not exist in the last sampling (one row).
    StepBatch bad = take(side.build({Part{0, {previous_sample_token(1)}, false}}), "build");
    expect_error(e.enqueue_step_sample(bad, one), "previous_sample_token");
    std::vector<Part> next = {Part{0, {previous_sample_token(0)}, false}};
    StepBatch n1 = take(side.build(next), "build");
    ASSERT_TRUE(e.enqueue_step_sample(n1, one).ok());
    side.commit(next);
    StepBatch n2 = take(side.build(next), "build");
    expect_error(e.enqueue_step_sample(n2, one), "wait to be collected");
    expect_error(e.step_sample(n2, one, &out), "not collected");
    ASSERT_TRUE(e.collect_samples(&out).ok());
    ASSERT_EQ(out.size(), 1u);
    const int32_t first_id = out[0].id;
    ASSERT_TRUE(e.collect_samples(&out).ok());
    EXPECT_GE(first_id, 0);
    EXPECT_LT(first_id, V);
    expect_error(e.collect_samples(&out), "nothing is queued");
    // With nothing queued, the synchronous path works again and may also take the device's ids.
    ASSERT_TRUE(e.step_sample(n2, one, &out).ok());
  } catch (const std::exception&) {
  }
}

TEST(PipelinedSamplingErrors, OffWhenDisabled) {
  SKIP_WITHOUT_GPU_OR_PLANS();
  try {
    Fixture f = take(load_fixture(kModel, /*dummy=*/true), "load fixture");
    Side side = take(make_gpu_side(f, false, kMaxSeqs, [](CudaExecutorOptions& o) { o.pipelined_sampling = false; }),
                     "cuda executor");
    EXPECT_FALSE(side.exec().pipelines_sampling());
    StepBatch b = take(side.build({Part{0, {1, 2, 3}, false}}), "build");
    std::vector<RowSampling> one(1);
    const Status s = side.exec().enqueue_step_sample(b, one);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("step_sample"), std::string::npos) << s.message();
  } catch (const std::exception&) {
  }
}

}  // namespace
}  // namespace ds::cuda::testing
