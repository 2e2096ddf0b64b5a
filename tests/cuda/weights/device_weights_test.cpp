// DeviceWeights::load builds every weight on the GPU bit-identical to the CPU
// loader (LoadedWeights): concatenation, slicing along either axis, tensor-
// parallel ranks, casts, sources larger than a staging buffer, and dummy weights.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/weights/cuda/device_weights.h"
#include "runtime/weights/weight_loader.h"
#include "tests/runtime/test_util.h"

namespace ds::cuda {
namespace {

using test::OneWeight;
using test::TempDir;

#define SKIP_WITHOUT_GPU() \
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device"

std::vector<float> values(size_t n, float seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 2654435761u + static_cast<size_t>(seed * 977)) % 20011) / 97.0f - 100.0f;
  return v;
}

// Loads `plan_bytes` both ways and compares every weight byte for byte.
void expect_same(const std::string& plan_bytes, WeightLoadOptions o, const std::string& what) {
  auto lp = LoadedPlan::from_bytes(plan_bytes, what);
  ASSERT_TRUE(lp.ok()) << lp.status().message();
  auto host = LoadedWeights::load(**lp, o);
  ASSERT_TRUE(host.ok()) << host.status().message();
  auto stream = Stream::create();
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  size_t last_done = 0, calls = 0, total_seen = 0;
  auto dev = DeviceWeights::load(**lp, o, stream->get(), [&](size_t done, size_t total) {
    EXPECT_GE(done, last_done);
    last_done = done;
    total_seen = total;
    ++calls;
  });
  ASSERT_TRUE(dev.ok()) << what << ": " << dev.status().message();
  ASSERT_EQ((*dev)->size(), (*host)->size());
  EXPECT_EQ((*dev)->total_bytes(), DeviceWeights::plan_bytes(**lp));
  EXPECT_GT(calls, 0u);
  EXPECT_EQ(last_done, total_seen);
  for (size_t i = 0; i < (*host)->size(); ++i) {
    const WeightTensor& h = (*host)->get(i);
    const DeviceTensor& d = (*dev)->get(i);
    EXPECT_EQ(d.name, h.name);
    EXPECT_EQ(d.shape, h.shape);
    ASSERT_EQ(d.nbytes, h.nbytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(d.data) % 256, 0u);
    std::vector<uint8_t> got(d.nbytes);
    ASSERT_EQ(cudaMemcpy(got.data(), d.data, d.nbytes, cudaMemcpyDeviceToHost), cudaSuccess);
    size_t mismatches = 0, first = 0;
    const size_t es = dtype_size(h.dtype);
    for (size_t e = 0; e < d.nbytes / es; ++e)
      if (std::memcmp(got.data() + e * es, h.data + e * es, es) != 0 && mismatches++ == 0) first = e;
    EXPECT_EQ(mismatches, 0u) << what << ": weight '" << h.name << "' shape [" << h.shape[0] << ","
                              << (h.shape.size() > 1 ? h.shape[1] : 1) << "] " << dtype_name(h.dtype) << ": "
                              << mismatches << " of " << d.nbytes / es << " elements differ, first at " << first;
  }
}

class DeviceWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_bytes(dir_.file("model.safetensors"),
                      test::safetensors_bytes({{"a", DType::kF32, {6, 40}, values(240, 1)},
                                               {"b", DType::kBF16, {8, 40}, values(320, 2)},
                                               {"c", DType::kF16, {6, 24}, values(144, 3)},
                                               {"d", DType::kBF16, {6, 16}, values(96, 4)}}));
  }
  std::string plan(const OneWeight& w) { return test::one_weight_plan(w, dir_.path()); }
  WeightLoadOptions opts() {
    WeightLoadOptions o;
    o.model_path = dir_.path();
    return o;
  }
  TempDir dir_;
};

TEST_F(DeviceWeightsTest, ConcatSliceAndCastLikeTheCpuLoader) {
  SKIP_WITHOUT_GPU();
  const std::vector<DType> dtypes = {DType::kBF16, DType::kF32, DType::kF16};
  for (DType wt : dtypes) {
    OneWeight w;  // rows of a, then rows 2..5 of b (slice axis 0)
    w.dtype = wt;
    w.shape = {10, 40};
    w.sources = {{"a", "model.safetensors", DType::kF32, {6, 40}}, {"b", "model.safetensors", DType::kBF16, {8, 40}, 0, 2, 4, 0}};
    expect_same(plan(w), opts(), std::string("rows ") + dtype_name(wt));
    OneWeight c;  // columns: a[:, 8:20], c (f16), d[:, 3:15]: slices along axis 1, concat along axis 1
    c.dtype = wt;
    c.shape = {6, 48};
    c.concat_axis = 1;
    c.sources = {{"a", "model.safetensors", DType::kF32, {6, 40}, 1, 8, 12, 0},
                 {"c", "model.safetensors", DType::kF16, {6, 24}},
                 {"d", "model.safetensors", DType::kBF16, {6, 16}, 1, 3, 12, 0}};
    expect_same(plan(c), opts(), std::string("columns ") + dtype_name(wt));
  }
  OneWeight same;  // untransformed: the direct copy path
  same.dtype = DType::kBF16;
  same.shape = {8, 40};
  same.sources = {{"b", "model.safetensors", DType::kBF16, {8, 40}}};
  expect_same(plan(same), opts(), "untransformed");
}

