// End-to-end: the CPU executor on a hand-built 2-layer Qwen2-style plan, against
// a straightforward dense implementation of the same model written here.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/engine/engine.h"
#include "runtime/executor/cpu_executor.h"
#include "tests/runtime/test_util.h"

namespace ds {
namespace {

using test::TempDir;
using test::TinyModel;
using Mat = std::vector<double>;

// Dense float64 forward of TinyModel over a whole sequence (full causal attention).
class Dense {
 public:
  Dense(const TinyModel& m, const std::vector<test::StTensor>& ckpt) : m_(m) {
    for (const auto& t : ckpt) {
      Mat v;
      for (float f : t.values) v.push_back(m.weight_dtype == DType::kBF16 ? bf16_to_f32(f32_to_bf16(f)) : f);
      w_[t.name] = v;
    }
  }

  // logits [n, vocab]
  std::vector<Mat> logits(const std::vector<int32_t>& ids) const {
    const int64_t n = static_cast<int64_t>(ids.size()), H = m_.hidden, D = m_.head_dim;
    std::vector<Mat> x(n);
    for (int64_t t = 0; t < n; ++t) x[t] = row(w_.at("model.embed_tokens.weight"), ids[t], H);
    for (int64_t l = 0; l < m_.layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      std::vector<Mat> q(n), k(n), v(n);
      for (int64_t t = 0; t < n; ++t) {
        Mat h = norm(x[t], w_.at(p + "input_layernorm.weight"));
        q[t] = rope(lin(h, p + "self_attn.q_proj"), t, m_.heads);
        k[t] = rope(lin(h, p + "self_attn.k_proj"), t, m_.kv_heads);
        v[t] = lin(h, p + "self_attn.v_proj");
      }
      const int64_t group = m_.heads / m_.kv_heads;
      for (int64_t t = 0; t < n; ++t) {
        Mat att(static_cast<size_t>(m_.heads * D), 0.0);
        for (int64_t hh = 0; hh < m_.heads; ++hh) {
          const int64_t kvh = hh / group;
          Mat s(static_cast<size_t>(t + 1));
          double mx = -1e300;
          for (int64_t j = 0; j <= t; ++j) {
            double d = 0;
            for (int64_t e = 0; e < D; ++e) d += q[t][hh * D + e] * k[j][kvh * D + e];
            s[j] = d / std::sqrt(static_cast<double>(D));
            mx = std::max(mx, s[j]);
          }
          double z = 0;
          for (double& e : s) z += (e = std::exp(e - mx));
          for (int64_t j = 0; j <= t; ++j)
            for (int64_t e = 0; e < D; ++e) att[hh * D + e] += s[j] / z * v[j][kvh * D + e];
        }
        Mat o = lin(att, p + "self_attn.o_proj");
        for (int64_t i = 0; i < H; ++i) x[t][i] += o[i];
        Mat h2 = norm(x[t], w_.at(p + "post_attention_layernorm.weight"));
        Mat g = lin(h2, p + "mlp.gate_proj"), u = lin(h2, p + "mlp.up_proj");
        for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
        Mat d = lin(g, p + "mlp.down_proj");
        for (int64_t i = 0; i < H; ++i) x[t][i] += d[i];
      }
    }
    std::vector<Mat> out(n);
    const std::string head = m_.tied ? "model.embed_tokens" : "lm_head";
    for (int64_t t = 0; t < n; ++t) out[t] = lin(norm(x[t], w_.at("model.norm.weight")), head);
    return out;
  }

