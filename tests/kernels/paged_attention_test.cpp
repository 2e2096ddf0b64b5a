// Paged KV write + paged attention against dense causal attention, over page
// boundaries, GQA ratios 1..8, head_dim 64/128, several sequences with
// different cached lengths in one step, shuffled page tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/ref/paged_attention.h"
#include "tests/kernels/random_inputs.h"

namespace ds::ref {
namespace {

float round_to(float v, DType t) {
  if (t == DType::kBF16) return bf16_to_f32(f32_to_bf16(v));
  if (t == DType::kF16) return f16_to_f32(f32_to_f16(v));
  return v;
}

struct SeqSpec {
  int cached;
  int fresh;
};

void run_case(int ratio, int kv_heads, int head_dim, int page_size, DType kv_dtype, const std::vector<SeqSpec>& specs,
              uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "ratio " << ratio << " kv_heads " << kv_heads << " head_dim " << head_dim
                                  << " page " << page_size << " dtype " << dtype_name(kv_dtype));
  const int heads = ratio * kv_heads, kw = kv_heads * head_dim;
  // Pool with shuffled page ids.
  int total_pages = 0;
  for (const auto& s : specs) total_pages += (s.cached + s.fresh + page_size - 1) / page_size;
  total_pages += 3;
  std::vector<int32_t> ids(total_pages);
  for (int i = 0; i < total_pages; ++i) ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), std::mt19937_64(seed));
  std::vector<std::vector<int32_t>> tables;
  size_t next = 0;
  for (const auto& s : specs) {
    const int n = (s.cached + s.fresh + page_size - 1) / page_size;
    tables.emplace_back(ids.begin() + next, ids.begin() + next + n);
    next += n;
  }
  PagedKvLayer layer;
  const size_t slots = static_cast<size_t>(total_pages) * page_size * kv_heads * head_dim;
  std::vector<uint8_t> kpool(slots * dtype_size(kv_dtype)), vpool(slots * dtype_size(kv_dtype));
  layer.k = kpool.data();
  layer.v = vpool.data();
  layer.dtype = kv_dtype;
  layer.num_pages = total_pages;
  layer.page_size = page_size;
  layer.num_kv_heads = kv_heads;
  layer.k_dim = layer.v_dim = head_dim;

  // Full histories.
  std::vector<std::vector<float>> K, V;
  for (size_t i = 0; i < specs.size(); ++i) {
    const int L = specs[i].cached + specs[i].fresh;
    K.push_back(rnd(static_cast<size_t>(L) * kw, seed * 31 + i));
    V.push_back(rnd(static_cast<size_t>(L) * kw, seed * 37 + i));
  }
  // Step 1: every sequence's cached prefix, written as one earlier step.
  {
    std::vector<float> k, v;
    std::vector<AttnSequence> seqs;
    int64_t t = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      const int n = specs[i].cached;
      k.insert(k.end(), K[i].begin(), K[i].begin() + n * kw);
      v.insert(v.end(), V[i].begin(), V[i].begin() + n * kw);
      seqs.push_back({t, n, 0, tables[i].data(), static_cast<int64_t>(tables[i].size())});
      t += n;
    }
    ASSERT_TRUE(kv_cache_write(k.data(), v.data(), t, seqs.data(), static_cast<int64_t>(seqs.size()), layer).ok());
  }
  // Step 2: the fresh tokens, then attention.
  std::vector<float> k, v;
  std::vector<AttnSequence> seqs;
  int64_t T = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const int c = specs[i].cached, n = specs[i].fresh;
    k.insert(k.end(), K[i].begin() + c * kw, K[i].begin() + (c + n) * kw);
    v.insert(v.end(), V[i].begin() + c * kw, V[i].begin() + (c + n) * kw);
    seqs.push_back({T, n, c, tables[i].data(), static_cast<int64_t>(tables[i].size())});
    T += n;
  }
  ASSERT_TRUE(kv_cache_write(k.data(), v.data(), T, seqs.data(), static_cast<int64_t>(seqs.size()), layer).ok());
  auto q = rnd(static_cast<size_t>(T) * heads * head_dim, seed + 99);
  std::vector<float> out(static_cast<size_t>(T) * heads * head_dim, -7.0f);
  PagedAttentionParams p{heads, kv_heads, head_dim, head_dim, 1.0 / std::sqrt(static_cast<double>(head_dim))};
  ASSERT_TRUE(paged_attention(q.data(), T, seqs.data(), static_cast<int64_t>(seqs.size()), layer, p, out.data()).ok());

  // Dense causal reference in float64 on the (dtype-rounded) K/V.
  double max_err = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    for (int t = 0; t < specs[i].fresh; ++t) {
      const int64_t row = seqs[i].first_token + t;
      const int ctx = specs[i].cached + t + 1;
      for (int h = 0; h < heads; ++h) {
        const int kvh = h / ratio;
        std::vector<double> s(ctx);
        double mx = -1e300;
        for (int j = 0; j < ctx; ++j) {
          double d = 0;
          for (int e = 0; e < head_dim; ++e)
            d += static_cast<double>(q[(row * heads + h) * head_dim + e]) * round_to(K[i][(j * kv_heads + kvh) * head_dim + e], kv_dtype);
          s[j] = d * p.scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int e = 0; e < head_dim; ++e) {
          double o = 0;
          for (int j = 0; j < ctx; ++j) o += s[j] / z * round_to(V[i][(j * kv_heads + kvh) * head_dim + e], kv_dtype);
          max_err = std::max(max_err, std::abs(o - out[(row * heads + h) * head_dim + e]));
        }
      }
    }
  }
  EXPECT_LT(max_err, 2e-5);
}

