// Sampled rows: every draw lies in the CPU sampler's allowed set (top-k, top-p,
// min-p, ties), draws are a pure function of (seed, counter), their frequencies
// match the filtered softmax (chi-square on a small vocab; the RNG is
// deterministic, so the test cannot flake), and the cost of a 256-row call.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>

#include "runtime/cuda/cuda_check.h"
#include "runtime/engine/sampler.h"
#include "tests/cuda/sampling/sampler_cpu_oracle.h"

namespace ds::cuda::testing {
namespace {

#define DS_SKIP_WITHOUT_GPU() \
  if (ds::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device"

RowSampling sampled(float t, int32_t k, float p, float min_p, uint64_t seed, uint64_t counter) {
  RowSampling s;
  s.temperature = t;
  s.top_k = k;
  s.top_p = p;
  s.min_p = min_p;
  s.seed = seed;
  s.counter = counter;
  return s;
}

struct FilterCase {
  float t;
  int32_t k;
  float p;
  float min_p;
  float step;  // > 0: quantized logits (ties at the cuts)
};

TEST(DeviceSamplerDraw, DrawsLieInTheCpuAllowedSet) {
  DS_SKIP_WITHOUT_GPU();
  const FilterCase cases[] = {
      {0.7f, 50, 1.0f, 0.0f, 0.0f},   {1.0f, -1, 0.9f, 0.0f, 0.0f},  {1.3f, 200, 0.8f, 0.05f, 0.0f},
      {0.5f, -1, 1.0f, 0.1f, 0.0f},   {1.0f, 37, 1.0f, 0.0f, 0.5f},  {0.8f, -1, 0.6f, 0.0f, 0.5f},
      {2.0f, 1000, 0.95f, 0.0f, 0.25f}, {0.3f, 5, 0.5f, 0.3f, 1.0f}, {1.0f, 3000, 0.9f, 0.0f, 0.5f},
      {0.9f, 1500, 1.0f, 0.02f, 0.0f}, {1.0f, -1, 0.01f, 0.0f, 0.0f},  {1.0f, -1, 1.0f, 1.0f, 0.5f},
      {0.05f, 10, 0.999999f, 0.0f, 0.0f}, {1.0f, 2, 1.0f, 0.0f, 2.0f}, {5.0f, -1, 0.5f, 0.0f, 0.0f},
  };
  for (int64_t vocab : {int64_t{1984}, int64_t{32000}, int64_t{152064}, int64_t{1001}}) {
    const int64_t rows = 16;
    auto h = SamplerHarness::create(vocab, rows);
    ASSERT_TRUE(h);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); ++c) {
      const FilterCase& fc = cases[c];
      std::vector<float> logits = random_logits(rows, vocab, 100 + static_cast<uint32_t>(c), 2.0f, fc.step);
      std::vector<RowSampling> specs;
      for (int64_t r = 0; r < rows; ++r) specs.push_back(sampled(fc.t, fc.k, fc.p, fc.min_p, 99 + r, 3 * r));
      std::vector<AllowedSet> allowed;
      for (int64_t r = 0; r < rows; ++r) allowed.push_back(cpu_allowed_set(&logits[r * vocab], vocab, specs[r]));
      // The same logits, drawn with 8 different counters per row.
      for (int draw = 0; draw < 8; ++draw) {
        for (int64_t r = 0; r < rows; ++r) specs[r].counter = static_cast<uint64_t>(1000 * draw + r);
        std::vector<RowSample> out;
        Status st = h->run(logits, specs, &out);
        ASSERT_TRUE(st.ok()) << st.message();
        for (int64_t r = 0; r < rows; ++r)
          EXPECT_TRUE(allowed[r].contains(out[r].id))
              << "vocab " << vocab << " case " << c << " (T " << fc.t << " k " << fc.k << " p " << fc.p << " min_p "
              << fc.min_p << " step " << fc.step << ") row " << r << " draw " << draw << ": id " << out[r].id
              << " not among the " << allowed[r].ids.size() << " allowed (last allowed id "
              << allowed[r].ids.back() << ")";
      }
    }
  }
}

// The cluster kernel (several CTAs per row, split_sampling_kernel.cu) draws
// exactly what the per-row kernel draws: the same ids for every row over
// greedy rows, top-p, large top-k, min-p and temperature mixes, quantized
// logits (ties at the cuts), a NaN row, an all -inf row, rows whose mass sits
// at a slice boundary and rows shorter than the cluster (CTAs with empty
// slices), at row counts that give 8, 4 and 2 CTAs per row.
TEST(DeviceSamplerDraw, ClusterKernelDrawsWhatThePerRowKernelDraws) {
  DS_SKIP_WITHOUT_GPU();
  const RowSampling kinds[] = {sampled(1.0f, -1, 0.9f, 0.0f, 1, 0),   sampled(0.6f, -1, 0.95f, 0.0f, 2, 0),
                               sampled(0.0f, -1, 1.0f, 0.0f, 3, 0),   sampled(1.3f, 3000, 0.8f, 0.05f, 4, 0),
                               sampled(0.9f, 1500, 1.0f, 0.02f, 5, 0), sampled(1.0f, -1, 0.01f, 0.0f, 6, 0),
                               sampled(2.0f, -1, 1.0f, 0.0f, 7, 0),   sampled(0.7f, -1, 1.0f, 0.3f, 8, 0),
                               sampled(1.0f, 1, 0.5f, 0.0f, 9, 0)};
  int compared = 0;
  // Vocab 6 and 30: rows of 2 and 8 token groups, one group per CTA.
  for (int64_t vocab : {int64_t{6}, int64_t{30}, int64_t{1001}, int64_t{4099}, int64_t{152064}}) {
    for (int64_t rows : {int64_t{5}, int64_t{33}, int64_t{64}, int64_t{100}}) {
      auto cluster = SamplerHarness::create(vocab, rows, true);
      auto per_row = SamplerHarness::create(vocab, rows, false);
      ASSERT_TRUE(cluster && per_row);
      for (float step : {0.0f, 0.5f}) {
        std::vector<float> logits = random_logits(rows, vocab, 7 + static_cast<uint32_t>(vocab + rows), 2.5f, step);
        for (int64_t i = 0; i < vocab; ++i) logits[1 * vocab + i] = std::nanf("");  // row 1: NaN
        for (int64_t i = 0; i < vocab; ++i) logits[2 * vocab + i] = -INFINITY;     // row 2: all -inf
        // Row 3: the mass in two tokens on either side of the middle (a slice boundary at 2, 4, 8 CTAs).
        const int64_t mid = (vocab + 3) / 4 / 2 * 4;
        logits[3 * vocab + mid - 1] = 30.0f, logits[3 * vocab + mid] = 30.0f;
        for (int draw = 0; draw < 3; ++draw) {
          std::vector<RowSampling> specs;
          for (int64_t r = 0; r < rows; ++r) {
            RowSampling s = kinds[(r + draw) % (sizeof(kinds) / sizeof(kinds[0]))];
            s.seed = 1000 + static_cast<uint64_t>(r), s.counter = static_cast<uint64_t>(draw * rows + r);
            specs.push_back(s);
          }
          std::vector<RowSample> a, b;
          Status st = cluster->run(logits, specs, &a);
          ASSERT_TRUE(st.ok()) << st.message();
          st = per_row->run(logits, specs, &b);
          ASSERT_TRUE(st.ok()) << st.message();
          for (int64_t r = 0; r < rows; ++r) {
            ASSERT_EQ(a[r].id, b[r].id) << "vocab " << vocab << " rows " << rows << " step " << step << " draw " << draw
                                        << " row " << r << " (T " << specs[r].temperature << " k " << specs[r].top_k
                                        << " p " << specs[r].top_p << " min_p " << specs[r].min_p << ")";
            EXPECT_TRUE(a[r].top.empty());
            ++compared;
          }
        }
      }
    }
  }
  std::printf("[cluster] %d rows drawn identically by the cluster and per-row kernels\n", compared);
}

TEST(DeviceSamplerDraw, SameSeedAndCounterSameToken) {
  DS_SKIP_WITHOUT_GPU();
  const int64_t vocab = 1984, rows = 256;
  auto h = SamplerHarness::create(vocab, rows);
  ASSERT_TRUE(h);
  // Nearly flat logits: many tokens are likely.
  const std::vector<float> one = random_logits(1, vocab, 7, 0.1f);
  std::vector<float> logits;
  for (int64_t r = 0; r < rows; ++r) logits.insert(logits.end(), one.begin(), one.end());
  std::vector<RowSampling> specs;
  for (int64_t r = 0; r < rows; ++r) specs.push_back(sampled(1.0f, -1, 1.0f, 0.0f, 42, static_cast<uint64_t>(r / 2)));
  std::vector<RowSample> a, b;
  ASSERT_TRUE(h->run(logits, specs, &a).ok());
  ASSERT_TRUE(h->run(logits, specs, &b).ok());
  std::set<int32_t> distinct;
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(a[r].id, b[r].id) << "row " << r << ": same call twice";
    if (r % 2 == 1) {
      EXPECT_EQ(a[r].id, a[r - 1].id) << "rows " << r - 1 << "," << r << " share (seed, counter)";
    }
    distinct.insert(a[r].id);
  }
  // 128 counters over ~1984 near-equally likely tokens: almost all differ.
  EXPECT_GT(distinct.size(), 100u);
  // Another seed changes the draws.
  for (RowSampling& s : specs) s.seed = 43;
  std::vector<RowSample> c;
  ASSERT_TRUE(h->run(logits, specs, &c).ok());
  int same = 0;
  for (int64_t r = 0; r < rows; ++r) same += c[r].id == a[r].id;
  EXPECT_LT(same, 32);
}