 private:
  static Mat row(const Mat& m, int64_t r, int64_t w) { return Mat(m.begin() + r * w, m.begin() + (r + 1) * w); }
  Mat norm(const Mat& x, const Mat& w) const {
    double ss = 0;
    for (double e : x) ss += e * e;
    const double inv = 1 / std::sqrt(ss / static_cast<double>(x.size()) + m_.eps);
    Mat o(x.size());
    for (size_t i = 0; i < x.size(); ++i) o[i] = x[i] * inv * w[i];
    return o;
  }
  Mat lin(const Mat& x, const std::string& name) const {
    const Mat& w = w_.at(name + ".weight");
    const size_t K = x.size(), N = w.size() / K;
    Mat o(N, 0.0);
    auto b = w_.find(name + ".bias");
    for (size_t n = 0; n < N; ++n) {
      for (size_t k = 0; k < K; ++k) o[n] += x[k] * w[n * K + k];
      if (b != w_.end()) o[n] += b->second[n];
    }
    return o;
  }
  Mat rope(Mat x, int64_t pos, int64_t heads) const {
    const int64_t D = m_.head_dim, half = D / 2;
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double f = pos * std::pow(m_.theta, -2.0 * i / D);
        double& a = x[h * D + i];
        double& b = x[h * D + i + half];
        const double na = a * std::cos(f) - b * std::sin(f), nb = b * std::cos(f) + a * std::sin(f);
        a = na;
        b = nb;
      }
    return x;
  }
  TinyModel m_;
  std::map<std::string, Mat> w_;
};

struct Fixture {
  TempDir dir;
  TinyModel model;
  std::vector<test::StTensor> ckpt;
  std::unique_ptr<LoadedPlan> plan;
  std::unique_ptr<LoadedWeights> weights;

  explicit Fixture(const TinyModel& m) : model(m), ckpt(m.checkpoint(11)) {
    test::write_bytes(dir.file("model.safetensors"), test::safetensors_bytes(ckpt));
    auto lp = LoadedPlan::from_bytes(m.plan_bytes(dir.path()), "tiny.dsplan");
    EXPECT_TRUE(lp.ok()) << lp.status().message();
    plan = std::move(lp).value();
    auto lw = LoadedWeights::load(*plan, WeightLoadOptions{});
    EXPECT_TRUE(lw.ok()) << lw.status().message();
    weights = std::move(lw).value();
  }
  std::unique_ptr<Engine> engine(int64_t capacity) {
    auto e = Engine::create(*plan, *weights, EngineOptions{capacity, 0});
    EXPECT_TRUE(e.ok()) << e.status().message();
    return std::move(e).value();
  }
};

std::vector<int32_t> prompt(int n, int vocab) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back((i * 7 + 3) % vocab);
  return ids;
}

double max_diff_topk(const std::vector<PositionScore>& got, const std::vector<Mat>& want) {
  double err = 0;
  EXPECT_EQ(got.size(), want.size());
  for (size_t t = 0; t < got.size() && t < want.size(); ++t) {
    for (size_t j = 0; j < got[t].top_ids.size(); ++j)
      err = std::max(err, std::abs(got[t].top_logits[j] - want[t][got[t].top_ids[j]]));
    double mx = -1e300, z = 0;
    for (double v : want[t]) mx = std::max(mx, v);
    for (double v : want[t]) z += std::exp(v - mx);
    err = std::max(err, std::abs(got[t].logsumexp - (mx + std::log(z))));
  }
  return err;
}

class ExecutorE2E : public ::testing::TestWithParam<std::tuple<bool, bool, int>> {};

TEST_P(ExecutorE2E, ScoreMatchesDenseReference) {
  TinyModel m;
  m.fused = std::get<0>(GetParam());
  m.tied = std::get<1>(GetParam());
  const int capacity = std::get<2>(GetParam());
  Fixture f(m);
  auto e = f.engine(capacity);
  const auto ids = prompt(13, static_cast<int>(m.vocab));
  auto got = e->score(ids, m.vocab);
  ASSERT_TRUE(got.ok()) << got.status().message();
  const auto want = Dense(m, f.ckpt).logits(ids);
  EXPECT_LT(max_diff_topk(*got, want), 2e-4);
  // Top ids are ordered by logit.
  for (const auto& p : *got)
    for (size_t j = 1; j < p.top_logits.size(); ++j) EXPECT_GE(p.top_logits[j - 1], p.top_logits[j]);
  EXPECT_EQ(e->kv_cache().num_free_pages(), e->kv_cache().num_pages());  // pages returned
}

// (fused, tied, token capacity): capacity 3 makes prefill chunks cross page boundaries.
INSTANTIATE_TEST_SUITE_P(Plans, ExecutorE2E,
                         ::testing::Values(std::make_tuple(false, false, 64), std::make_tuple(true, false, 64),
                                           std::make_tuple(false, true, 3), std::make_tuple(true, true, 5),
                                           std::make_tuple(true, false, 1)));

