// Decode fusions of the sm_90a plans in the CUDA executor (dscc
// ds-fuse-residual-add, ds-gemv-prologue, ds-gemv-epilogue): the plan carries
// them, and an executor that computes the RMSNorm inside the GEMV (batch 1 and
// 2; opt-in; or only in gate_up's, with its SwiGLU epilogue), defers it to the
// GEMVs around it (batch 1; opt-in) or SiLU*mul in the gate_up GEMV's epilogue
// (batch 1; default)
// agrees with one that launches those groups and with the CPU f32 executor,
// eager and in graphs, over a prefill and decode steps at batch 1, 2, 3 and 5
// (the groups run at the larger batches). Needs the plans of tools/gpu/make_plans.sh.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>

#include "executor_harness.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/plan/plan_attrs.h"

namespace ds::cuda::testing {
namespace {

constexpr const char* kModel = "qwen2-tiny-r1";

// Counts of linears with a fused residual / an RMSNorm prologue, and of all_reduces with a residual.
struct FusionCounts {
  int linears = 0, residual_linears = 0, prologue_linears = 0, swiglu_linears = 0;
};

FusionCounts count_fusions(const LoadedPlan& plan) {
  FusionCounts c;
  const plan::Plan& p = plan.plan();
  for (const plan::Instr* ins : *p.program()) {
    const plan::Kernel* k = p.kernels()->Get(ins->kernel());
    if (k->kind() != plan::KernelKind::builtin || !k->op() || k->op()->str() != "linear") continue;
    ++c.linears;
    c.residual_linears += find_attr(k->attrs(), "residual") != nullptr;
    c.prologue_linears += find_attr(k->attrs(), "prologue") != nullptr;
    c.swiglu_linears += find_attr(k->attrs(), "epilogue") != nullptr;
  }
  return c;
}

TEST(CudaExecutorFusion, PlanHasResidualAndPrologueLinears) {
  // The plans exist on the GPU machine (tools/gpu/make_plans.sh, carried in .deps).
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver (the plans travel with the GPU runs)";
  const std::string path = plan_path(kModel, "sm_90a");
  if (!std::filesystem::exists(path)) FAIL() << "missing " << path << ": run tools/gpu/make_plans.sh";
  auto plan = LoadedPlan::from_file(path);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  const FusionCounts c = count_fusions(**plan);
  const int layers = (*plan)->plan().model()->num_layers();
  std::cout << "[fusion] " << c.linears << " linears, " << c.residual_linears << " with a residual, "
            << c.prologue_linears << " with an RMSNorm prologue, " << c.swiglu_linears << " with a SwiGLU epilogue ("
            << layers << " layers)\n";
  // o_proj and down_proj of every layer but the first o_proj (its residual is the bf16 embedding);
  // qkv and gate_up of every layer but the first gate_up (its norm group also adds).
  EXPECT_EQ(c.residual_linears, 2 * layers - 1);
  EXPECT_EQ(c.prologue_linears, 2 * layers - 1);
  EXPECT_EQ(c.swiglu_linears, layers);  // every gate_up
}

// Runs the schedule on the CPU, on a GPU executor with `on` and one with `off`
// (option tweaks), eager and with graphs; every step's logits must agree.
void compare_fusion(const char* what, const std::function<void(CudaExecutorOptions&)>& on,
                    const std::function<void(CudaExecutorOptions&)>& off) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";
  if (!std::filesystem::exists(plan_path(kModel, "sm_90a")) || !std::filesystem::exists(plan_path(kModel, "cpu")))
    FAIL() << "missing " << plan_path(kModel, "sm_90a") << ": run tools/gpu/make_plans.sh";
  Fixture f = take(load_fixture(kModel, /*dummy=*/false), "fixture");
  for (bool graphs : {false, true}) {
    Side cpu = take(make_cpu_side(f), "cpu side");
    Side fused = take(make_gpu_side(f, graphs, kMaxSeqs, on), "fused side");
    Side plain = take(make_gpu_side(f, graphs, kMaxSeqs, off), "unfused side");
    const int64_t V = fused.exec().vocab_size();
    std::map<int, int64_t> len;
    auto part = [&](int seq, int64_t n) {
      Part p{seq, {}, false};
      for (int64_t i = 0; i < n; ++i) p.tokens.push_back(token_at(seq, len[seq] + i, V));
      len[seq] += n;
      return p;
    };
    std::vector<std::vector<Part>> steps;
    steps.push_back({part(0, 11), part(1, 6), part(2, 17), part(3, 3), part(4, 8)});
    for (int batch : {1, 2, 3, 5})
      for (int i = 0; i < 4; ++i) {
        std::vector<Part> step;
        for (int s = 0; s < batch; ++s) step.push_back(part(s, 1));
        steps.push_back(step);
      }
    double worst_pair = 0, worst_cpu = 0;
    for (size_t s = 0; s < steps.size(); ++s) {
      std::vector<float> lf, lp, lc;
      ASSERT_TRUE(cpu.run(steps[s], &lc).ok()) << "cpu step " << s;
      const Status sf = fused.run(steps[s], &lf);
      ASSERT_TRUE(sf.ok()) << "fused step " << s << ": " << sf.message();
      const Status sp = plain.run(steps[s], &lp);
      ASSERT_TRUE(sp.ok()) << "unfused step " << s << ": " << sp.message();
      const LogitsDiff dp = compare_logits(lp, lf, V), dc = compare_logits(lc, lf, V);
      const double rp = dp.ref_scale > 0 ? dp.max_abs / dp.ref_scale : 0;
      const double rc = dc.ref_scale > 0 ? dc.max_abs / dc.ref_scale : 0;
      worst_pair = std::max(worst_pair, rp), worst_cpu = std::max(worst_cpu, rc);
      const std::string ctx = StrCat() << what << ", " << (graphs ? "graphs" : "eager") << ", step " << s
                                       << " (batch " << steps[s].size() << ")";
      EXPECT_LE(rp, kRelTol) << ctx << ", fused vs unfused: " << dp.describe();
      EXPECT_EQ(dp.argmax_mismatch, 0) << ctx << ", fused vs unfused: " << dp.describe();
      EXPECT_LE(rc, kRelTol) << ctx << ", fused vs CPU f32: " << dc.describe();
      EXPECT_EQ(dc.argmax_mismatch, 0) << ctx << ", fused vs CPU f32: " << dc.describe();
    }
    std::cout << "[fusion] " << what << ", " << (graphs ? "graphs" : "eager") << ": fused vs unfused worst rel "
              << worst_pair << ", vs CPU f32 worst rel " << worst_cpu << "\n";
  }
}

TEST(CudaExecutorFusion, GemvPrologueAgreesWithTheNormGroups) {
  compare_fusion("RMSNorm prologue", [](CudaExecutorOptions& o) { o.gemv_prologue = true; },
                 [](CudaExecutorOptions& o) { o.gemv_prologue = false, o.gemv_prologue_swiglu = false; });
}

TEST(CudaExecutorFusion, SwigluEpilogueAgreesWithTheSiluMulGroups) {
  compare_fusion("SwiGLU epilogue", [](CudaExecutorOptions& o) { o.gemv_swiglu = true; },
                 [](CudaExecutorOptions& o) { o.gemv_swiglu = false; });
}

TEST(CudaExecutorFusion, DeferredNormAgreesWithTheNormGroups) {
  compare_fusion("deferred RMSNorm", [](CudaExecutorOptions& o) { o.deferred_norm = true, o.gemv_prologue_swiglu = false; },
                 [](CudaExecutorOptions& o) { o.deferred_norm = false, o.gemv_prologue_swiglu = false; });
  compare_fusion("deferred RMSNorm + SwiGLU epilogue",
                 [](CudaExecutorOptions& o) { o.deferred_norm = true, o.gemv_swiglu = true, o.gemv_prologue_swiglu = false; },
                 [](CudaExecutorOptions& o) { o.deferred_norm = false, o.gemv_swiglu = false; });
}

// The deferred norm removes the norm groups between a residual linear and the
// next marked linear at batch 1: before gate_up (after o_proj) and before q/k/v
// (after the previous layer's down_proj) in every layer but the first (there
// the q/k/v norm reads the embedding and the gate_up norm also adds, see
// PlanHasResidualAndPrologueLinears). At batch 2 every group runs.
TEST(CudaExecutorFusion, DeferredNormSkipsTheNormGroupsAtBatchOne) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";
  if (!std::filesystem::exists(plan_path(kModel, "sm_90a"))) FAIL() << "missing " << plan_path(kModel, "sm_90a");
  Fixture f = take(load_fixture(kModel, /*dummy=*/false), "fixture");
  const int64_t layers = f.gpu_plan->plan().model()->num_layers();
  auto launches = [&](bool deferred, int64_t batch) {
    Side side = take(make_gpu_side(f, /*graphs=*/false, kMaxSeqs, [&](CudaExecutorOptions& o) {
                       o.deferred_norm = deferred;
                       o.gemv_prologue_swiglu = false;  // it takes gate_up's norm first
                     }),
                     "gpu side");
    return static_cast<CudaExecutor&>(side.exec()).decode_launches(batch);
  };
  const int64_t off1 = launches(false, 1), on1 = launches(true, 1), off2 = launches(false, 2), on2 = launches(true, 2);
  std::cout << "[fusion] decode launches per step, deferred norm off/on: batch 1 " << off1 << "/" << on1
            << ", batch 2 " << off2 << "/" << on2 << " (" << layers << " layers)\n";
  EXPECT_EQ(off1 - on1, 2 * layers - 2);
  EXPECT_EQ(on2, off2);
}

