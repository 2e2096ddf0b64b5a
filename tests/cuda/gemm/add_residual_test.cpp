// add_residual (kernels/cuda/gemm/add_residual.h) vs the same sum on the host:
// bf16, f16 and f32; vector and scalar paths (aligned and misaligned pointers
// and pitches), tails of n not a multiple of the vector, in place, padding
// columns untouched, and argument errors. The host computes exactly what the
// kernel does (f32 sum, one round-to-nearest-even), so results match bit for bit.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/gemm/add_residual.h"
#include "runtime/common/dtype.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda {
namespace {

class AddResidualTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device";
    auto s = Stream::create();
    ASSERT_TRUE(s.ok()) << s.status().message();
    stream_ = std::move(s.value());
  }
  Stream stream_;
};

size_t esize(DType t) { return t == DType::kF32 ? 4 : 2; }

float load(DType t, const uint8_t* p) {
  if (t == DType::kF32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

void store(DType t, uint8_t* p, float v) {
  if (t == DType::kF32) {
    std::memcpy(p, &v, 4);
    return;
  }
  const uint16_t h = t == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// y and residual live in one buffer each at byte offsets y_off / r_off (in
// elements), [rows, ld] with n used columns; in_place: residual = y.
void check(DType t, int64_t rows, int64_t n, int64_t ld, int64_t y_off, int64_t r_off, bool in_place,
           cudaStream_t stream) {
  const size_t es = esize(t);
  const size_t elems = static_cast<size_t>(rows * ld);
  std::mt19937 rng(static_cast<uint32_t>(rows * 131 + n * 7 + ld + y_off * 3 + r_off + (in_place ? 1 : 0)));
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  std::vector<uint8_t> y((elems + static_cast<size_t>(y_off)) * es), r((elems + static_cast<size_t>(r_off)) * es);
  for (size_t i = 0; i < y.size() / es; ++i) store(t, &y[i * es], dist(rng));
  for (size_t i = 0; i < r.size() / es; ++i) store(t, &r[i * es], dist(rng));
  // Expected: used cells summed, everything else (padding columns) unchanged.
  std::vector<uint8_t> want = y;
  uint8_t* wy = want.data() + y_off * es;
  const uint8_t* ry = in_place ? y.data() + y_off * es : r.data() + r_off * es;
  const uint8_t* yy = y.data() + y_off * es;
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t c = 0; c < n; ++c) {
      const size_t i = static_cast<size_t>(row * ld + c) * es;
      store(t, wy + i, load(t, yy + i) + load(t, ry + i));
    }
  auto dy = DeviceBuffer::allocate(y.size() + 16);
  auto dr = DeviceBuffer::allocate(r.size() + 16);
  ASSERT_TRUE(dy.ok() && dr.ok());
  ASSERT_TRUE(dy->copy_from_host(y.data(), y.size()).ok());
  ASSERT_TRUE(dr->copy_from_host(r.data(), r.size()).ok());
  void* py = static_cast<char*>(dy->data()) + y_off * es;
  const void* pr = in_place ? py : static_cast<const char*>(dr->data()) + r_off * es;
  const Status st = add_residual(py, pr, t, rows, n, ld, stream);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  std::vector<uint8_t> got(y.size());
  ASSERT_TRUE(dy->copy_to_host(got.data(), got.size()).ok());
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < got.size() / es; ++i)
    if (std::memcmp(&got[i * es], &want[i * es], es) != 0) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  const int64_t fe = first - y_off;
  EXPECT_EQ(bad, 0) << "add_residual " << dtype_name(t) << " rows=" << rows << " n=" << n << " ld=" << ld
                    << " y_off=" << y_off << " r_off=" << r_off << " in_place=" << in_place << ": " << bad
                    << " elements differ, first at row " << (first >= 0 ? fe / ld : -1) << " col "
                    << (first >= 0 ? fe % ld : -1) << " got " << (first >= 0 ? load(t, &got[first * es]) : 0.0f)
                    << " want " << (first >= 0 ? load(t, &want[first * es]) : 0.0f);
}

TEST_F(AddResidualTest, MatchesHostSum) {
  int cases = 0;
  for (DType t : {DType::kBF16, DType::kF16, DType::kF32}) {
    const int64_t vec = 16 / static_cast<int64_t>(esize(t));
    for (int64_t rows : {1, 3, 7}) {
      for (int64_t n : {1, 7, 8, 9, 33, 1000, 5120, 5123}) {
        // Dense, padded by a vector (aligned pitch), padded by one element (scalar path).
        for (int64_t pad : {int64_t{0}, vec, int64_t{1}}) {
          const int64_t ld = n + pad;
          check(t, rows, n, ld, 0, 0, false, stream_.get());
          check(t, rows, n, ld, 0, 0, true, stream_.get());
          ++cases;
        }
        // Misaligned y or residual (scalar path), and both off by one vector (aligned again).
        check(t, rows, n, n, 1, 0, false, stream_.get());
        check(t, rows, n, n, 0, 1, false, stream_.get());
        check(t, rows, n, n, vec, vec, false, stream_.get());
        check(t, rows, n, n, 1, 1, true, stream_.get());
        cases += 4;
      }
    }
  }
  check(DType::kBF16, 300, 5120, 5120, 0, 0, false, stream_.get());  // many rows (prefill-sized)
  std::printf("add_residual: %d shapes x dtypes checked bit for bit\n", cases + 1);
}

TEST_F(AddResidualTest, EmptyAndBadArguments) {
  auto buf = DeviceBuffer::allocate(1 << 12);
  ASSERT_TRUE(buf.ok());
  void* p = buf->data();
  EXPECT_TRUE(add_residual(p, p, DType::kBF16, 0, 16, 16, stream_.get()).ok()) << "no rows";
  EXPECT_TRUE(add_residual(p, p, DType::kBF16, 4, 0, 0, stream_.get()).ok()) << "no columns";
  EXPECT_TRUE(add_residual(nullptr, nullptr, DType::kF32, 0, 16, 16, stream_.get()).ok()) << "nothing to do";
  auto expect_error = [](Status st, const char* what) {
    EXPECT_FALSE(st.ok()) << what;
    std::printf("%s -> %s\n", what, st.message().c_str());
  };
  expect_error(add_residual(nullptr, p, DType::kBF16, 1, 16, 16, stream_.get()), "null y");
  expect_error(add_residual(p, nullptr, DType::kBF16, 1, 16, 16, stream_.get()), "null residual");
  expect_error(add_residual(p, p, DType::kI32, 1, 16, 16, stream_.get()), "i32");
  expect_error(add_residual(p, p, DType::kBF16, 1, 16, 8, stream_.get()), "ld < n");
  expect_error(add_residual(p, p, DType::kBF16, -1, 16, 16, stream_.get()), "rows < 0");
  expect_error(add_residual(static_cast<char*>(p) + 2, p, DType::kF32, 1, 16, 16, stream_.get()), "f32 y at +2 bytes");
  expect_error(add_residual(p, static_cast<char*>(p) + 1, DType::kBF16, 1, 16, 16, stream_.get()), "odd residual");
  EXPECT_EQ(cudaStreamSynchronize(stream_.get()), cudaSuccess);
}

}  // namespace
}  // namespace ds::cuda