// 10000 draws (counters 0..9999) on an 8-token vocab vs the filtered softmax.
void check_distribution(const std::vector<float>& row, const RowSampling& spec, double max_chi2) {
  const int64_t vocab = static_cast<int64_t>(row.size()), per_call = 250, calls = 40;
  auto h = SamplerHarness::create(vocab, per_call);
  ASSERT_TRUE(h);
  const AllowedSet allowed = cpu_allowed_set(row.data(), vocab, spec);
  std::vector<float> logits;
  for (int64_t r = 0; r < per_call; ++r) logits.insert(logits.end(), row.begin(), row.end());
  std::vector<int64_t> counts(static_cast<size_t>(vocab), 0);
  for (int64_t call = 0; call < calls; ++call) {
    std::vector<RowSampling> specs(per_call, spec);
    for (int64_t r = 0; r < per_call; ++r) specs[r].counter = static_cast<uint64_t>(call * per_call + r);
    std::vector<RowSample> out;
    ASSERT_TRUE(h->run(logits, specs, &out).ok());
    for (const RowSample& o : out) {
      ASSERT_GE(o.id, 0);
      ASSERT_LT(o.id, vocab);
      ++counts[o.id];
    }
  }
  const double n = static_cast<double>(per_call * calls);
  double chi2 = 0.0;
  std::string table;
  for (int64_t i = 0; i < vocab; ++i) {
    double p = 0.0;
    for (size_t k = 0; k < allowed.ids.size(); ++k)
      if (allowed.ids[k] == i) p = allowed.probs[k];
    if (counts[i] > 0 || p * n > 0.01) table += StrCat() << " [" << i << "] " << counts[i] << "/" << p * n;
    if (p == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " is filtered out";
      continue;
    }
    chi2 += (counts[i] - p * n) * (counts[i] - p * n) / (p * n);
  }
  std::printf("[distribution] chi2 %.2f over %zu kept tokens (limit %.1f):%s\n", chi2, allowed.ids.size(), max_chi2,
              table.c_str());
  EXPECT_LT(chi2, max_chi2) << table;
}