TEST_F(DeviceWeightsTest, TensorParallelRanksTakeTheirSlices) {
  SKIP_WITHOUT_GPU();
  OneWeight w;  // rank r of 4 (divisor 2): rows [1 + (r / 2) * 3, +3) of b; columns of a: [r * 10, +10)
  w.dtype = DType::kBF16;
  w.shape = {3, 40};
  w.tp_size = 4;
  w.sources = {{"b", "model.safetensors", DType::kBF16, {8, 40}, 0, 1, 3, 3, 2}};
  OneWeight col;
  col.dtype = DType::kBF16;
  col.shape = {6, 10};
  col.concat_axis = 1;
  col.tp_size = 4;
  col.sources = {{"a", "model.safetensors", DType::kF32, {6, 40}, 1, 0, 10, 10}};
  for (int r = 0; r < 4; ++r) {
    WeightLoadOptions o = opts();
    o.tp_rank = r;
    expect_same(plan(w), o, "rows rank " + std::to_string(r));
    expect_same(plan(col), o, "columns rank " + std::to_string(r));
  }
}

TEST(DeviceWeights, SourcesLargerThanTheStagingBuffers) {
  SKIP_WITHOUT_GPU();
  // 8192 x 4160 bf16 = 65 MiB: more than one 64 MiB staging slot, so the loader
  // streams it in row segments (concat on axis 0) or in several row chunks (axis 1).
  TempDir dir;
  const int64_t rows = 8192, cols = 4160;
  test::write_bytes(dir.file("model.safetensors"),
                    test::safetensors_bytes({{"big", DType::kBF16, {rows, cols}, values(static_cast<size_t>(rows * cols), 5)},
                                             {"small", DType::kBF16, {rows, 64}, values(static_cast<size_t>(rows * 64), 6)}}));
  WeightLoadOptions o;
  o.model_path = dir.path();
  OneWeight direct;
  direct.dtype = DType::kBF16;
  direct.shape = {rows, cols};
  direct.sources = {{"big", "model.safetensors", DType::kBF16, {rows, cols}}};
  expect_same(test::one_weight_plan(direct, dir.path()), o, "big direct");
  OneWeight cast = direct;
  cast.dtype = DType::kF32;
  expect_same(test::one_weight_plan(cast, dir.path()), o, "big cast to f32");
  OneWeight wide;
  wide.dtype = DType::kBF16;
  wide.shape = {rows, cols + 64};
  wide.concat_axis = 1;
  wide.sources = {{"big", "model.safetensors", DType::kBF16, {rows, cols}},
                  {"small", "model.safetensors", DType::kBF16, {rows, 64}}};
  expect_same(test::one_weight_plan(wide, dir.path()), o, "big concat on axis 1");
}

TEST(DeviceWeights, DummyWeightsEqualTheCpuDummyLoader) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::kBF16, DType::kF32, DType::kF16}) {
    test::TinyModel m;
    m.weight_dtype = dt;
    m.plan_weight_dtype = dt;
    m.cast_weights = true;
    WeightLoadOptions o;
    o.format = LoadFormat::kDummy;
    o.dummy_seed = 77;
    o.dummy_scale = 0.3f;
    expect_same(m.plan_bytes(""), o, std::string("dummy ") + dtype_name(dt));
  }
}

TEST(DeviceWeights, ErrorsNameTheWeightAndTensor) {
  SKIP_WITHOUT_GPU();
  TempDir dir;
  test::write_bytes(dir.file("model.safetensors"), test::safetensors_bytes({{"a", DType::kF32, {2, 3}, values(6, 1)}}));
  OneWeight w;
  w.shape = {2, 3};
  w.sources = {{"a", "model.safetensors", DType::kBF16, {2, 3}}};
  auto lp = LoadedPlan::from_bytes(test::one_weight_plan(w, dir.path()), "bad");
  ASSERT_TRUE(lp.ok()) << lp.status().message();
  auto stream = Stream::create();
  ASSERT_TRUE(stream.ok());
  WeightLoadOptions o;
  o.model_path = dir.path();
  auto r = DeviceWeights::load(**lp, o, stream->get());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tensor 'a'"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("has dtype f32 but the plan expects bf16"), std::string::npos);
  o.tp_rank = 3;
  EXPECT_NE(DeviceWeights::load(**lp, o, stream->get()).status().message().find("out of range"), std::string::npos);
}

}  // namespace
}  // namespace ds::cuda