// DSRT_GEMV_PROLOGUE=swiglu: the RMSNorm prologue only on gate_up, together
// with its SwiGLU epilogue, at batch 1 (the bulk GEMV, sm_90+): one launch
// fewer per layer but the first (its gate_up norm also adds); none at batch 2.
TEST(CudaExecutorFusion, PrologueWithSwigluAgreesWithTheGroups) {
  compare_fusion("prologue with the SwiGLU epilogue",
                 [](CudaExecutorOptions& o) { o.gemv_prologue_swiglu = true, o.gemv_swiglu = true; },
                 [](CudaExecutorOptions& o) { o.gemv_prologue_swiglu = false, o.gemv_swiglu = false; });
  if (device_count() == 0 || !std::filesystem::exists(plan_path(kModel, "sm_90a"))) return;
  int major = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0), cudaSuccess);
  if (major < 9) GTEST_SKIP() << "the pair runs on the bulk GEMV (sm_90+) only";
  Fixture f = take(load_fixture(kModel, /*dummy=*/false), "fixture");
  const int64_t layers = f.gpu_plan->plan().model()->num_layers();
  auto launches = [&](bool on, int64_t batch) {
    Side side = take(make_gpu_side(f, /*graphs=*/false, kMaxSeqs, [&](CudaExecutorOptions& o) {
                       o.gemv_prologue_swiglu = on;
                     }),
                     "gpu side");
    return static_cast<CudaExecutor&>(side.exec()).decode_launches(batch);
  };
  const int64_t off1 = launches(false, 1), on1 = launches(true, 1), off2 = launches(false, 2), on2 = launches(true, 2);
  std::cout << "[fusion] decode launches per step, prologue with SwiGLU off/on: batch 1 " << off1 << "/" << on1
            << ", batch 2 " << off2 << "/" << on2 << " (" << layers << " layers)\n";
  EXPECT_EQ(off1 - on1, layers - 1);
  EXPECT_EQ(on2, off2);
}

TEST(CudaExecutorFusion, BothGemvFusionsTogether) {
  compare_fusion("prologue + SwiGLU epilogue",
                 [](CudaExecutorOptions& o) { o.gemv_prologue = true, o.gemv_swiglu = true; },
                 [](CudaExecutorOptions& o) { o.gemv_prologue = false, o.gemv_swiglu = false; });
}

}  // namespace
}  // namespace ds::cuda::testing