// Engine::generate on an executor that samples inside its step: pipelined
// (the step after token k is queued before token k is read, its input
// previous_sample_token(0)) and synchronous give the same tokens, greedy ones
// equal to host sampling; a stop token mid-pipeline ends the output there and
// the step queued past it is dropped; prompts longer than a step are chunked.
TEST(ExecutorE2E, PipelinedSamplingInStepMatchesTheSynchronousPaths) {
  TinyModel m;
  m.fused = true;
  Fixture f(m);
  auto host = f.engine(4), pipe = f.engine(4), sync = f.engine(4);
  auto& pipe_cpu = dynamic_cast<CpuExecutor&>(pipe->executor());
  auto& sync_cpu = dynamic_cast<CpuExecutor&>(sync->executor());
  pipe_cpu.set_sample_in_step(true);
  sync_cpu.set_sample_in_step(true);
  sync_cpu.set_pipelined_sampling(false);
  ASSERT_TRUE(pipe->executor().pipelines_sampling());
  ASSERT_FALSE(sync->executor().pipelines_sampling());
  ASSERT_FALSE(host->executor().pipelines_sampling());
  for (int n : {6, 9}) {
    const auto ids = prompt(n, static_cast<int>(m.vocab));
    for (int64_t max_new : {1, 2, 8}) {
      GenerateOptions go;
      go.max_new_tokens = max_new;
      go.ignore_eos = true;
      auto a = host->generate(ids, go), b = pipe->generate(ids, go), c = sync->generate(ids, go);
      ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << b.status().message() << c.status().message();
      EXPECT_EQ(b->output_ids, a->output_ids) << "prompt " << n << ", " << max_new << " tokens";
      EXPECT_EQ(c->output_ids, a->output_ids) << "prompt " << n << ", " << max_new << " tokens";
      EXPECT_EQ(b->output_ids.size(), static_cast<size_t>(max_new));
      EXPECT_EQ(b->finish_reason, "length");
      EXPECT_EQ(b->decode_tokens, max_new - 1);
      if (max_new == 8) {  // stop at the third token: one step was queued past it
        GenerateOptions stop = go;
        stop.ignore_eos = false;
        stop.eos_token_ids = {a->output_ids[2]};
        auto s = pipe->generate(ids, stop);
        ASSERT_TRUE(s.ok()) << s.status().message();
        EXPECT_EQ(s->finish_reason, "stop");
        const auto first = std::find(a->output_ids.begin(), a->output_ids.end(), a->output_ids[2]);
        EXPECT_EQ(s->output_ids, std::vector<int32_t>(a->output_ids.begin(), first + 1));
      }
      // Seeded draws: a function of (seed, tokens generated so far, logits) on both paths.
      GenerateOptions drawn = go;
      drawn.sampling.temperature = 1.3f;
      drawn.sampling.top_k = 20;
      drawn.sampling.seed = 17 + static_cast<uint64_t>(max_new);
      auto d1 = pipe->generate(ids, drawn), d2 = sync->generate(ids, drawn);
      ASSERT_TRUE(d1.ok() && d2.ok());
      EXPECT_EQ(d1->output_ids, d2->output_ids) << "seeded, prompt " << n << ", " << max_new << " tokens";
    }
  }
  EXPECT_EQ(pipe->kv_cache().num_free_pages(), pipe->kv_cache().num_pages());  // every page returned
}

