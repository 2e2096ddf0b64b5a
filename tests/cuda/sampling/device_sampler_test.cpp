// DeviceSampler vs the CPU sampler: greedy ties, raw logprobs and top-k
// logprobs, penalties (in-place logits bit-exact vs apply_penalties), top-k=1,
// mixed batches, argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "kernels/cuda/sampling/sampling_kernel.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/engine/sampler.h"
#include "runtime/scheduler/token_sampler.h"
#include "tests/cuda/sampling/sampler_cpu_oracle.h"

namespace ds::cuda::testing {
namespace {

#define DS_SKIP_WITHOUT_GPU() \
  if (ds::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device"

const int64_t kVocabs[] = {1984, 32000, 152064, 1001};

RowSampling greedy_row(int32_t logprobs = -1) {
  RowSampling s;
  s.temperature = 0.0f;
  s.logprobs = logprobs;
  return s;
}

// Checks a row's logprob and top list against token_logprob / top_logprobs.
void expect_logprobs(const float* raw, int64_t vocab, const RowSampling& s, const RowSample& got, const char* what) {
  const double lse = logsumexp(raw, vocab);
  const TokenLogprob want = token_logprob(raw, vocab, got.id, lse);
  EXPECT_NEAR(got.logprob, want.logprob, 1e-4) << what << " vocab " << vocab << " id " << got.id;
  const std::vector<TokenLogprob> top = top_logprobs(raw, vocab, s.logprobs, lse);
  ASSERT_EQ(got.top.size(), top.size()) << what << " vocab " << vocab;
  for (size_t k = 0; k < top.size(); ++k) {
    EXPECT_EQ(got.top[k].first, top[k].id) << what << " vocab " << vocab << " rank " << k;
    EXPECT_NEAR(got.top[k].second, top[k].logprob, 1e-4) << what << " vocab " << vocab << " rank " << k;
  }
}

TEST(DeviceSamplerArgs, CreateRejectsBadSizes) {
  EXPECT_FALSE(DeviceSampler::create(0, 4).ok());
  EXPECT_FALSE(DeviceSampler::create(-5, 4).ok());
  EXPECT_FALSE(DeviceSampler::create(1000, 0).ok());
  EXPECT_FALSE(DeviceSampler::create(int64_t{1} << 32, 4).ok());
}

// Host only: CTAs per row of the cluster sampler (split_sampling_kernel.cu): at
// most two CTAs per SM over all rows, at least one group of 4 tokens per CTA.
TEST(DeviceSamplerArgs, ClusterSplits) {
  EXPECT_EQ(sampling_cluster_splits(1, 152064, 132), 8);
  EXPECT_EQ(sampling_cluster_splits(33, 152064, 132), 8);   // 264 CTAs
  EXPECT_EQ(sampling_cluster_splits(34, 152064, 132), 4);
  EXPECT_EQ(sampling_cluster_splits(64, 152064, 132), 4);
  EXPECT_EQ(sampling_cluster_splits(100, 152064, 132), 2);
  EXPECT_EQ(sampling_cluster_splits(133, 152064, 132), 1);  // the per-row kernel
  EXPECT_EQ(sampling_cluster_splits(16, 30, 132), 8);       // 8 groups: one per CTA
  EXPECT_EQ(sampling_cluster_splits(16, 29, 132), 8);       // 8 groups, the last one partial
  EXPECT_EQ(sampling_cluster_splits(16, 28, 132), 4);       // 7 groups
  EXPECT_EQ(sampling_cluster_splits(16, 6, 132), 2);        // 2 groups
  EXPECT_EQ(sampling_cluster_splits(16, 4, 132), 1);        // 1 group
  EXPECT_EQ(sampling_cluster_splits(1, 152064, 1), 2);      // 2 CTAs on one SM
}

TEST(DeviceSampler, GreedyMatchesCpuArgmaxWithTies) {
  DS_SKIP_WITHOUT_GPU();
  for (int64_t vocab : kVocabs) {
    const int64_t rows = 6;
    auto h = SamplerHarness::create(vocab, rows);
    ASSERT_TRUE(h);
    std::vector<float> logits = random_logits(rows, vocab, 11 + static_cast<uint32_t>(vocab), 3.0f, 0.25f);
    // Row 0: two equal maxima; row 1: all equal; row 2: +0/-0 maxima among negatives;
    // row 3: the maximum in the last (partial) group; rows 4-5: quantized noise.
    float* r0 = &logits[0];
    r0[vocab / 2] = 100.0f;
    r0[vocab / 3] = 100.0f;
    std::fill(logits.begin() + vocab, logits.begin() + 2 * vocab, 1.5f);
    float* r2 = &logits[2 * vocab];
    for (int64_t i = 0; i < vocab; ++i) r2[i] = -std::fabs(r2[i]) - 1.0f;
    r2[vocab - 7] = 0.0f;
    r2[vocab - 9] = -0.0f;
    logits[3 * vocab + vocab - 1] = 50.0f;
    std::vector<RowSampling> specs(rows, greedy_row());
    std::vector<RowSample> out;
    Status st = h->run(logits, specs, &out);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_EQ(out.size(), static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r)
      EXPECT_EQ(out[r].id, argmax(&logits[r * vocab], vocab)) << "vocab " << vocab << " row " << r;
  }
}

// Greedy rows without logprobs take the split kernel (greedy_kernel.cu); the
// same rows asking for logprobs take the per-row kernel. Both must give the
// CPU's argmax: ties (lowest id), NaNs (ignored; 0 for an all-NaN row), -inf
// rows, maxima at slice boundaries, one split (small vocab) up to the cap
// (large vocab), many rows, and again on the next call (the counters reset).
TEST(DeviceSampler, SplitGreedyMatchesPerRowKernelAndCpu) {
  DS_SKIP_WITHOUT_GPU();
  for (int64_t vocab : {int64_t{1001}, int64_t{8193}, int64_t{152064}, int64_t{1} << 20}) {
    const int64_t rows = 70;
    auto h = SamplerHarness::create(vocab, rows);
    ASSERT_TRUE(h);
    std::vector<float> logits = random_logits(rows, vocab, 5 + static_cast<uint32_t>(vocab), 3.0f, 0.25f);
    const float nan = std::nanf("");
    const int splits = greedy_splits(vocab);
    const int64_t slice = (vocab + 3) / 4 / splits * 4;  // a token near a slice boundary
    for (int64_t i = 0; i < vocab; ++i) logits[1 * vocab + i] = nan;                   // row 1: all NaN
    for (int64_t i = 0; i < vocab; ++i) logits[2 * vocab + i] = -INFINITY;             // row 2: all -inf
    logits[3 * vocab + 5] = nan, logits[3 * vocab + vocab - 2] = 40.0f;                 // row 3: NaN + late max
    logits[4 * vocab + slice] = 60.0f, logits[4 * vocab + slice - 1] = 60.0f;           // row 4: tie across a boundary
    logits[5 * vocab + vocab - 1] = 60.0f, logits[5 * vocab + 0] = 60.0f;               // row 5: first and last
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<RowSample> fast, per_row;
      Status st = h->run(logits, std::vector<RowSampling>(rows, greedy_row()), &fast);
      ASSERT_TRUE(st.ok()) << st.message();
      st = h->run(logits, std::vector<RowSampling>(rows, greedy_row(0)), &per_row);
      ASSERT_TRUE(st.ok()) << st.message();
      ASSERT_EQ(fast.size(), static_cast<size_t>(rows));
      ASSERT_EQ(per_row.size(), static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        EXPECT_EQ(fast[r].id, per_row[r].id) << "vocab " << vocab << " row " << r << " pass " << pass;
        if (r != 1) EXPECT_EQ(fast[r].id, argmax(&logits[r * vocab], vocab)) << "vocab " << vocab << " row " << r;
        EXPECT_TRUE(fast[r].top.empty());
      }
      EXPECT_EQ(fast[1].id, 0) << "an all-NaN row gives id 0";
      EXPECT_EQ(fast[2].id, 0) << "an all -inf row gives the lowest id";
    }
  }
}

TEST(DeviceSampler, RawLogprobsAndTopLogprobsMatchCpu) {
  DS_SKIP_WITHOUT_GPU();
  const int32_t ks[] = {20, 1, 0, 7, 20, 5};
  for (int64_t vocab : kVocabs) {
    const int64_t rows = 6;
    auto h = SamplerHarness::create(vocab, rows);
    ASSERT_TRUE(h);
    // Quantized logits: exact ties inside and at the edge of the top-k lists.
    std::vector<float> logits = random_logits(rows, vocab, 23 + static_cast<uint32_t>(vocab), 2.0f, 0.5f);
    // Row 4: continuous values (no ties); row 5: sampled, not greedy.
    std::vector<float> smooth = random_logits(1, vocab, 5, 4.0f);
    std::copy(smooth.begin(), smooth.end(), logits.begin() + 4 * vocab);
    std::vector<RowSampling> specs;
    for (int64_t r = 0; r < rows; ++r) specs.push_back(greedy_row(ks[r]));
    specs[5].temperature = 0.9f;
    specs[5].top_k = 30;
    specs[5].seed = 77;
    std::vector<RowSample> out;
    Status st = h->run(logits, specs, &out);
    ASSERT_TRUE(st.ok()) << st.message();
    for (int64_t r = 0; r < rows; ++r) {
      const float* raw = &logits[r * vocab];
      if (r < 5) {
        EXPECT_EQ(out[r].id, argmax(raw, vocab)) << "vocab " << vocab << " row " << r;
      }
      expect_logprobs(raw, vocab, specs[r], out[r], "logprobs row");
    }
  }
}

// Random histories (repeated tokens, prompt-only, output-only, out-of-range ids)
// with every penalty combination; the in-place logits must equal the CPU's.
TEST(DeviceSampler, PenaltiesMatchCpuBitExact) {
  DS_SKIP_WITHOUT_GPU();
  for (int64_t vocab : kVocabs) {
    const int64_t rows = 12;
    auto h = SamplerHarness::create(vocab, rows);
    ASSERT_TRUE(h);
    const std::vector<float> logits = random_logits(rows, vocab, 31 + static_cast<uint32_t>(vocab), 2.0f);
    std::mt19937 rng(static_cast<uint32_t>(vocab));
    std::vector<std::vector<int32_t>> prompts(rows), outputs(rows);
    std::vector<RowSampling> specs(rows);
    const float reps[] = {1.0f, 1.3f, 0.8f};
    const float freqs[] = {0.0f, 0.5f, -0.3f};
    const float press[] = {0.0f, 0.7f};
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = &logits[r * vocab];
      const int32_t best = argmax(row, vocab);
      // Histories drawn from a small pool around the best token: many repeats,
      // and the penalties decide the greedy pick.
      std::vector<int32_t> pool = {best, static_cast<int32_t>((best + 1) % vocab), 0,
                                   static_cast<int32_t>(vocab - 1)};
      for (int k = 0; k < 6; ++k) pool.push_back(static_cast<int32_t>(rng() % vocab));
      const int kind = static_cast<int>(r % 3);  // 0: prompt only, 1: output only, 2: both
      const int np = kind == 1 ? 0 : 5 + static_cast<int>(rng() % 40);
      const int no = kind == 0 ? 0 : 5 + static_cast<int>(rng() % 40);
      for (int k = 0; k < np; ++k) prompts[r].push_back(pool[rng() % pool.size()]);
      for (int k = 0; k < no; ++k) outputs[r].push_back(pool[rng() % pool.size()]);
      if (r == 5) {
        prompts[r].push_back(-1);
        outputs[r].push_back(static_cast<int32_t>(vocab + 5));
      }
      RowSampling& s = specs[r];
      s.temperature = 0.0f;
      s.repetition_penalty = reps[r % 3];
      s.frequency_penalty = freqs[(r / 3) % 3];
      s.presence_penalty = press[(r / 2) % 2];
      if (s.repetition_penalty == 1.0f && s.frequency_penalty == 0.0f && s.presence_penalty == 0.0f)
        s.repetition_penalty = 1.5f;
      s.logprobs = r % 2 == 0 ? 3 : -1;
      s.prompt = prompts[r].data();
      s.prompt_len = static_cast<int64_t>(prompts[r].size());
      s.output = outputs[r].data();
      s.output_len = static_cast<int64_t>(outputs[r].size());
    }
    for (int pass = 0; pass < 2; ++pass) {  // the second call checks the scratch was left clean
      std::vector<RowSample> out;
      std::vector<float> after;
      Status st = h->run(logits, specs, &out, &after);
      ASSERT_TRUE(st.ok()) << st.message();
      for (int64_t r = 0; r < rows; ++r) {
        const float* raw = &logits[r * vocab];
        const std::vector<float> want = cpu_penalized(raw, vocab, specs[r]);
        int64_t mismatches = 0, first = -1;
        for (int64_t i = 0; i < vocab; ++i)
          if (std::memcmp(&want[i], &after[r * vocab + i], sizeof(float)) != 0 && mismatches++ == 0) first = i;
        EXPECT_EQ(mismatches, 0) << "vocab " << vocab << " row " << r << " pass " << pass << " first token "
                                 << first << ": gpu " << after[r * vocab + std::max<int64_t>(first, 0)] << " cpu "
                                 << want[std::max<int64_t>(first, 0)];
        EXPECT_EQ(out[r].id, argmax(want.data(), vocab)) << "vocab " << vocab << " row " << r << " pass " << pass;
        if (specs[r].logprobs >= 0) expect_logprobs(raw, vocab, specs[r], out[r], "penalized row (raw logprobs)");
      }
    }
  }
}

// More penalized rows than scratch slots (256): the call is split into launches
// that reuse the zeroed scratch rows.
TEST(DeviceSampler, ManyPenalizedRowsShareTheScratch) {
  DS_SKIP_WITHOUT_GPU();
  const int64_t vocab = 1001, rows = 600;
  auto h = SamplerHarness::create(vocab, rows);
  ASSERT_TRUE(h);
  const std::vector<float> logits = random_logits(rows, vocab, 71, 1.0f);
  std::vector<std::vector<int32_t>> outputs(rows);
  std::vector<RowSampling> specs(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t best = argmax(&logits[r * vocab], vocab);
    outputs[r] = {best, best, static_cast<int32_t>((r * 7) % vocab), best, static_cast<int32_t>((best + 3) % vocab)};
    RowSampling& s = specs[r];
    s.temperature = 0.0f;
    if (r % 5 != 4) {  // every fifth row has no penalties (and takes no scratch slot)
      s.frequency_penalty = 0.4f;
      s.presence_penalty = 0.2f;
      s.repetition_penalty = r % 2 ? 1.3f : 1.0f;
    }
    s.output = outputs[r].data();
    s.output_len = static_cast<int64_t>(outputs[r].size());
  }
  std::vector<RowSample> out;
  std::vector<float> after;
  Status st = h->run(logits, specs, &out, &after);
  ASSERT_TRUE(st.ok()) << st.message();
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> want = cpu_penalized(&logits[r * vocab], vocab, specs[r]);
    EXPECT_EQ(out[r].id, argmax(want.data(), vocab)) << "row " << r;
    EXPECT_EQ(0, std::memcmp(want.data(), &after[r * vocab], vocab * sizeof(float))) << "row " << r;
  }
}

