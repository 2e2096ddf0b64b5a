// Programmatic dependent launch in the CUDA executor (runtime/cuda/pdl.h): the
// decode graphs captured with PDL (the default on sm_90+) give bit-identical
// logits to an eager executor that runs without PDL, over a prefill and decode
// steps at batch 4 and batch 1. Needs the plans of tools/gpu/make_plans.sh.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>

#include "executor_harness.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.h"

namespace ds::cuda::testing {
namespace {

TEST(CudaExecutorPdl, GraphsWithPdlEqualEagerWithoutBitExact) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";
  const char* model = "qwen2-tiny-tied";
  if (!std::filesystem::exists(plan_path(model, "sm_90a")) || !std::filesystem::exists(plan_path(model, "cpu")))
    FAIL() << "missing " << plan_path(model, "sm_90a") << ": run tools/gpu/make_plans.sh on the development machine";
  std::cout << "PDL in the graph executor: " << (pdl_supported(0) ? "on" : "off (sm < 90 or DSRT_PDL=0)") << "\n";
  auto fixture = load_fixture(model, /*dummy=*/false);
  ASSERT_TRUE(fixture.ok()) << fixture.status().message();
  auto graph = make_gpu_side(*fixture, /*graphs=*/true);  // captured with the default (PDL on)
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  auto eager = [&] {
    PdlScope off(false);
    return make_gpu_side(*fixture, /*graphs=*/false);
  }();
  ASSERT_TRUE(eager.ok()) << eager.status().message();
  const int64_t V = graph->exec().vocab_size();
  std::map<int, int64_t> len;
  auto part = [&](int seq, int64_t n) {
    Part p{seq, {}, false};
    for (int64_t i = 0; i < n; ++i) p.tokens.push_back(token_at(seq, len[seq] + i, V));
    len[seq] += n;
    return p;
  };
  std::vector<std::vector<Part>> steps;
  steps.push_back({part(0, 9), part(1, 5), part(2, 14), part(3, 2)});
  for (int i = 0; i < 6; ++i) steps.push_back({part(0, 1), part(1, 1), part(2, 1), part(3, 1)});
  for (int i = 0; i < 6; ++i) steps.push_back({part(0, 1)});
  for (size_t s = 0; s < steps.size(); ++s) {
    std::vector<float> a, b;
    ASSERT_TRUE(graph->run(steps[s], &a).ok()) << "graph step " << s;
    const Status st = [&] {
      PdlScope off(false);
      return eager->run(steps[s], &b);
    }();
    ASSERT_TRUE(st.ok()) << "eager step " << s << ": " << st.message();
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
        << "step " << s << ": graph with PDL vs eager without differ: " << compare_logits(b, a, V).describe();
  }
}

}  // namespace
}  // namespace ds::cuda::testing