// The CPU executor's pipelined API refuses what the CUDA executor refuses.
TEST(ExecutorE2E, PipelinedSamplingMisuseIsAnError) {
  TinyModel m;
  Fixture f(m);
  auto e = f.engine(8);
  auto& cpu = dynamic_cast<CpuExecutor&>(e->executor());
  std::vector<RowSample> out;
  std::vector<RowSampling> one(1);
  one[0].temperature = 0.0f;
  KvCache& kv = const_cast<KvCache&>(e->kv_cache());
  PageTable pages;
  ASSERT_TRUE(kv.reserve(pages, 8).ok());
  auto batch = [&](std::vector<int32_t> tokens, int64_t cached) {
    StepBatch b;
    b.tokens = tokens;
    for (size_t i = 0; i < tokens.size(); ++i) b.positions.push_back(static_cast<int32_t>(cached + i));
    b.sequences.push_back(StepSequence{0, static_cast<int64_t>(tokens.size()), cached, pages.pages});
    b.logit_rows.push_back(static_cast<int32_t>(tokens.size() - 1));
    return b;
  };
  auto expect_error = [](const Status& s, const char* needle) {
    EXPECT_FALSE(s.ok()) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  expect_error(cpu.enqueue_step_sample(batch({1, 2}, 0), one), "set_sample_in_step");
  cpu.set_sample_in_step(true);
  expect_error(cpu.collect_samples(&out), "nothing is queued");
  expect_error(cpu.enqueue_step_sample(batch({previous_sample_token(0)}, 0), one), "previous_sample_token");
  expect_error(cpu.enqueue_step_sample(batch({1, 2}, 0), {}), "sampling rows");
  ASSERT_TRUE(cpu.enqueue_step_sample(batch({1, 2}, 0), one).ok());
  expect_error(cpu.enqueue_step_sample(batch({previous_sample_token(1)}, 2), one), "previous_sample_token");
  ASSERT_TRUE(cpu.enqueue_step_sample(batch({previous_sample_token(0)}, 2), one).ok());
  expect_error(cpu.enqueue_step_sample(batch({previous_sample_token(0)}, 3), one), "wait to be collected");
  expect_error(cpu.step_sample(batch({previous_sample_token(0)}, 3), one, &out), "not collected");
  ASSERT_TRUE(cpu.collect_samples(&out).ok());
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(cpu.collect_samples(&out).ok());
  expect_error(cpu.collect_samples(&out), "nothing is queued");
  ASSERT_TRUE(cpu.step_sample(batch({previous_sample_token(0)}, 3), one, &out).ok());
  ASSERT_TRUE(kv.free(pages).ok());
}

TEST(ExecutorE2E, GreedyGenerateMatchesDense) {
  TinyModel m;
  m.fused = true;
  Fixture f(m);
  auto e = f.engine(4);
  auto ids = prompt(6, static_cast<int>(m.vocab));
  GenerateOptions go;
  go.max_new_tokens = 8;
  go.ignore_eos = true;
  auto r = e->generate(ids, go);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->output_ids.size(), 8u);
  EXPECT_EQ(r->finish_reason, "length");
  Dense dense(m, f.ckpt);
  std::vector<int32_t> seq = ids;
  for (int32_t got : r->output_ids) {
    const Mat last = dense.logits(seq).back();
    const int32_t want = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    EXPECT_EQ(got, want);
    seq.push_back(want);
  }
  // Stops at EOS (vocab-1 in the test plan) unless ignored.
  GenerateOptions stop = go;
  stop.ignore_eos = false;
  stop.eos_token_ids = {r->output_ids[2]};
  auto r2 = e->generate(ids, stop);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->finish_reason, "stop");
  EXPECT_EQ(r2->output_ids.size(), static_cast<size_t>(std::find(r->output_ids.begin(), r->output_ids.end(),
                                                                  r->output_ids[2]) - r->output_ids.begin() + 1));
}

TEST(ExecutorE2E, Bf16KvCacheStaysClose) {
  TinyModel m;
  m.kv_dtype = DType::kBF16;
  Fixture f(m);
  auto e = f.engine(8);
  const auto ids = prompt(9, static_cast<int>(m.vocab));
  auto got = e->score(ids, 5);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_LT(max_diff_topk(*got, Dense(m, f.ckpt).logits(ids)), 5e-2);
}

TEST(ExecutorE2E, WeightsCastAtLoad) {
  TinyModel m;
  m.cast_weights = true;  // checkpoint bf16, plan weights f32
  Fixture f(m);
  EXPECT_EQ(f.weights->get(0).dtype, DType::kF32);
  auto e = f.engine(16);
  const auto ids = prompt(5, static_cast<int>(m.vocab));
  auto got = e->score(ids, 3);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_LT(max_diff_topk(*got, Dense(m, f.ckpt).logits(ids)), 2e-4);
}

