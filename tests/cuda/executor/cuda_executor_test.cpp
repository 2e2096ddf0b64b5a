// CudaExecutor tests. GPU tests GTEST_SKIP without a device; they need the
// plans of tools/gpu/make_plans.sh (.deps/plans/<fixture>.{cpu,sm_90a}.dsplan)
// and fail with a clear message when those are missing on a GPU machine.
//   (a) CudaExecutor vs CpuExecutor, same weights (dummy and checkpoint), over
//       prefill, chunked prefill, mixed batches and many decode steps (graphs on,
//       3 sequences padded to the captured size 4): logits within bf16 tolerance.
//   (b) decode graph replay == eager, bit for bit, for a captured batch size.
//   (c) step_sample greedy == argmax of step's logits.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <iostream>

#include "executor_harness.h"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda::testing {
namespace {

#define SKIP_WITHOUT_GPU()                                            \
  do {                                                                \
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver"; \
  } while (0)

bool have_plans(const std::string& model) {
  return std::filesystem::exists(plan_path(model, "cpu")) && std::filesystem::exists(plan_path(model, "sm_90a"));
}

#define REQUIRE_PLANS(model)                                                                        \
  do {                                                                                              \
    if (!have_plans(model)) FAIL() << "missing " << plan_path(model, "sm_90a") << " / cpu plan: run " \
                                   << "tools/gpu/make_plans.sh on the development machine";         \
  } while (0)

std::vector<int32_t> tokens_for(int seq, int64_t from, int64_t n, int64_t vocab) {
  std::vector<int32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(token_at(seq, from + i, vocab));
  return t;
}

// ---- no GPU needed ----------------------------------------------------------

TEST(KvCacheNoHostStorage, KeepsPageBookkeeping) {
  KvCacheConfig c;
  c.page_size = 16;
  c.num_pages = 8;
  c.layers = {KvLayerGeometry{2, 16, 16}};
  c.host_storage = false;
  auto kv = KvCache::create(c);
  ASSERT_TRUE(kv.ok()) << kv.status().message();
  EXPECT_FALSE((*kv)->has_host_storage());
  PageTable t;
  ASSERT_TRUE((*kv)->reserve(t, 40).ok());
  EXPECT_EQ(t.pages.size(), 3u);
  EXPECT_EQ((*kv)->num_free_pages(), 5);
  ASSERT_TRUE((*kv)->free(t).ok());
  EXPECT_EQ((*kv)->num_free_pages(), 8);
  c.host_storage = true;
  auto host = KvCache::create(c);
  ASSERT_TRUE(host.ok());
  EXPECT_TRUE((*host)->has_host_storage());
  EXPECT_NE((*host)->layer(0).k, nullptr);
}

TEST(CudaExecutorOptions, ValidateNamesTheField) {
  CudaExecutorOptions o;
  o.token_capacity = 64, o.max_seqs = 4, o.max_model_len = 128;
  EXPECT_TRUE(o.validate().ok());
  auto bad = [](CudaExecutorOptions x, const char* field) {
    Status s = x.validate();
    EXPECT_FALSE(s.ok()) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  CudaExecutorOptions x = o;
  x.token_capacity = 0;
  bad(x, "token_capacity");
  x = o, x.max_seqs = -1;
  bad(x, "max_seqs");
  x = o, x.max_model_len = 0;
  bad(x, "max_model_len");
  x = o, x.max_logit_rows = 65;
  bad(x, "max_logit_rows");
  x = o, x.cuda_graph_max_bs = -2;
  bad(x, "cuda_graph_max_bs");
  x = o, x.device = -1;
  bad(x, "device");
}

TEST(CudaExecutorGraphSizes, PaddedDecodeSizes) {
  EXPECT_EQ(cuda_graph_batch_sizes(0), std::vector<int64_t>{});
  EXPECT_EQ(cuda_graph_batch_sizes(1), (std::vector<int64_t>{1}));
  EXPECT_EQ(cuda_graph_batch_sizes(5), (std::vector<int64_t>{1, 2, 4, 5}));
  EXPECT_EQ(cuda_graph_batch_sizes(32), (std::vector<int64_t>{1, 2, 4, 8, 16, 24, 32}));
  const auto big = cuda_graph_batch_sizes(300);
  EXPECT_EQ(big[big.size() - 4], 256);
  EXPECT_EQ(big[big.size() - 3], 272);
  EXPECT_EQ(big[big.size() - 2], 288);
  EXPECT_EQ(big.back(), 300);
}

TEST(CudaExecutorCreate, RejectsCpuPlanAndMissingDevice) {
  const std::string model = "qwen2-tiny-tied";
  if (!have_plans(model)) GTEST_SKIP() << "no plans in .deps/plans (tools/gpu/make_plans.sh)";
  auto cpu_plan = LoadedPlan::from_file(plan_path(model, "cpu"));
  ASSERT_TRUE(cpu_plan.ok()) << cpu_plan.status().message();
  auto c = KvCacheConfig::from_plan(*(*cpu_plan)->plan().kv_cache(), 8);
  ASSERT_TRUE(c.ok());
  c->host_storage = false;
  auto kv = KvCache::create(*c);
  ASSERT_TRUE(kv.ok());
  CudaExecutorOptions o;
  o.token_capacity = 16, o.max_seqs = 2, o.max_model_len = 64;
  auto e = CudaExecutor::create(**cpu_plan, std::vector<DeviceTensor>{}, **kv, o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("sm_90a"), std::string::npos) << e.status().message();

  auto gpu_plan = LoadedPlan::from_file(plan_path(model, "sm_90a"));
  ASSERT_TRUE(gpu_plan.ok()) << gpu_plan.status().message();
  auto c2 = KvCacheConfig::from_plan(*(*gpu_plan)->plan().kv_cache(), 8);
  ASSERT_TRUE(c2.ok());
  c2->host_storage = false;
  auto kv2 = KvCache::create(*c2);
  ASSERT_TRUE(kv2.ok());
  auto mismatched = CudaExecutor::create(**gpu_plan, std::vector<DeviceTensor>{}, **kv, o);  // f32 kv cache
  ASSERT_FALSE(mismatched.ok());
  EXPECT_NE(mismatched.status().message().find("kv cache"), std::string::npos) << mismatched.status().message();
  auto e2 = CudaExecutor::create(**gpu_plan, std::vector<DeviceTensor>{}, **kv2, o);
  ASSERT_FALSE(e2.ok());
  EXPECT_NE(e2.status().message().find("device weights"), std::string::npos) << e2.status().message();

  if (device_count() == 0) {  // a valid request on a machine without a GPU is an error, not a crash
    auto host = load_host_weights(**gpu_plan, model, /*dummy=*/true);
    ASSERT_TRUE(host.ok()) << host.status().message();
    std::vector<DeviceTensor> t;
    for (size_t i = 0; i < (*host)->size(); ++i) {
      const WeightTensor& w = (*host)->get(i);
      t.push_back(DeviceTensor{w.name, w.dtype, w.shape, const_cast<uint8_t*>(w.data), w.nbytes});
    }
    auto e3 = CudaExecutor::create(**gpu_plan, t, **kv2, o);
    ASSERT_FALSE(e3.ok());
    EXPECT_NE(e3.status().message().find("CUDA device"), std::string::npos) << e3.status().message();
  }
}

// ---- (a) GPU vs CPU ---------------------------------------------------------

struct VsCpuParam {
  const char* model;
  bool dummy;
};

class CudaVsCpu : public ::testing::TestWithParam<VsCpuParam> {};

TEST_P(CudaVsCpu, LogitsMatchWithinBf16Tolerance) {
  SKIP_WITHOUT_GPU();
  const VsCpuParam prm = GetParam();
  REQUIRE_PLANS(prm.model);
  try {
    Fixture f = take(load_fixture(prm.model, prm.dummy), "load fixture");
    Side cpu = take(make_cpu_side(f), "cpu executor");
    Side gpu = take(make_gpu_side(f, /*graphs=*/true), "cuda executor");
    const int64_t V = cpu.exec().vocab_size();
    ASSERT_EQ(gpu.exec().vocab_size(), V);
    std::map<int, int64_t> len;
    auto part = [&](int seq, int64_t n, bool all = false) {
      Part p{seq, tokens_for(seq, len[seq], n, V), all};
      len[seq] += n;
      return p;
    };
    std::vector<std::pair<std::string, std::vector<Part>>> steps;
    steps.push_back({"prefill 37 (all rows)", {part(0, 37, true)}});
    steps.push_back({"chunked prefill 16", {part(1, 16)}});
    steps.push_back({"chunk 20 + decode", {part(1, 20, true), part(0, 1)}});
    steps.push_back({"chunk 14 + prefill 5 + decode", {part(2, 5), part(1, 14), part(0, 1)}});
    for (int i = 0; i < 20; ++i) steps.push_back({"decode x3 (graph, padded to 4)", {part(0, 1), part(1, 1), part(2, 1)}});
    steps.push_back({"prefill 9 + decode x3", {part(0, 1), part(3, 9), part(1, 1), part(2, 1)}});
    for (int i = 0; i < 12; ++i)
      steps.push_back({"decode x4 (graph)", {part(0, 1), part(1, 1), part(2, 1), part(3, 1)}});
    for (int i = 0; i < 4; ++i) steps.push_back({"decode x1 (graph)", {part(3, 1)}});
    // A long sequence: decode past 512 tokens uses the second KV bucket (bound 1024).
    for (int i = 0; i < 5; ++i) steps.push_back({"long prefill chunk 120", {part(4, 120)}});
    for (int i = 0; i < 6; ++i) steps.push_back({"decode x2, kv > 512 (graph)", {part(3, 1), part(4, 1)}});

    double worst = 0;
    for (size_t s = 0; s < steps.size(); ++s) {
      std::vector<float> ref, got;
      Status a = cpu.run(steps[s].second, &ref);
      ASSERT_TRUE(a.ok()) << "cpu step " << s << ": " << a.message();
      Status b = gpu.run(steps[s].second, &got);
      ASSERT_TRUE(b.ok()) << "gpu step " << s << " (" << steps[s].first << "): " << b.message();
      const LogitsDiff d = compare_logits(ref, got, V);
      std::cout << "[" << prm.model << (prm.dummy ? " dummy" : " ckpt") << "] step " << s << " " << steps[s].first
                << ": " << d.describe() << "\n";
      worst = std::max(worst, d.ref_scale > 0 ? d.max_abs / d.ref_scale : d.max_abs);
      EXPECT_LE(d.max_abs, kRelTol * d.ref_scale + 1e-6) << "step " << s << " " << steps[s].first << ": " << d.describe();
      EXPECT_EQ(d.argmax_mismatch, 0) << "step " << s << " " << steps[s].first << ": " << d.describe();
    }
    std::cout << "[" << prm.model << "] worst rel err " << worst << " over " << steps.size() << " steps\n";
  } catch (const std::exception&) {
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaVsCpu,
                         ::testing::Values(VsCpuParam{"qwen2-tiny-tied", true}, VsCpuParam{"qwen2-tiny-tied", false},
                                           VsCpuParam{"qwen2-tiny-r1", true}, VsCpuParam{"qwen2-tiny-r1", false},
                                           VsCpuParam{"qwen2-tiny-yarn", true}, VsCpuParam{"qwen2-tiny-yarn", false}),
                         [](const ::testing::TestParamInfo<VsCpuParam>& i) {
                           std::string n = std::string(i.param.model) + (i.param.dummy ? "_dummy" : "_ckpt");
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// ---- (b) graph replay == eager ---------------------------------------------

TEST(CudaExecutorGraphs, ReplayEqualsEagerBitExact) {
  SKIP_WITHOUT_GPU();
  const char* model = "qwen2-tiny-tied";
  REQUIRE_PLANS(model);
  try {
    Fixture f = take(load_fixture(model, /*dummy=*/false), "load fixture");
    Side graph = take(make_gpu_side(f, true), "graph executor");
    Side eager = take(make_gpu_side(f, false), "eager executor");
    auto* ge = dynamic_cast<CudaExecutor*>(&graph.exec());
    auto* ee = dynamic_cast<CudaExecutor*>(&eager.exec());
    ASSERT_TRUE(ge && ee);
    std::cout << "kernel load " << ge->kernel_load_seconds() << " s, graph capture " << ge->graph_capture_seconds()
              << " s, activation bytes " << ge->activation_bytes() << ", kv pool bytes " << ge->kv_pool_bytes() << "\n";
    EXPECT_GT(ge->graph_capture_seconds(), 0.0);
    // The graphs' scratch page lives in the device pools only: the KvCache keeps all its pages.
    EXPECT_EQ(graph.kv().num_free_pages(), kNumPages);
    EXPECT_GT(ge->kv_pool_bytes(), ee->kv_pool_bytes());
    EXPECT_EQ(ee->graph_capture_seconds(), 0.0);
    const int64_t V = graph.exec().vocab_size();
    std::map<int, int64_t> len;
    auto part = [&](int seq, int64_t n) {
      Part p{seq, tokens_for(seq, len[seq], n, V), false};
      len[seq] += n;
      return p;
    };
    std::vector<std::vector<Part>> steps;
    steps.push_back({part(0, 10), part(1, 7), part(2, 12), part(3, 3)});
    for (int i = 0; i < 12; ++i) steps.push_back({part(0, 1), part(1, 1), part(2, 1), part(3, 1)});
    for (size_t s = 0; s < steps.size(); ++s) {
      std::vector<float> a, b;
      ASSERT_TRUE(graph.run(steps[s], &a).ok()) << "graph step " << s;
      ASSERT_TRUE(eager.run(steps[s], &b).ok()) << "eager step " << s;
      ASSERT_EQ(a.size(), b.size());
      const LogitsDiff d = compare_logits(b, a, V);
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
          << "step " << s << " graph vs eager differ: " << d.describe();
    }
  } catch (const std::exception&) {
  }
}

// ---- (c) device greedy sampling == argmax ----------------------------------

TEST(CudaExecutorSampling, GreedyEqualsArgmaxOfStepLogits) {
  SKIP_WITHOUT_GPU();
  const char* model = "qwen2-tiny-r1";
  REQUIRE_PLANS(model);
  try {
    Fixture f = take(load_fixture(model, /*dummy=*/false), "load fixture");
    Side gpu = take(make_gpu_side(f, true), "cuda executor");
    Executor& e = gpu.exec();
    ASSERT_TRUE(e.samples_on_device());
    const int64_t V = e.vocab_size();
    std::map<int, int64_t> len;
    auto part = [&](int seq, int64_t n, bool all = false) {
      Part p{seq, tokens_for(seq, len[seq], n, V), all};
      len[seq] += n;
      return p;
    };
    std::vector<std::vector<Part>> steps = {{part(0, 20, true), part(1, 9)}, {part(0, 1), part(1, 1)},
                                            {part(0, 1), part(1, 1)}};
    for (size_t s = 0; s < steps.size(); ++s) {
      StepBatch b = take(gpu.build(steps[s]), "build");
      std::vector<float> logits(static_cast<size_t>(b.num_logit_rows() * V));
      Status st = e.step(b, logits.data());
      ASSERT_TRUE(st.ok()) << st.message();
      std::vector<RowSampling> rows(static_cast<size_t>(b.num_logit_rows()));
      for (RowSampling& r : rows) r.temperature = 0.0f;
      std::vector<RowSample> out;
      st = e.step_sample(b, rows, &out);  // same batch again: rewrites the same KV entries
      ASSERT_TRUE(st.ok()) << st.message();
      ASSERT_EQ(out.size(), rows.size());
      for (size_t r = 0; r < rows.size(); ++r) {
        const float* row = logits.data() + r * V;
        int32_t best = 0;
        for (int32_t v = 1; v < V; ++v)
          if (row[v] > row[best]) best = v;
        EXPECT_EQ(out[r].id, best) << "step " << s << " row " << r;
      }
      gpu.commit(steps[s]);
    }
  } catch (const std::exception&) {
  }
}

// ---- bad steps are errors ---------------------------------------------------

TEST(CudaExecutorStep, BadBatchesAreErrors) {
  SKIP_WITHOUT_GPU();
  const char* model = "qwen2-tiny-tied";
  REQUIRE_PLANS(model);
  try {
    Fixture f = take(load_fixture(model, /*dummy=*/true), "load fixture");
    Side gpu = take(make_gpu_side(f, true), "cuda executor");
    const int64_t V = gpu.exec().vocab_size();
    StepBatch b = take(gpu.build({Part{0, tokens_for(0, 0, 5, V), false}}), "build");
    std::vector<float> logits(static_cast<size_t>(V));
    auto expect_error = [&](StepBatch x, const char* needle) {
      Status s = gpu.exec().step(x, logits.data());
      EXPECT_FALSE(s.ok()) << needle;
      EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
    };
    StepBatch x = b;
    x.tokens[2] = static_cast<int32_t>(V);
    expect_error(x, "vocabulary");
    x = b, x.positions.pop_back();
    expect_error(x, "positions");
    x = b, x.sequences[0].page_table.clear();
    expect_error(x, "pages");
    x = b, x.logit_rows[0] = 5;
    expect_error(x, "logit row");
    x = b, x.sequences[0].num_tokens = 4;
    expect_error(x, "cover");
    x = b, x.sequences[0].page_table[0] = static_cast<int32_t>(kNumPages);
    expect_error(x, "outside the pool");
    // The executor still works after rejected steps.
    Status ok = gpu.exec().step(b, logits.data());
    EXPECT_TRUE(ok.ok()) << ok.message();
  } catch (const std::exception&) {
  }
}

}  // namespace
}  // namespace ds::cuda::testing

namespace ds::cuda::testing {
namespace {

TEST(CudaExecutorProfile, PrintsPerInstructionTable) {
  SKIP_WITHOUT_GPU();
  const char* model = "qwen2-tiny-tied";
  REQUIRE_PLANS(model);
  try {
    Fixture f = take(load_fixture(model, /*dummy=*/true), "load fixture");
    ::setenv("DSRT_PROFILE", "1", 1);
    auto side = make_gpu_side(f, /*graphs=*/true);
    ::unsetenv("DSRT_PROFILE");
    Side gpu = take(std::move(side), "cuda executor");
    const int64_t V = gpu.exec().vocab_size();
    std::vector<float> logits;
    ::testing::internal::CaptureStderr();
    ASSERT_TRUE(gpu.run({Part{0, tokens_for(0, 0, 9, V), false}}, &logits).ok());
    ASSERT_TRUE(gpu.run({Part{0, tokens_for(0, 9, 1, V), false}}, &logits).ok());
    { Side gone = std::move(gpu); }  // the table is printed when the executor goes
    const std::string err = ::testing::internal::GetCapturedStderr();
    std::cout << err;
    EXPECT_NE(err.find("attention attn"), std::string::npos);
    EXPECT_NE(err.find("eager steps 1"), std::string::npos);
    EXPECT_NE(err.find("graph steps 1"), std::string::npos);
  } catch (const std::exception&) {
  }
}

}  // namespace
}  // namespace ds::cuda::testing
