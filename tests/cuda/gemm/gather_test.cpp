// gather.h kernels vs host code, bit-exact: embedding_gather (vocab-parallel),
// gather_rows, cast_elements, place_block, fill_dummy (vs ds::dummy_weight_value).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/gemm/gather.h"
#include "kernels/ref/elementwise.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/weights/dummy_init.h"

namespace ds::cuda {
namespace {

// Host encoding of float `f` in dtype t (f32/f16/bf16), as raw bytes appended to `out`.
void encode(float f, DType t, std::vector<uint8_t>& out) {
  uint8_t b[4];
  size_t n = dtype_size(t);
  if (t == DType::kF32) {
    std::memcpy(b, &f, 4);
  } else {
    const uint16_t h = t == DType::kBF16 ? f32_to_bf16(f) : f32_to_f16(f);
    std::memcpy(b, &h, 2);
  }
  out.insert(out.end(), b, b + n);
}

float decode(const uint8_t* p, DType t) {
  if (t == DType::kF32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

std::vector<uint8_t> random_values(int64_t n, DType t, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-50.0f, 50.0f);
  std::vector<uint8_t> out;
  for (int64_t i = 0; i < n; ++i) encode(dist(rng), t, out);
  return out;
}

DeviceBuffer upload_bytes(const void* data, size_t bytes, size_t offset = 0) {
  auto buf = DeviceBuffer::allocate(bytes + offset + 16);
  EXPECT_TRUE(buf.ok()) << buf.status().message();
  EXPECT_EQ(cudaMemset(buf->data(), 0, buf->bytes()), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(static_cast<char*>(buf->data()) + offset, data, bytes, cudaMemcpyHostToDevice), cudaSuccess);
  return std::move(buf.value());
}

std::vector<uint8_t> download(const DeviceBuffer& buf, size_t bytes, size_t offset = 0) {
  std::vector<uint8_t> out(bytes);
  EXPECT_EQ(cudaMemcpy(out.data(), static_cast<const char*>(buf.data()) + offset, bytes, cudaMemcpyDeviceToHost),
            cudaSuccess);
  return out;
}

class GatherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(GatherTest, EmbeddingGatherMatchesVocabParallelReference) {
  for (DType t : {DType::kBF16, DType::kF32, DType::kF16}) {
    for (int64_t hidden : {64, 24, 13}) {
      const int64_t vocab_start = 10, rows = 50, total_vocab = 100;
      const std::vector<int32_t> ids = {10, 59, 0, 99, 60, 9, 35, 35, 11, 58};
      auto table = random_values(rows * hidden, t, static_cast<uint32_t>(hidden));
      std::vector<float> ref(ids.size() * hidden);
      ASSERT_TRUE(ref::embedding_vocab_parallel(ids.data(), static_cast<int64_t>(ids.size()), table.data(), t,
                                                vocab_start, rows, total_vocab, hidden, ref.data())
                      .ok());
      DeviceBuffer dt = upload_bytes(table.data(), table.size());
      DeviceBuffer di = upload_bytes(ids.data(), ids.size() * 4);
      auto out = DeviceBuffer::allocate(ids.size() * hidden * 2);
      ASSERT_TRUE(out.ok());
      ASSERT_EQ(cudaMemset(out->data(), 0xff, out->bytes()), cudaSuccess);
      Status st = embedding_gather(static_cast<const int32_t*>(di.data()), static_cast<int64_t>(ids.size()),
                                   dt.data(), t, vocab_start, rows, hidden, out->data(), nullptr);
      ASSERT_TRUE(st.ok()) << st.message();
      auto got = download(*out, out->bytes());
      for (size_t i = 0; i < ref.size(); ++i) {
        uint16_t g;
        std::memcpy(&g, got.data() + 2 * i, 2);
        ASSERT_EQ(g, f32_to_bf16(ref[i])) << "dtype " << dtype_name(t) << " hidden " << hidden << " token "
                                          << i / hidden << " col " << i % hidden;
      }
    }
  }
}

TEST_F(GatherTest, EmbeddingIdsOutsideTheVocabularyGiveZeros) {
  const int64_t hidden = 16;
  std::vector<uint16_t> table(4 * hidden, f32_to_bf16(1.5f));
  const std::vector<int32_t> ids = {-5, 1000000, 3};
  DeviceBuffer dt = upload_bytes(table.data(), table.size() * 2);
  DeviceBuffer di = upload_bytes(ids.data(), ids.size() * 4);
  auto out = DeviceBuffer::allocate(ids.size() * hidden * 2);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(embedding_gather(static_cast<const int32_t*>(di.data()), 3, dt.data(), DType::kBF16, 0, 4, hidden,
                               out->data(), nullptr)
                  .ok());
  auto got = download(*out, out->bytes());
  for (int64_t i = 0; i < 3 * hidden; ++i) {
    uint16_t g;
    std::memcpy(&g, got.data() + 2 * i, 2);
    EXPECT_EQ(g, i < 2 * hidden ? f32_to_bf16(0.0f) : f32_to_bf16(1.5f)) << "element " << i;
  }
}

TEST_F(GatherTest, GatherRowsAllWidths) {
  struct Case {
    int64_t width, elem_bytes;
  } cases[] = {{64, 2}, {3, 2}, {5, 1}, {7, 4}, {16, 8}, {9, 3}};
  for (const Case& c : cases) {
    const int64_t src_rows = 37, row_bytes = c.width * c.elem_bytes;
    std::vector<uint8_t> x(src_rows * row_bytes);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i * 131 + 7);
    const std::vector<int32_t> rows = {36, 0, 5, 5, 17, 1};
    DeviceBuffer dx = upload_bytes(x.data(), x.size());
    DeviceBuffer dr = upload_bytes(rows.data(), rows.size() * 4);
    auto out = DeviceBuffer::allocate(rows.size() * row_bytes);
    ASSERT_TRUE(out.ok());
    Status st = gather_rows(dx.data(), c.width, c.elem_bytes, static_cast<const int32_t*>(dr.data()),
                            static_cast<int64_t>(rows.size()), out->data(), nullptr);
    ASSERT_TRUE(st.ok()) << st.message();
    auto got = download(*out, out->bytes());
    for (size_t r = 0; r < rows.size(); ++r)
      EXPECT_EQ(0, std::memcmp(got.data() + r * row_bytes, x.data() + rows[r] * row_bytes, row_bytes))
          << "width " << c.width << " elem_bytes " << c.elem_bytes << " row " << r;
  }
}

TEST_F(GatherTest, CastElementsAllPairsBitExact) {
  const DType types[] = {DType::kF32, DType::kF16, DType::kBF16};
  for (DType s : types) {
    for (DType d : types) {
      for (int64_t n : {1003, 64}) {
        auto src = random_values(n, s, static_cast<uint32_t>(n) + 3 * static_cast<uint32_t>(s));
        // Offset the source by one element: exercises the unaligned (scalar) path too.
        for (size_t off : {size_t{0}, dtype_size(s)}) {
          DeviceBuffer ds_ = upload_bytes(src.data(), src.size(), off);
          auto out = DeviceBuffer::allocate(n * dtype_size(d));
          ASSERT_TRUE(out.ok());
          Status st = cast_elements(static_cast<char*>(ds_.data()) + off, s, out->data(), d, n, nullptr);
          ASSERT_TRUE(st.ok()) << st.message();
          auto got = download(*out, out->bytes());
          std::vector<uint8_t> want;
          for (int64_t i = 0; i < n; ++i) encode(decode(src.data() + i * dtype_size(s), s), d, want);
          ASSERT_EQ(got, want) << dtype_name(s) << " -> " << dtype_name(d) << " n " << n << " offset " << off;
        }
      }
    }
  }
}

TEST_F(GatherTest, PlaceBlockWithCastAndOffsets) {
  struct Case {
    DType s, d;
    int64_t rows, cols, src_ld, dst_ld, row0, col0;
  } cases[] = {
      {DType::kBF16, DType::kF32, 5, 7, 9, 12, 2, 3},    // scalar cast path
      {DType::kF32, DType::kBF16, 4, 16, 16, 40, 1, 8},  // vector cast path
      {DType::kBF16, DType::kBF16, 6, 10, 13, 30, 0, 17},  // same dtype: 2D copy
      {DType::kF16, DType::kBF16, 3, 24, 24, 24, 5, 0},
  };
  for (const Case& c : cases) {
    auto src = random_values(c.rows * c.src_ld, c.s, static_cast<uint32_t>(c.cols));
    const int64_t dst_rows = c.row0 + c.rows + 2;
    std::vector<uint8_t> dst_init;
    for (int64_t i = 0; i < dst_rows * c.dst_ld; ++i) encode(-7.0f, c.d, dst_init);
    DeviceBuffer dsrc = upload_bytes(src.data(), src.size());
    DeviceBuffer ddst = upload_bytes(dst_init.data(), dst_init.size());
    Status st = place_block(dsrc.data(), c.s, c.rows, c.cols, c.src_ld, ddst.data(), c.d, c.dst_ld, c.row0, c.col0,
                            nullptr);
    ASSERT_TRUE(st.ok()) << st.message();
    auto got = download(ddst, dst_init.size());
    std::vector<uint8_t> want = dst_init;
    const size_t es = dtype_size(c.d);
    for (int64_t r = 0; r < c.rows; ++r)
      for (int64_t col = 0; col < c.cols; ++col) {
        std::vector<uint8_t> e;
        encode(decode(src.data() + (r * c.src_ld + col) * dtype_size(c.s), c.s), c.d, e);
        std::memcpy(want.data() + ((c.row0 + r) * c.dst_ld + c.col0 + col) * es, e.data(), es);
      }
    EXPECT_EQ(got, want) << dtype_name(c.s) << " -> " << dtype_name(c.d) << " block " << c.rows << "x" << c.cols;
  }
}

TEST_F(GatherTest, FillDummyMatchesHostValues) {
  const uint64_t key = dummy_weight_key(1234, "model.layers.0.mlp.up_proj.weight");
  for (DType t : {DType::kBF16, DType::kF32, DType::kF16}) {
    for (size_t off : {size_t{0}, dtype_size(t)}) {
      const int64_t n = 100005;
      auto buf = DeviceBuffer::allocate(n * dtype_size(t) + off);
      ASSERT_TRUE(buf.ok());
      Status st = fill_dummy(static_cast<char*>(buf->data()) + off, t, n, key, 0.02f, nullptr);
      ASSERT_TRUE(st.ok()) << st.message();
      auto got = download(*buf, n * dtype_size(t), off);
      std::vector<uint8_t> want;
      for (int64_t i = 0; i < n; ++i) encode(dummy_weight_value(key, static_cast<uint64_t>(i), 0.02f), t, want);
      ASSERT_EQ(got, want) << dtype_name(t) << " offset " << off;
    }
  }
}

// Argument errors are reported before any CUDA call: these run without a GPU.
TEST(GatherArgs, BadArgumentsReturnErrors) {
  int dummy[4] = {};
  void* p = dummy;
  const int32_t* ids = reinterpret_cast<const int32_t*>(dummy);
  EXPECT_FALSE(embedding_gather(ids, 1, p, DType::kI32, 0, 4, 8, p, nullptr).ok());
  EXPECT_FALSE(embedding_gather(nullptr, 1, p, DType::kBF16, 0, 4, 8, p, nullptr).ok());
  EXPECT_FALSE(embedding_gather(ids, 1, p, DType::kBF16, 0, 4, 0, p, nullptr).ok());
  EXPECT_FALSE(gather_rows(nullptr, 8, 2, ids, 1, p, nullptr).ok());
  EXPECT_FALSE(gather_rows(p, 0, 2, ids, 1, p, nullptr).ok());
  EXPECT_FALSE(cast_elements(p, DType::kI64, p, DType::kF32, 4, nullptr).ok());
  EXPECT_FALSE(cast_elements(p, DType::kF32, p, DType::kF8E4M3, 4, nullptr).ok());
  EXPECT_FALSE(cast_elements(nullptr, DType::kF32, p, DType::kBF16, 4, nullptr).ok());
  EXPECT_FALSE(cast_elements(p, DType::kF32, p, DType::kBF16, -1, nullptr).ok());
  EXPECT_FALSE(place_block(p, DType::kBF16, 2, 8, 4, p, DType::kBF16, 8, 0, 0, nullptr).ok());  // src_ld < cols
  EXPECT_FALSE(place_block(p, DType::kBF16, 2, 8, 8, p, DType::kBF16, 8, 0, 1, nullptr).ok());  // past dst_ld
  EXPECT_FALSE(place_block(p, DType::kU8, 2, 8, 8, p, DType::kBF16, 8, 0, 0, nullptr).ok());
  EXPECT_FALSE(fill_dummy(p, DType::kI32, 4, 1, 0.1f, nullptr).ok());
  EXPECT_FALSE(fill_dummy(nullptr, DType::kBF16, 4, 1, 0.1f, nullptr).ok());
  // Empty work is fine and launches nothing.
  EXPECT_TRUE(cast_elements(p, DType::kF32, p, DType::kBF16, 0, nullptr).ok());
  EXPECT_TRUE(fill_dummy(p, DType::kBF16, 0, 1, 0.1f, nullptr).ok());
}

}  // namespace
}  // namespace ds::cuda
