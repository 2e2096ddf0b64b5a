// Tensor parallelism on GPUs (CudaTpExecutor, one process, NCCL). Needs the
// plans of tools/gpu/make_plans.sh: .deps/plans/<fixture>.sm_90a[.tpN].dsplan and
// <fixture>.cpu.dsplan; each case skips when fewer GPUs than ranks are visible.
//   (a) TP 2 / TP 4 vs the TP 1 CUDA run and vs the f32 CPU run, checkpoint
//       weights, over prefill, chunked prefill, a mixed batch and decode steps
//       (graphs on, 3 sequences padded to 4): logits within bf16 tolerance,
//       no clear-margin argmax flips; custom all-reduce forced, NCCL only, or measured.
//   (b) TP 2 decode graph replay == eager, bit for bit (custom all-reduce, NCCL only, and the
//       start-up measured choice, which both executors of the process must share).
//   (c) TP 2 step_sample greedy == argmax of the TP 2 logits.
//   (d) setup errors: a TP plan with a single-rank executor, too few GPUs.
//   (e) pipelined sampling on the ranks (pipelined_with_comm): queued steps whose
//       tokens are previous_sample_token sample what synchronous steps sample,
//       greedy and seeded, graphs and eager; TP 1 (one rank with a one-rank NCCL
//       communicator: runs on one GPU), TP 2 and TP 4. Off: not offered.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "executor_harness.h"
#include "pipelined_schedule.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/executor/cuda/cuda_tp_executor.h"