TEST(DeviceSamplerDraw, FrequenciesMatchTheFilteredSoftmax) {
  DS_SKIP_WITHOUT_GPU();
  const std::vector<float> row = {1.0f, 2.0f, -3.0f, 0.5f, 1.5f, 0.0f, -0.5f, -1.0f};
  // Full softmax (7 dof), and top-k 6 + top-p 0.95 + min-p 0.02 (<= 5 dof). Limits
  // are far beyond the 1e-6 tail of chi-square at these dof.
  check_distribution(row, sampled(1.0f, -1, 1.0f, 0.0f, 1234, 0), 45.0);
  check_distribution(row, sampled(0.9f, 6, 0.95f, 0.02f, 99, 0), 40.0);
}

// Likely tokens spread over a larger row (vocab not a multiple of 4), so the
// inverse CDF crosses tiles and the small-top-k path sorts a gathered set.
TEST(DeviceSamplerDraw, FrequenciesMatchOnASpreadRow) {
  DS_SKIP_WITHOUT_GPU();
  std::vector<float> row(4099, -30.0f);
  const int32_t ids[] = {3, 130, 257, 1000, 1801, 2560, 3333, 4098};
  const float vals[] = {0.5f, 1.0f, -0.5f, 2.0f, 1.5f, 0.0f, 1.0f, 0.25f};
  for (int i = 0; i < 8; ++i) row[ids[i]] = vals[i];
  check_distribution(row, sampled(1.0f, -1, 1.0f, 0.0f, 5, 0), 45.0);       // generic path, no filter
  check_distribution(row, sampled(0.8f, 5, 0.9f, 0.0f, 6, 0), 40.0);        // gathered top-k, top-p
  check_distribution(row, sampled(1.2f, 1500, 0.97f, 0.1f, 7, 0), 45.0);    // generic top-k + top-p + min-p
}