TEST(DeviceSampler, TopK1IsGreedy) {
  DS_SKIP_WITHOUT_GPU();
  const int64_t vocab = 32000, rows = 16;
  auto h = SamplerHarness::create(vocab, rows);
  ASSERT_TRUE(h);
  const std::vector<float> logits = random_logits(rows, vocab, 41, 1.0f, 0.125f);
  std::vector<RowSampling> specs(rows);
  for (int64_t r = 0; r < rows; ++r) {
    specs[r].temperature = 0.5f + 0.25f * static_cast<float>(r);
    specs[r].top_k = 1;
    specs[r].top_p = 0.5f;
    specs[r].seed = static_cast<uint64_t>(r) * 1000003u;
    specs[r].counter = static_cast<uint64_t>(r);
  }
  std::vector<RowSample> out;
  Status st = h->run(logits, specs, &out);
  ASSERT_TRUE(st.ok()) << st.message();
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(out[r].id, argmax(&logits[r * vocab], vocab)) << "row " << r;
}

TEST(DeviceSampler, MixedBatch) {
  DS_SKIP_WITHOUT_GPU();
  const int64_t vocab = 152064, rows = 8;
  auto h = SamplerHarness::create(vocab, 16);
  ASSERT_TRUE(h);
  const std::vector<float> logits = random_logits(rows, vocab, 53, 3.0f);
  std::vector<int32_t> hist = {5, 9, 5, 100, 151999};
  std::vector<RowSampling> specs(rows);
  for (int64_t r = 0; r < rows; ++r) {
    RowSampling& s = specs[r];
    switch (r % 4) {
      case 0: s = greedy_row(); break;
      case 1: s.temperature = 0.8f; s.top_k = 40; s.top_p = 0.9f; break;
      case 2: s = greedy_row(5); break;
      default:
        s.temperature = 1.1f; s.min_p = 0.05f; s.logprobs = 2;
        s.repetition_penalty = 1.2f; s.frequency_penalty = 0.3f;
        s.output = hist.data(); s.output_len = static_cast<int64_t>(hist.size());
    }
    s.seed = 1234 + static_cast<uint64_t>(r);
    s.counter = static_cast<uint64_t>(r) * 7;
  }
  std::vector<RowSample> out;
  Status st = h->run(logits, specs, &out);
  ASSERT_TRUE(st.ok()) << st.message();
  for (int64_t r = 0; r < rows; ++r) {
    const float* raw = &logits[r * vocab];
    const std::vector<float> pen = cpu_penalized(raw, vocab, specs[r]);
    const AllowedSet allowed = cpu_allowed_set(pen.data(), vocab, specs[r]);
    EXPECT_TRUE(allowed.contains(out[r].id)) << "row " << r << " id " << out[r].id << " allowed "
                                             << allowed.ids.size();
    if (specs[r].logprobs >= 0) {
      expect_logprobs(raw, vocab, specs[r], out[r], "mixed batch");
    } else {
      EXPECT_TRUE(out[r].top.empty());
    }
  }
}

