// embedding, rms_norm, linear, logits, slice and elementwise kernels against
// obvious float64 formulations over a grid of shapes and weight dtypes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/ref/elementwise.h"
#include "kernels/ref/linear.h"
#include "tests/kernels/random_inputs.h"

namespace ds::ref {
namespace {

// Weights stored in `t`; returns the bytes and the values they hold (rounded).
struct Stored {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};
Stored store(const std::vector<float>& v, DType t) {
  Stored s;
  s.bytes.resize(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    float r = v[i];
    if (t == DType::kBF16) {
      uint16_t h = f32_to_bf16(v[i]);
      std::memcpy(s.bytes.data() + 2 * i, &h, 2);
      r = bf16_to_f32(h);
    } else if (t == DType::kF16) {
      uint16_t h = f32_to_f16(v[i]);
      std::memcpy(s.bytes.data() + 2 * i, &h, 2);
      r = f16_to_f32(h);
    } else {
      std::memcpy(s.bytes.data() + 4 * i, &v[i], 4);
    }
    s.values.push_back(r);
  }
  return s;
}

class LinearGrid : public ::testing::TestWithParam<std::tuple<DType, int, int, int, bool>> {};

TEST_P(LinearGrid, MatchesNaive) {
  const auto [dt, rows, in, out, bias] = GetParam();
  auto x = rnd(static_cast<size_t>(rows * in), 1);
  Stored w = store(rnd(static_cast<size_t>(out * in), 2), dt);
  Stored b = store(rnd(static_cast<size_t>(out), 3), dt);
  std::vector<float> y(static_cast<size_t>(rows * out));
  ASSERT_TRUE(linear(x.data(), w.bytes.data(), dt, bias ? b.bytes.data() : nullptr, dt, LinearParams{rows, in, out}, y.data()).ok());
  for (int r = 0; r < rows; ++r)
    for (int n = 0; n < out; ++n) {
      double e = bias ? b.values[n] : 0.0;
      for (int k = 0; k < in; ++k) e += static_cast<double>(x[r * in + k]) * w.values[n * in + k];
      EXPECT_NEAR(y[r * out + n], e, 1e-5 * (1 + std::sqrt(in))) << r << "," << n;
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearGrid,
                         ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16, DType::kF16),
                                            ::testing::Values(1, 5), ::testing::Values(1, 7, 64),
                                            ::testing::Values(1, 9), ::testing::Bool()));

// Large enough to be split across threads: every row must equal the same row
// computed alone (inline), bit for bit.
TEST(Linear, ThreadedResultIsIndependentOfSplitting) {
  const int rows = 6, in = 256, out = 700;
  auto x = rnd(rows * in, 11);
  Stored w = store(rnd(out * in, 12), DType::kBF16);
  std::vector<float> all(rows * out), one(out);
  ASSERT_TRUE(linear(x.data(), w.bytes.data(), DType::kBF16, nullptr, DType::kF32, LinearParams{rows, in, out}, all.data()).ok());
  for (int r = 0; r < rows; ++r) {
    ASSERT_TRUE(linear(x.data() + r * in, w.bytes.data(), DType::kBF16, nullptr, DType::kF32, LinearParams{1, in, out}, one.data()).ok());
    for (int n = 0; n < out; ++n) ASSERT_EQ(all[r * out + n], one[n]) << r << "," << n;
  }
}

// The fused residual (ds-fuse-residual-add) gives exactly the floats of the
// linear followed by ref::add, out of place and in place (residual == out).
TEST(Linear, ResidualMatchesSeparateAdd) {
  const int rows = 5, in = 96, out = 300;
  auto x = rnd(rows * in, 21);
  auto r = rnd(rows * out, 22);
  Stored w = store(rnd(out * in, 23), DType::kBF16);
  Stored b = store(rnd(out, 24), DType::kBF16);
  const LinearParams p{rows, in, out};
  std::vector<float> lin(rows * out), want(rows * out), fused(rows * out);
  ASSERT_TRUE(linear(x.data(), w.bytes.data(), DType::kBF16, b.bytes.data(), DType::kBF16, p, lin.data()).ok());
  add(r.data(), lin.data(), rows * out, want.data());
  ASSERT_TRUE(linear(x.data(), w.bytes.data(), DType::kBF16, b.bytes.data(), DType::kBF16, p, fused.data(), r.data()).ok());
  std::vector<float> in_place = r;
  ASSERT_TRUE(
      linear(x.data(), w.bytes.data(), DType::kBF16, b.bytes.data(), DType::kBF16, p, in_place.data(), in_place.data()).ok());
  int changed = 0;
  for (int i = 0; i < rows * out; ++i) {
    ASSERT_EQ(fused[i], want[i]) << i;
    ASSERT_EQ(in_place[i], want[i]) << i;
    changed += fused[i] != lin[i];
  }
  EXPECT_GT(changed, rows * out / 2);  // the residual was added
}

TEST(Linear, RejectsBadInput) {
  float x = 1, y;
  int32_t w = 1;
  EXPECT_FALSE(linear(&x, &w, DType::kI32, nullptr, DType::kF32, LinearParams{1, 1, 1}, &y).ok());
  EXPECT_FALSE(linear(&x, &x, DType::kF32, nullptr, DType::kF32, LinearParams{1, 0, 1}, &y).ok());
}

TEST(Logits, GathersRows) {
  const int T = 4, H = 6, V = 5;
  auto x = rnd(T * H, 4);
  Stored w = store(rnd(V * H, 5), DType::kBF16);
  std::vector<int32_t> rows{3, 0, 3};
  std::vector<float> out(rows.size() * V);
  ASSERT_TRUE(logits(x.data(), T, H, rows.data(), 3, w.bytes.data(), DType::kBF16, V, out.data()).ok());
  for (size_t i = 0; i < rows.size(); ++i)
    for (int v = 0; v < V; ++v) {
      double e = 0;
      for (int k = 0; k < H; ++k) e += static_cast<double>(x[rows[i] * H + k]) * w.values[v * H + k];
      EXPECT_NEAR(out[i * V + v], e, 1e-5);
    }
  rows = {4};
  auto st = logits(x.data(), T, H, rows.data(), 1, w.bytes.data(), DType::kBF16, V, out.data());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("token 4"), std::string::npos);
}