namespace ds::cuda::testing {
namespace {

std::string tp_plan_path(const std::string& model, int tp) {
  return tp == 1 ? plan_path(model, "sm_90a") : plan_path(model, "sm_90a.tp" + std::to_string(tp));
}

#define SKIP_WITHOUT_GPUS(n)                                                                          \
  do {                                                                                                \
    if (device_count() < (n)) GTEST_SKIP() << "needs " << (n) << " GPUs, " << device_count() << " visible"; \
  } while (0)

#define REQUIRE_PLAN(path)                                                                             \
  do {                                                                                                 \
    if (!std::filesystem::exists(path)) FAIL() << "missing " << (path) << ": run tools/gpu/make_plans.sh"; \
  } while (0)

using Backend = CudaTpOptions::AllReduceBackend;

const char* backend_name(Backend b) {
  return b == Backend::kCustom ? "custom all-reduce" : b == Backend::kNccl ? "NCCL only" : "measured choice";
}

CudaTpOptions tp_options(const std::string& model, bool graphs, Backend backend = Backend::kCustom,
                         bool pipelined = false) {
  CudaTpOptions o;
  o.exec.token_capacity = kCapacity;
  o.exec.max_seqs = kMaxSeqs;
  o.exec.max_model_len = kMaxModelLen;
  o.exec.enable_cuda_graph = graphs;
  o.exec.cuda_graph_max_bs = kMaxSeqs;
  o.exec.dist_timeout = std::chrono::seconds(30);
  o.weights.format = LoadFormat::kSafetensors;
  o.weights.model_path = std::string(DS_SOURCE_ROOT) + "/tests/fixtures/" + model;
  o.all_reduce = backend;
  o.exec.pipelined_with_comm = pipelined;
  return o;
}

Result<Side> make_tp_side(const LoadedPlan& plan, const std::string& model, bool graphs,
                          Backend backend = Backend::kCustom, bool pipelined = false) {
  DS_ASSIGN_OR_RETURN(KvCacheConfig c, KvCacheConfig::from_plan(*plan.plan().kv_cache(), kNumPages));
  c.host_storage = false;
  DS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> kv, KvCache::create(c));
  DS_ASSIGN_OR_RETURN(auto e, CudaTpExecutor::create(plan, *kv, tp_options(model, graphs, backend, pipelined)));
  std::cout << "[tp] " << model << " tp" << plan.plan().tp_size() << (graphs ? " graphs" : " eager")
            << ": custom all-reduce " << (e->uses_custom_all_reduce() ? "on" : "off") << "\n";
  return Side(std::move(kv), std::move(e));
}

std::vector<int32_t> tokens_for(int seq, int64_t from, int64_t n, int64_t vocab) {
  std::vector<int32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(token_at(seq, from + i, vocab));
  return t;
}

// The schedule of (a): per step, the parts; decode steps append one token to seqs 0..2.
// Prefill steps, then 24 decode steps of `decode_seqs` (1, 3 or 4) sequences (batch 1:
// the decode graphs of one row, whose all-reduces take the custom kernel's LL protocol).
std::vector<std::vector<Part>> schedule(int64_t vocab, int decode_seqs = 3) {
  std::vector<std::vector<Part>> steps;
  steps.push_back({Part{0, tokens_for(0, 0, 37, vocab), true}, Part{1, tokens_for(1, 0, 5, vocab), false}});
  steps.push_back({Part{2, tokens_for(2, 0, 100, vocab), false}, Part{0, tokens_for(0, 37, 1, vocab), false}});
  std::vector<int64_t> len = {38, 5, 100};
  if (decode_seqs == 4) {
    steps.push_back({Part{3, tokens_for(3, 0, 21, vocab), false}});
    len.push_back(21);
  }
  for (int d = 0; d < 24; ++d) {
    std::vector<Part> step;
    for (int s = 0; s < decode_seqs; ++s) step.push_back(Part{s, tokens_for(s, len[s]++, 1, vocab), false});
    steps.push_back(step);
  }
  return steps;
}

struct Case {
  std::string model;
  int tp;
  Backend backend = Backend::kCustom;  // small all_reduces through CustomAllReduce (when peer access allows)
  int decode_seqs = 3;
};

class TpVsSingle : public ::testing::TestWithParam<Case> {};

// (a)
TEST_P(TpVsSingle, LogitsMatchTp1AndCpu) {
  const Case c = GetParam();
  SKIP_WITHOUT_GPUS(c.tp);
  REQUIRE_PLAN(tp_plan_path(c.model, c.tp));
  REQUIRE_PLAN(plan_path(c.model, "cpu"));
  Fixture f = take(load_fixture(c.model, /*dummy=*/false), "load fixture");
  auto tp_plan = take(LoadedPlan::from_file(tp_plan_path(c.model, c.tp)), "load tp plan");
  ASSERT_EQ(tp_plan->plan().tp_size(), c.tp);
  Side cpu = take(make_cpu_side(f), "cpu side");
  Side one = take(make_gpu_side(f, /*graphs=*/true), "tp1 side");
  Side tp = take(make_tp_side(*tp_plan, c.model, /*graphs=*/true, c.backend), "tp side");
  const int64_t vocab = one.exec().vocab_size();
  ASSERT_EQ(tp.exec().vocab_size(), vocab);
  double worst_one = 0, worst_cpu = 0;
  int step = 0;
  for (const auto& parts : schedule(vocab, c.decode_seqs)) {
    std::vector<float> lc, l1, lt;
    ASSERT_TRUE(cpu.run(parts, &lc).ok());
    Status s1 = one.run(parts, &l1);
    ASSERT_TRUE(s1.ok()) << s1.message();
    Status st = tp.run(parts, &lt);
    ASSERT_TRUE(st.ok()) << "step " << step << ": " << st.message();
    const LogitsDiff d1 = compare_logits(l1, lt, vocab), dc = compare_logits(lc, lt, vocab);
    const double r1 = d1.ref_scale > 0 ? d1.max_abs / d1.ref_scale : 0, rc = dc.ref_scale > 0 ? dc.max_abs / dc.ref_scale : 0;
    worst_one = std::max(worst_one, r1), worst_cpu = std::max(worst_cpu, rc);
    EXPECT_LE(r1, kRelTol) << c.model << " tp" << c.tp << " step " << step << " vs TP 1: " << d1.describe();
    EXPECT_LE(rc, kRelTol) << c.model << " tp" << c.tp << " step " << step << " vs CPU f32: " << dc.describe();
    EXPECT_EQ(dc.argmax_mismatch, 0) << c.model << " tp" << c.tp << " step " << step << " vs CPU: " << dc.describe();
    ++step;
  }
  std::cout << "[tp] " << c.model << " tp" << c.tp << " (" << backend_name(c.backend) << ")" << ": " << step << " steps, worst rel err vs TP 1 " << worst_one
            << ", vs CPU f32 " << worst_cpu << "\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TpVsSingle,
                         ::testing::Values(Case{"qwen2-tiny-tied", 2}, Case{"qwen2-tiny-r1", 2},
                                           Case{"qwen2-tiny-yarn", 2}, Case{"qwen2-tiny-tied", 4},
                                           Case{"qwen2-tiny-r1", 4}, Case{"qwen2-tiny-yarn", 4},
                                           Case{"qwen2-tiny-tied", 2, Backend::kNccl},
                                           Case{"qwen2-tiny-r1", 4, Backend::kNccl},
                                           Case{"qwen2-tiny-yarn", 2, Backend::kMeasured},
                                           Case{"qwen2-tiny-r1", 2, Backend::kCustom, 1},
                                           Case{"qwen2-tiny-tied", 4, Backend::kCustom, 1}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           std::string n = i.param.model + "_tp" + std::to_string(i.param.tp) +
                                           (i.param.backend == Backend::kNccl       ? "_nccl_only"
                                            : i.param.backend == Backend::kMeasured ? "_measured"
                                                                                    : "") +
                                           (i.param.decode_seqs == 1 ? "_batch1" : "");
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

// (b)
TEST(TpGraphs, DecodeReplayEqualsEagerBitForBit) {
  SKIP_WITHOUT_GPUS(2);
  const std::string model = "qwen2-tiny-r1";
  REQUIRE_PLAN(tp_plan_path(model, 2));
  auto plan = take(LoadedPlan::from_file(tp_plan_path(model, 2)), "load tp plan");
  // kMeasured: the two executors must make the same (process-wide) choice, or their bits differ.
  // Batch 1 (one decode sequence) with the custom kernel: the graph of one row.
  struct Run {
    Backend backend;
    int decode_seqs;
  };
  for (const Run run : {Run{Backend::kCustom, 4}, Run{Backend::kNccl, 4}, Run{Backend::kMeasured, 4},
                        Run{Backend::kCustom, 1}}) {
    const Backend backend = run.backend;
    Side graph = take(make_tp_side(*plan, model, true, backend), "graph side");
    Side eager = take(make_tp_side(*plan, model, false, backend), "eager side");
    EXPECT_EQ(dynamic_cast<CudaTpExecutor&>(graph.exec()).uses_custom_all_reduce(),
              dynamic_cast<CudaTpExecutor&>(eager.exec()).uses_custom_all_reduce())
        << backend_name(backend);
    const int64_t vocab = graph.exec().vocab_size();
    int64_t differing = 0, steps = 0;
    // Four decode sequences: a captured batch size, so the graph runs the same
    // GEMM shapes (m = 4) as the eager executor. With three, the graph runs the
    // padded m = 4 and eager m = 3, whose GEMV kernels (and so roundings) may differ.
    for (const auto& parts : schedule(vocab, run.decode_seqs)) {
      std::vector<float> lg, le;
      ASSERT_TRUE(graph.run(parts, &lg).ok());
      ASSERT_TRUE(eager.run(parts, &le).ok());
      ASSERT_EQ(lg.size(), le.size());
      int64_t diff = 0;
      for (size_t i = 0; i < lg.size(); ++i) diff += lg[i] != le[i];
      if (diff) {
        const LogitsDiff d = compare_logits(le, lg, vocab);
        ADD_FAILURE() << backend_name(backend) << ", step " << steps << ": " << diff
                      << " logits differ between graph and eager: " << d.describe();
      }
      differing += diff;
      ++steps;
    }
    std::cout << "[tp] graph vs eager at TP 2 (" << backend_name(backend) << ", " << run.decode_seqs
              << " decode sequence(s)): " << steps
              << " steps, " << differing << " differing logits\n";
  }
}

// (c)
TEST(TpSampling, GreedyEqualsArgmaxOfLogits) {
  SKIP_WITHOUT_GPUS(2);
  const std::string model = "qwen2-tiny-tied";
  REQUIRE_PLAN(tp_plan_path(model, 2));
  auto plan = take(LoadedPlan::from_file(tp_plan_path(model, 2)), "load tp plan");
  Side a = take(make_tp_side(*plan, model, true), "logits side");
  Side b = take(make_tp_side(*plan, model, true), "sampling side");
  const int64_t vocab = a.exec().vocab_size();
  int64_t rows_checked = 0;
  for (const auto& parts : schedule(vocab)) {
    std::vector<float> la;
    ASSERT_TRUE(a.run(parts, &la).ok());
    StepBatch batch = take(b.build(parts), "build");
    std::vector<RowSampling> rows(static_cast<size_t>(batch.num_logit_rows()));
    for (RowSampling& r : rows) r.temperature = 0.0f;
    std::vector<RowSample> out;
    Status s = b.exec().step_sample(batch, rows, &out);
    ASSERT_TRUE(s.ok()) << s.message();
    b.commit(parts);
    ASSERT_EQ(out.size(), rows.size());
    for (size_t r = 0; r < out.size(); ++r) {
      const float* row = la.data() + r * vocab;
      int64_t best = 0;
      for (int64_t v = 1; v < vocab; ++v)
        if (row[v] > row[best]) best = v;
      EXPECT_EQ(out[r].id, best) << "row " << r;
      ++rows_checked;
    }
  }
  std::cout << "[tp] greedy == argmax on " << rows_checked << " rows\n";
}

// (e)
struct PipeCase {
  int tp;
  bool graphs;
};

void PrintTo(const PipeCase& c, std::ostream* os) { *os << "TP " << c.tp << (c.graphs ? ", graphs" : ", eager"); }

class TpPipelined : public ::testing::TestWithParam<PipeCase> {};

TEST_P(TpPipelined, QueuedStepsSampleWhatSynchronousStepsSample) {
  const PipeCase c = GetParam();
  SKIP_WITHOUT_GPUS(c.tp);
  if (std::getenv("DSRT_TP_PIPELINED_SAMPLING")) GTEST_SKIP() << "DSRT_TP_PIPELINED_SAMPLING overrides the options";
  const std::string model = "qwen2-tiny-r1";
  REQUIRE_PLAN(tp_plan_path(model, c.tp));
  auto plan = take(LoadedPlan::from_file(tp_plan_path(model, c.tp)), "load plan");
  // Reference: only rank 0 samples. Then every rank sampling, synchronously
  // (step_sample checks that the ranks agree) and pipelined.
  Side ref = take(make_tp_side(*plan, model, c.graphs, Backend::kNccl, false), "rank-0 sampling side");
  Side all = take(make_tp_side(*plan, model, c.graphs, Backend::kNccl, true), "every-rank sampling side");
  Side pipe = take(make_tp_side(*plan, model, c.graphs, Backend::kNccl, true), "pipelined side");
  EXPECT_FALSE(ref.exec().pipelines_sampling());
  ASSERT_TRUE(pipe.exec().pipelines_sampling());
  std::vector<RowSampling> one(1);
  const Status off = ref.exec().enqueue_step_sample(take(ref.build({Part{0, {1, 2}, false}}), "build"), one);
  EXPECT_NE(off.message().find("pipelined_with_comm"), std::string::npos) << off.message();
  const int64_t vocab = ref.exec().vocab_size();
  const auto want = run_synchronous(ref, vocab);
  const auto every = run_synchronous(all, vocab);
  const auto got = run_pipelined(pipe, vocab);
  ASSERT_EQ(want.size(), static_cast<size_t>(kPipelinedDecodeSteps + 1));
  ASSERT_EQ(every.size(), want.size());
  ASSERT_EQ(got.size(), want.size());
  int changed = 0;  // the decode inputs must actually move
  for (size_t step = 0; step < want.size(); ++step) {
    EXPECT_EQ(every[step], want[step]) << "every rank sampling, step " << step;
    EXPECT_EQ(got[step], want[step]) << "pipelined, step " << step;
    if (step > 0 && want[step] != want[step - 1]) ++changed;
  }
  EXPECT_GT(changed, 0);
  EXPECT_FALSE(pipe.exec().broken());
  std::cout << "[tp] pipelined sampling at TP " << c.tp << (c.graphs ? " (graphs)" : " (eager)") << ": "
            << want.size() << " steps equal to rank-0 sampling\n";
}

INSTANTIATE_TEST_SUITE_P(Degrees, TpPipelined,
                         ::testing::Values(PipeCase{1, true}, PipeCase{1, false}, PipeCase{2, true},
                                           PipeCase{2, false}, PipeCase{4, true}),
                         [](const ::testing::TestParamInfo<PipeCase>& i) {
                           return "tp" + std::to_string(i.param.tp) + (i.param.graphs ? "_graphs" : "_eager");
                         });

// (d)
TEST(TpSetup, SingleRankExecutorRejectsShardedPlan) {
  SKIP_WITHOUT_GPUS(1);
  const std::string model = "qwen2-tiny-tied";
  REQUIRE_PLAN(tp_plan_path(model, 2));
  auto plan = take(LoadedPlan::from_file(tp_plan_path(model, 2)), "load tp plan");
  auto host = take(load_host_weights(*plan, model, false), "rank 0 weights");
  UploadedWeights w = take(upload_weights(*host), "upload");
  KvCacheConfig c = take(KvCacheConfig::from_plan(*plan->plan().kv_cache(), kNumPages), "kv config");
  c.host_storage = false;
  auto kv = take(KvCache::create(c), "kv");
  CudaExecutorOptions o;
  o.token_capacity = kCapacity, o.max_seqs = kMaxSeqs, o.max_model_len = kMaxModelLen;
  auto e = CudaExecutor::create(*plan, w.tensors, *kv, o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("no communicator"), std::string::npos) << e.status().message();
}

TEST(TpSetup, TooFewGpusIsAClearError) {
  SKIP_WITHOUT_GPUS(1);
  const std::string model = "qwen2-tiny-tied";
  REQUIRE_PLAN(tp_plan_path(model, 2));
  auto plan = take(LoadedPlan::from_file(tp_plan_path(model, 2)), "load tp plan");
  KvCacheConfig c = take(KvCacheConfig::from_plan(*plan->plan().kv_cache(), kNumPages), "kv config");
  c.host_storage = false;
  auto kv = take(KvCache::create(c), "kv");
  CudaTpOptions o = tp_options(model, false);
  o.base_gpu_id = device_count() - 1;  // ranks on the last GPU and one past it
  auto e = CudaTpExecutor::create(*plan, *kv, o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("CUDA device(s) are visible"), std::string::npos) << e.status().message();
}

}  // namespace
}  // namespace ds::cuda::testing