TEST(DeviceSamplerDraw, Cost256RowsVocab152k) {
  DS_SKIP_WITHOUT_GPU();
  const int64_t vocab = 152064, rows = 256;
  auto h = SamplerHarness::create(vocab, rows);
  ASSERT_TRUE(h);
  const std::vector<float> logits = random_logits(rows, vocab, 5, 3.0f);
  auto s = Stream::create();
  ASSERT_TRUE(s.ok());
  auto dev = DeviceBuffer::allocate(logits.size() * sizeof(float));
  ASSERT_TRUE(dev.ok());
  ASSERT_TRUE(dev->copy_from_host(logits.data(), logits.size() * sizeof(float)).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the pageable copy's DMA may still be in flight
  struct Config {
    const char* name;
    RowSampling spec;
  } configs[] = {{"greedy", sampled(0.0f, -1, 1.0f, 0.0f, 1, 0)},
                 {"T=0.8 top_k=50 top_p=0.9", sampled(0.8f, 50, 0.9f, 0.0f, 1, 0)},
                 {"T=1 top_p=0.9", sampled(1.0f, -1, 0.9f, 0.0f, 1, 0)},
                 {"T=1 (no filter)", sampled(1.0f, -1, 1.0f, 0.0f, 1, 0)},
                 {"T=1 top_k=2000 top_p=0.95", sampled(1.0f, 2000, 0.95f, 0.0f, 1, 0)},
                 {"T=0.7 top_k=20 min_p=0.05 logprobs=5", sampled(0.7f, 20, 1.0f, 0.05f, 1, 0)},
                 {"T=0.6 top_p=0.95", {}}};
  configs[5].spec.logprobs = 5;
  configs[6].spec = sampled(0.6f, -1, 0.95f, 0.0f, 1, 0);  // the R1 model card's
  auto per_row = SamplerHarness::create(vocab, rows, false);  // the per-row kernel only, for comparison
  ASSERT_TRUE(per_row);
  for (int64_t n : {int64_t{16}, int64_t{64}, rows})
    for (int kernel = 0; kernel < (n < rows ? 2 : 1); ++kernel)
    for (const Config& c : configs) {
      DeviceSampler& sampler = kernel == 0 ? h->sampler() : per_row->sampler();
      std::vector<RowSampling> specs(static_cast<size_t>(n), c.spec);
      std::vector<RowSample> out;
      std::vector<double> ms;
      for (int it = 0; it < 12; ++it) {
        for (int64_t r = 0; r < n; ++r) specs[r].counter = static_cast<uint64_t>(it * n + r);
        const auto t0 = std::chrono::steady_clock::now();
        Status st = sampler.sample(static_cast<float*>(dev->data()), specs, &out, s->get());
        const auto t1 = std::chrono::steady_clock::now();
        ASSERT_TRUE(st.ok()) << st.message();
        if (it >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      std::printf("[bench] DeviceSampler::sample %lld rows x vocab %lld, %s%s: median %.3f ms, min %.3f ms\n",
                  static_cast<long long>(n), static_cast<long long>(vocab), c.name,
                  kernel == 0 ? "" : " (per-row kernel only)", ms[ms.size() / 2], ms.front());
      for (int64_t r = 0; r < n; ++r) ASSERT_TRUE(out[r].id >= 0 && out[r].id < vocab);
    }
}

}  // namespace
}  // namespace ds::cuda::testing