TEST(Embedding, LooksUpRowsAndChecksIds) {
  const int V = 7, H = 3;
  Stored table = store(rnd(V * H, 6), DType::kF16);
  std::vector<int32_t> ids{6, 0, 6, 2};
  std::vector<float> out(ids.size() * H);
  ASSERT_TRUE(embedding(ids.data(), 4, table.bytes.data(), DType::kF16, V, H, out.data()).ok());
  for (size_t t = 0; t < ids.size(); ++t)
    for (int i = 0; i < H; ++i) EXPECT_EQ(out[t * H + i], table.values[ids[t] * H + i]);
  ids[2] = 7;
  EXPECT_FALSE(embedding(ids.data(), 4, table.bytes.data(), DType::kF16, V, H, out.data()).ok());
  ids[2] = -1;
  EXPECT_FALSE(embedding(ids.data(), 4, table.bytes.data(), DType::kF16, V, H, out.data()).ok());
}

TEST(RmsNorm, MatchesFormula) {
  for (int H : {1, 8, 33, 128}) {
    const int R = 3;
    auto x = rnd(R * H, H);
    Stored w = store(rnd(H, H + 1), DType::kBF16);
    std::vector<float> y(R * H);
    ASSERT_TRUE(rms_norm(x.data(), R, H, w.bytes.data(), DType::kBF16, 1e-6, y.data()).ok());
    for (int r = 0; r < R; ++r) {
      double ss = 0;
      for (int i = 0; i < H; ++i) ss += static_cast<double>(x[r * H + i]) * x[r * H + i];
      const double inv = 1 / std::sqrt(ss / H + 1e-6);
      for (int i = 0; i < H; ++i) EXPECT_NEAR(y[r * H + i], x[r * H + i] * inv * w.values[i], 1e-5);
    }
  }
}

TEST(Elementwise, SiluMulAddSlice) {
  auto a = rnd(12, 7), b = rnd(12, 8);
  std::vector<float> o(12);
  silu(a.data(), 12, o.data());
  for (int i = 0; i < 12; ++i) EXPECT_NEAR(o[i], a[i] / (1 + std::exp(-static_cast<double>(a[i]))), 1e-6);
  mul(a.data(), b.data(), 12, o.data());
  for (int i = 0; i < 12; ++i) EXPECT_FLOAT_EQ(o[i], a[i] * b[i]);
  add(a.data(), b.data(), 12, o.data());
  for (int i = 0; i < 12; ++i) EXPECT_FLOAT_EQ(o[i], a[i] + b[i]);
  // silu saturates without overflow
  float big[2] = {-100.0f, 100.0f}, sb[2];
  silu(big, 2, sb);
  EXPECT_NEAR(sb[0], 0.0f, 1e-30);
  EXPECT_EQ(sb[1], 100.0f);
  std::vector<float> s(3 * 2);
  ASSERT_TRUE(slice_cols(a.data(), 3, 4, 1, 2, s.data()).ok());
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 2; ++c) EXPECT_EQ(s[r * 2 + c], a[r * 4 + 1 + c]);
  EXPECT_FALSE(slice_cols(a.data(), 3, 4, 3, 2, s.data()).ok());
}

}  // namespace
}  // namespace ds::ref