// Two sequences with different cached lengths in one step, against each alone.
TEST(CpuExecutor, MixedBatchOfSequences) {
  TinyModel m;
  Fixture f(m);
  auto cfg = KvCacheConfig::from_plan(*f.plan->plan().kv_cache(), 16);
  ASSERT_TRUE(cfg.ok());
  auto kv = KvCache::create(*cfg);
  ASSERT_TRUE(kv.ok());
  auto ex = CpuExecutor::create(*f.plan, *f.weights, **kv, 8);
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  const auto a = prompt(7, static_cast<int>(m.vocab));
  std::vector<int32_t> b{5, 9, 2};
  PageTable pa, pb;
  auto prefill = [&](const std::vector<int32_t>& ids, int64_t n, PageTable& pt) {
    ASSERT_TRUE((*kv)->reserve(pt, n).ok());
    StepBatch s;
    s.tokens.assign(ids.begin(), ids.begin() + n);
    for (int64_t i = 0; i < n; ++i) s.positions.push_back(static_cast<int32_t>(i));
    s.sequences.push_back({0, n, 0, pt.pages});
    ASSERT_TRUE((*ex)->step(s, nullptr).ok());
  };
  prefill(a, 5, pa);  // a: 5 cached (pages cross a boundary)
  prefill(b, 1, pb);  // b: 1 cached
  ASSERT_TRUE((*kv)->reserve(pa, 7).ok());
  ASSERT_TRUE((*kv)->reserve(pb, 3).ok());
  StepBatch s;
  s.tokens = {b[1], a[5], b[2], a[6]};
  s.positions = {1, 5, 2, 6};
  // Sequence token ranges must be contiguous: reorder as [a5, a6, b1, b2].
  s.tokens = {a[5], a[6], b[1], b[2]};
  s.positions = {5, 6, 1, 2};
  s.sequences = {{0, 2, 5, pa.pages}, {2, 2, 1, pb.pages}};
  s.logit_rows = {3, 1};
  std::vector<float> logits(2 * m.vocab);
  ASSERT_TRUE((*ex)->step(s, logits.data()).ok());
  Dense dense(m, f.ckpt);
  const Mat wb = dense.logits(b).back(), wa = dense.logits(a).back();
  for (int64_t v = 0; v < m.vocab; ++v) {
    EXPECT_NEAR(logits[v], wb[v], 2e-4);
    EXPECT_NEAR(logits[m.vocab + v], wa[v], 2e-4);
  }
  // Bad steps are errors, not crashes.
  StepBatch bad = s;
  bad.logit_rows = {9};
  EXPECT_FALSE((*ex)->step(bad, logits.data()).ok());
  bad = s;
  bad.tokens[0] = static_cast<int32_t>(m.vocab);
  EXPECT_FALSE((*ex)->step(bad, logits.data()).ok());
  bad = s;
  bad.sequences[1].page_table.clear();
  EXPECT_FALSE((*ex)->step(bad, logits.data()).ok());
  bad = s;
  bad.sequences.pop_back();
  EXPECT_FALSE((*ex)->step(bad, logits.data()).ok());
  bad = s;
  bad.tokens.resize(9, 0);
  bad.positions.resize(9, 0);
  EXPECT_FALSE((*ex)->step(bad, logits.data()).ok());
}

TEST(Engine, RejectsBadRequestsAndTargets) {
  TinyModel m;
  Fixture f(m);
  auto e = f.engine(8);
  EXPECT_FALSE(e->score({}, 3).ok());
  EXPECT_FALSE(e->score({1, static_cast<int32_t>(m.vocab)}, 3).ok());
  EXPECT_FALSE(e->score(std::vector<int32_t>(m.max_model_len + 1, 1), 3).ok());
  GenerateOptions go;
  go.sampling.top_p = 0;
  EXPECT_FALSE(e->generate({1, 2}, go).ok());
  TinyModel gpu = m;
  gpu.target = "sm_90a";
  auto lp = LoadedPlan::from_bytes(gpu.plan_bytes(f.dir.path()), "gpu.dsplan");
  ASSERT_TRUE(lp.ok());
  auto eg = Engine::create(**lp, *f.weights, EngineOptions{});
  ASSERT_FALSE(eg.ok());
  EXPECT_NE(eg.status().message().find("sm_90a"), std::string::npos);
}

}  // namespace
}  // namespace ds