TEST(DeviceSampler, RejectsBadCalls) {
  DS_SKIP_WITHOUT_GPU();
  const int64_t vocab = 1001;
  auto h = SamplerHarness::create(vocab, 4);
  ASSERT_TRUE(h);
  const std::vector<float> logits = random_logits(5, vocab, 61);
  std::vector<RowSample> out;
  Status too_many = h->run(logits, std::vector<RowSampling>(5, greedy_row()), &out);
  EXPECT_FALSE(too_many.ok());
  EXPECT_NE(too_many.message().find("max_rows"), std::string::npos) << too_many.message();
  auto expect_bad = [&](RowSampling s, const char* field) {
    std::vector<RowSampling> specs(2, greedy_row());
    specs[1] = s;
    Status st = h->run(logits, specs, &out);
    EXPECT_FALSE(st.ok()) << field;
    EXPECT_NE(st.message().find(field), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("row 1"), std::string::npos) << st.message();
  };
  RowSampling s;
  s.top_p = 0.0f; expect_bad(s, "top_p");
  s = RowSampling(); s.top_p = 1.5f; expect_bad(s, "top_p");
  s = RowSampling(); s.temperature = -1.0f; expect_bad(s, "temperature");
  s = RowSampling(); s.temperature = NAN; expect_bad(s, "temperature");
  s = RowSampling(); s.min_p = 2.0f; expect_bad(s, "min_p");
  s = RowSampling(); s.repetition_penalty = 0.0f; expect_bad(s, "repetition_penalty");
  s = RowSampling(); s.frequency_penalty = INFINITY; expect_bad(s, "frequency_penalty");
  s = RowSampling(); s.logprobs = 21; expect_bad(s, "logprobs");
  s = RowSampling(); s.logprobs = -2; expect_bad(s, "logprobs");
  s = RowSampling(); s.prompt_len = 3; expect_bad(s, "prompt");
  s = RowSampling(); s.output_len = -1; expect_bad(s, "history length");
  EXPECT_FALSE(h->sampler().sample(nullptr, {greedy_row()}, &out, nullptr).ok());
  EXPECT_FALSE(h->sampler().sample(reinterpret_cast<float*>(16), {greedy_row()}, nullptr, nullptr).ok());
  // A good call after the errors still works.
  Status ok = h->run(logits, std::vector<RowSampling>(4, greedy_row()), &out);
  ASSERT_TRUE(ok.ok()) << ok.message();
  for (int r = 0; r < 4; ++r) EXPECT_EQ(out[r].id, argmax(&logits[r * vocab], vocab));
  EXPECT_GT(h->sampler().device_bytes(), static_cast<size_t>(4 * vocab * 4));
}

}  // namespace
}  // namespace ds::cuda::testing