class PagedAttentionGrid : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(PagedAttentionGrid, MatchesDenseCausal) {
  const auto [ratio, head_dim, page_size] = GetParam();
  const std::vector<SeqSpec> specs{{0, 5}, {13, 1}, {page_size, 3}, {2, 7}, {page_size - 1, 2}};
  for (int kv_heads : {1, 2}) run_case(ratio, kv_heads, head_dim, page_size, DType::kF32, specs, ratio * 100 + head_dim + page_size);
}

INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionGrid,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4, 8), ::testing::Values(64, 128),
                                            ::testing::Values(4, 16)));

TEST(PagedAttention, HalfPrecisionCaches) {
  const std::vector<SeqSpec> specs{{5, 4}, {0, 3}};
  run_case(2, 2, 64, 4, DType::kBF16, specs, 5);
  run_case(4, 1, 128, 16, DType::kF16, specs, 6);
}

TEST(PagedAttention, HugeLogitsStayFinite) {
  // Large q·k: a naive exp would overflow; the max-subtracted softmax must not.
  PagedKvLayer layer;
  std::vector<float> kpool(4 * 2, 0.0f), vpool(4 * 2, 0.0f);
  layer.k = kpool.data();
  layer.v = vpool.data();
  layer.num_pages = 1;
  layer.page_size = 4;
  layer.num_kv_heads = 1;
  layer.k_dim = layer.v_dim = 2;
  int32_t page = 0;
  std::vector<float> k{1e4f, 0, 1e4f, 0}, v{1, 2, 3, 4};
  AttnSequence s{0, 2, 0, &page, 1};
  ASSERT_TRUE(kv_cache_write(k.data(), v.data(), 2, &s, 1, layer).ok());
  std::vector<float> q{1e4f, 0, 1e4f, 0}, out(4);
  ASSERT_TRUE(paged_attention(q.data(), 2, &s, 1, layer, PagedAttentionParams{1, 1, 2, 2, 1.0}, out.data()).ok());
  for (float o : out) EXPECT_TRUE(std::isfinite(o));
  EXPECT_FLOAT_EQ(out[2], 2.0f);  // equal scores: mean of v rows
  EXPECT_FLOAT_EQ(out[3], 3.0f);
}

TEST(PagedAttention, RejectsBadBatches) {
  PagedKvLayer layer;
  std::vector<float> pool(2 * 4 * 2);
  layer.k = layer.v = pool.data();
  layer.num_pages = 2;
  layer.page_size = 4;
  layer.num_kv_heads = 1;
  layer.k_dim = layer.v_dim = 2;
  std::vector<float> x(2 * 8), out(2 * 8);
  int32_t pages[2] = {0, 1};
  PagedAttentionParams p{1, 1, 2, 2, 1.0};
  AttnSequence too_long{0, 2, 7, pages, 2};  // 9 tokens need 3 pages
  EXPECT_FALSE(paged_attention(x.data(), 2, &too_long, 1, layer, p, out.data()).ok());
  int32_t bad_page[1] = {5};
  AttnSequence bad{0, 1, 0, bad_page, 1};
  EXPECT_FALSE(kv_cache_write(x.data(), x.data(), 1, &bad, 1, layer).ok());
  AttnSequence overlap[2] = {{0, 2, 0, pages, 1}, {1, 1, 0, pages + 1, 1}};
  EXPECT_FALSE(paged_attention(x.data(), 2, overlap, 2, layer, p, out.data()).ok());
  AttnSequence ok{0, 2, 0, pages, 1};
  EXPECT_FALSE(paged_attention(x.data(), 2, &ok, 1, layer, PagedAttentionParams{3, 2, 2, 2, 1.0}, out.data()).ok());
  EXPECT_FALSE(paged_attention(x.data(), 2, &ok, 1, layer, PagedAttentionParams{1, 1, 4, 4, 1.0}, out.data()).ok());
}

}  // namespace
}  // namespace ds::ref
