#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/weights/dummy_init.h"
#include "runtime/weights/safetensors.h"
#include "runtime/weights/weight_loader.h"
#include "tests/runtime/test_util.h"

namespace ds {
namespace {

using test::OneWeight;
using test::StTensor;
using test::TempDir;

std::vector<float> as_f32(const WeightTensor& w) {
  std::vector<float> out(static_cast<size_t>(w.numel()));
  EXPECT_TRUE(convert_elements(w.data, w.dtype, out.data(), DType::kF32, out.size()).ok());
  return out;
}

std::vector<float> iota(size_t n, float start = 0) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

Result<std::unique_ptr<LoadedWeights>> load(const std::string& plan_bytes, const std::string& dir) {
  auto lp = LoadedPlan::from_bytes(plan_bytes, "test.dsplan");
  if (!lp.ok()) return lp.status();
  static std::vector<std::unique_ptr<LoadedPlan>> keep;  // plans outlive the weights in these tests
  keep.push_back(std::move(lp).value());
  WeightLoadOptions o;
  o.model_path = dir;
  return LoadedWeights::load(*keep.back(), o);
}

void expect_error(const Status& s, std::initializer_list<const char*> parts) {
  ASSERT_FALSE(s.ok());
  for (const char* p : parts) EXPECT_NE(s.message().find(p), std::string::npos) << "missing '" << p << "' in: " << s.message();
}

TEST(Safetensors, ReadsHeaderAndData) {
  TempDir d;
  test::write_bytes(d.file("a.safetensors"), test::safetensors_bytes({{"x", DType::kF32, {2, 3}, iota(6)},
                                                                       {"y", DType::kBF16, {4}, iota(4, 10)}}));
  auto f = SafetensorsFile::open(d.file("a.safetensors"), true);
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ((*f)->tensors().size(), 2u);
  const TensorInfo* y = (*f)->find("y");
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(y->dtype, DType::kBF16);
  EXPECT_EQ(y->shape, (std::vector<int64_t>{4}));
  uint16_t h;
  std::memcpy(&h, (*f)->data(*y) + 2, 2);
  EXPECT_EQ(bf16_to_f32(h), 11.0f);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ((*f)->find("z"), nullptr);
}

TEST(Safetensors, HeaderErrorsNameFileAndTensor) {
  TempDir d;
  const std::string good = test::safetensors_bytes({{"x", DType::kF32, {2, 3}, iota(6)}});
  auto open_bytes = [&](const std::string& bytes) {
    test::write_bytes(d.file("t.safetensors"), bytes);
    return SafetensorsFile::open(d.file("t.safetensors"), true).status();
  };
  expect_error(open_bytes("abc"), {"t.safetensors", "truncated"});
  expect_error(open_bytes(good.substr(0, 20)), {"t.safetensors", "truncated"});
  expect_error(open_bytes(good.substr(0, good.size() - 4)), {"tensor 'x'", "beyond the data section"});
  std::string bad_json = good;
  bad_json[9] = '#';
  expect_error(open_bytes(bad_json), {"t.safetensors", "not valid JSON"});
  auto with_header = [](const std::string& h, size_t data) {
    uint64_t n = h.size();
    return std::string(reinterpret_cast<const char*>(&n), 8) + h + std::string(data, '\0');
  };
  expect_error(open_bytes(with_header(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 24)),
               {"tensor 'x'", "does not match shape"});
  expect_error(open_bytes(with_header(R"({"x":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})", 2)),
               {"tensor 'x'", "unsupported dtype 'Q4'"});
  expect_error(open_bytes(with_header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                      R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)),
               {"overlap"});
  expect_error(open_bytes(with_header(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
               {"tensor 'x'", "non-negative"});
  expect_error(open_bytes(with_header(R"([1,2])", 0)), {"not a JSON object"});
  expect_error(open_bytes(with_header(R"({"x":{"dtype":"F32","shape":[2]}})", 8)), {"tensor 'x'", "data_offsets"});
}

TEST(Checkpoint, ShardedIndex) {
  TempDir d;
  test::write_bytes(d.file("a.safetensors"), test::safetensors_bytes({{"p", DType::kF32, {2}, iota(2)}}));
  test::write_bytes(d.file("b.safetensors"), test::safetensors_bytes({{"q", DType::kF32, {3}, iota(3)}}));
  test::write_bytes(d.file("model.safetensors.index.json"),
                    R"({"metadata":{},"weight_map":{"p":"a.safetensors","q":"b.safetensors"}})");
  auto c = Checkpoint::open(d.path(), false);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ((*c)->tensor_names(), (std::vector<std::string>{"p", "q"}));
  EXPECT_EQ((*c)->file_of("q").value(), "b.safetensors");
  EXPECT_EQ((*c)->info("q")->shape, (std::vector<int64_t>{3}));
  expect_error((*c)->info("r").status(), {"tensor 'r' not found"});
  test::write_bytes(d.file("model.safetensors.index.json"), R"({"weight_map":{"p":"b.safetensors"}})");
  expect_error(Checkpoint::open(d.path(), false).status(), {"tensor 'p'", "b.safetensors"});
  TempDir empty;
  expect_error(Checkpoint::open(empty.path(), false).status(), {"neither"});
}

TEST(WeightLoader, ConcatSliceAndCast) {
  TempDir d;
  // a [2,3] = 0..5, b [4,3] = 100..111 (bf16), c [3,4] = 200..211.
  test::write_bytes(d.file("model.safetensors"),
                    test::safetensors_bytes({{"a", DType::kF32, {2, 3}, iota(6)},
                                             {"b", DType::kBF16, {4, 3}, iota(12, 100)},
                                             {"c", DType::kF32, {3, 4}, iota(12, 200)},
                                             {"v1", DType::kF32, {3}, iota(3, 300)},
                                             {"v2", DType::kF32, {3}, iota(3, 400)}}));
  {  // rows of a, then rows 1..2 of b (slice axis 0), cast to f32.
    OneWeight w;
    w.shape = {4, 3};
    w.sources = {{"a", "model.safetensors", DType::kF32, {2, 3}},
                 {"b", "model.safetensors", DType::kBF16, {4, 3}, 0, 1, 2, 0}};
    auto lw = load(test::one_weight_plan(w, d.path()), d.path());
    ASSERT_TRUE(lw.ok()) << lw.status().message();
    EXPECT_EQ(as_f32((*lw)->get(0)), (std::vector<float>{0, 1, 2, 3, 4, 5, 103, 104, 105, 106, 107, 108}));
    EXPECT_FALSE((*lw)->get(0).zero_copy);
  }
  {  // Column slices concatenated along axis 1.
    OneWeight w;
    w.shape = {3, 3};
    w.concat_axis = 1;
    w.sources = {{"c", "model.safetensors", DType::kF32, {3, 4}, 1, 0, 1, 0},
                 {"c", "model.safetensors", DType::kF32, {3, 4}, 1, 2, 2, 0}};
    auto lw = load(test::one_weight_plan(w, d.path()), d.path());
    ASSERT_TRUE(lw.ok()) << lw.status().message();
    EXPECT_EQ(as_f32((*lw)->get(0)), (std::vector<float>{200, 202, 203, 204, 206, 207, 208, 210, 211}));
  }
  {  // Tensor-parallel slice: rank 1 of 2 takes rows [start + stride, +size).
    OneWeight w;
    w.shape = {2, 3};
    w.tp_size = 2;
    w.dtype = DType::kBF16;
    w.sources = {{"b", "model.safetensors", DType::kBF16, {4, 3}, 0, 0, 2, 2}};
    auto lp = LoadedPlan::from_bytes(test::one_weight_plan(w, d.path()), "tp");
    ASSERT_TRUE(lp.ok()) << lp.status().message();
    WeightLoadOptions o;
    o.tp_rank = 1;
    auto lw = LoadedWeights::load(**lp, o);
    ASSERT_TRUE(lw.ok()) << lw.status().message();
    EXPECT_EQ(as_f32((*lw)->get(0)), (std::vector<float>{106, 107, 108, 109, 110, 111}));
    o.tp_rank = 2;
    EXPECT_FALSE(LoadedWeights::load(**lp, o).ok());
  }
  {  // Rank divisor: ranks 2r and 2r+1 of 4 share slice r (a replicated KV head).
    OneWeight w;
    w.shape = {1, 3};
    w.tp_size = 4;
    w.sources = {{"b", "model.safetensors", DType::kBF16, {4, 3}, 0, 1, 1, 2, 2}};
    w.dtype = DType::kBF16;
    auto lp = LoadedPlan::from_bytes(test::one_weight_plan(w, d.path()), "tp-div");
    ASSERT_TRUE(lp.ok()) << lp.status().message();
    const std::vector<std::vector<float>> want = {{103, 104, 105}, {103, 104, 105}, {109, 110, 111}, {109, 110, 111}};
    for (int r = 0; r < 4; ++r) {
      WeightLoadOptions o;
      o.tp_rank = r;
      auto lw = LoadedWeights::load(**lp, o);
      ASSERT_TRUE(lw.ok()) << lw.status().message();
      EXPECT_EQ(as_f32((*lw)->get(0)), want[static_cast<size_t>(r)]) << "rank " << r;
    }
  }
  {  // Stacking 1-D tensors on a new leading axis (MoE-style experts).
    OneWeight w;
    w.shape = {2, 3};
    w.sources = {{"v2", "model.safetensors", DType::kF32, {3}}, {"v1", "model.safetensors", DType::kF32, {3}}};
    auto lw = load(test::one_weight_plan(w, d.path()), d.path());
    ASSERT_TRUE(lw.ok()) << lw.status().message();
    EXPECT_EQ(as_f32((*lw)->get(0)), (std::vector<float>{400, 401, 402, 300, 301, 302}));
  }
  {  // Two slices of one tensor in reverse order.
    OneWeight w;
    w.shape = {2, 3};
    w.sources = {{"a", "model.safetensors", DType::kF32, {2, 3}, 0, 1, 1, 0}};
    w.sources[0].shape = {2, 3};
    // a row 1 -> [1,3] and a row 0 -> [1,3] concat on axis 0.
    w.sources.push_back({"a", "model.safetensors", DType::kF32, {2, 3}, 0, 0, 1, 0});
    auto lw = load(test::one_weight_plan(w, d.path()), d.path());
    ASSERT_TRUE(lw.ok()) << lw.status().message();
    EXPECT_EQ(as_f32((*lw)->get(0)), (std::vector<float>{3, 4, 5, 0, 1, 2}));
  }
  {  // Untransformed weight maps the file.
    OneWeight w;
    w.shape = {2, 3};
    w.sources = {{"a", "model.safetensors", DType::kF32, {2, 3}}};
    auto lw = load(test::one_weight_plan(w, d.path()), d.path());
    ASSERT_TRUE(lw.ok()) << lw.status().message();
    EXPECT_TRUE((*lw)->get(0).zero_copy);
    EXPECT_EQ(as_f32((*lw)->get(0)), iota(6));
  }
}

TEST(WeightLoader, ErrorsNameFileTensorAndMismatch) {
  TempDir d;
  test::write_bytes(d.file("model.safetensors"), test::safetensors_bytes({{"a", DType::kF32, {2, 3}, iota(6)}}));
  OneWeight w;
  w.shape = {2, 3};
  w.sources = {{"missing", "model.safetensors", DType::kF32, {2, 3}}};
  expect_error(load(test::one_weight_plan(w, d.path()), d.path()).status(), {"weight 'w'", "tensor 'missing'", "not found"});
  w.sources = {{"a", "model.safetensors", DType::kBF16, {2, 3}}};
  expect_error(load(test::one_weight_plan(w, d.path()), d.path()).status(),
               {"tensor 'a'", "model.safetensors", "has dtype f32 but the plan expects bf16"});
  w.shape = {3, 2};
  w.sources = {{"a", "model.safetensors", DType::kF32, {3, 2}}};
  expect_error(load(test::one_weight_plan(w, d.path()), d.path()).status(),
               {"tensor 'a'", "has shape [2,3] but the plan expects [3,2]"});
  // Inconsistent plan: source shape does not add up to the weight shape.
  w.shape = {3, 3};
  w.sources = {{"a", "model.safetensors", DType::kF32, {2, 3}}};
  expect_error(load(test::one_weight_plan(w, d.path()), d.path()).status(), {"weights[0] 'w'", "add up to 2"});
  // Slice out of range for a rank.
  w.shape = {2, 3};
  w.tp_size = 2;
  w.sources = {{"a", "model.safetensors", DType::kF32, {2, 3}, 0, 0, 2, 1}};
  expect_error(load(test::one_weight_plan(w, d.path()), d.path()).status(), {"exceeds its dimension"});
  // With a divisor the last rank's slice is checked: rank 3 of 4, divisor 2 -> start 0 + 1*2 = 2 > rows.
  w.shape = {1, 3};
  w.tp_size = 4;
  w.sources = {{"a", "model.safetensors", DType::kF32, {2, 3}, 0, 0, 1, 2, 2}};
  expect_error(load(test::one_weight_plan(w, d.path()), d.path()).status(), {"of rank 3", "exceeds its dimension"});
  w.sources = {{"a", "model.safetensors", DType::kF32, {2, 3}, 0, 0, 1, 1, 2}};  // divisor 2: ranks 0..3 -> rows 0,0,1,1
  EXPECT_TRUE(LoadedPlan::from_bytes(test::one_weight_plan(w, d.path()), "ok").ok());
  w.sources = {{"a", "model.safetensors", DType::kF32, {2, 3}, 0, 0, 1, 1, 0}};
  expect_error(load(test::one_weight_plan(w, d.path()), d.path()).status(), {"rank divisor 0"});
  // Missing checkpoint directory.
  w.shape = {2, 3};
  w.tp_size = 1;
  w.sources = {{"a", "model.safetensors", DType::kF32, {2, 3}}};
  expect_error(load(test::one_weight_plan(w, "/nonexistent"), "/nonexistent").status(), {"/nonexistent"});
}

TEST(WeightLoader, DummyIsDeterministicPerSeed) {
  test::TinyModel m;
  auto lp = LoadedPlan::from_bytes(m.plan_bytes(""), "tiny");
  ASSERT_TRUE(lp.ok()) << lp.status().message();
  WeightLoadOptions o;
  o.format = LoadFormat::kDummy;
  o.dummy_seed = 5;
  auto a = LoadedWeights::load(**lp, o), b = LoadedWeights::load(**lp, o);
  o.dummy_seed = 6;
  auto c = LoadedWeights::load(**lp, o);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_EQ((*a)->size(), (*lp)->plan().weights()->size());
  for (size_t i = 0; i < (*a)->size(); ++i) {
    EXPECT_EQ((*a)->get(i).shape, std::vector<int64_t>((*lp)->plan().weights()->Get(i)->shape()->begin(),
                                                        (*lp)->plan().weights()->Get(i)->shape()->end()));
    EXPECT_EQ(as_f32((*a)->get(i)), as_f32((*b)->get(i)));
    EXPECT_NE(as_f32((*a)->get(i)), as_f32((*c)->get(i)));
  }
  // Without a checkpoint path, the safetensors format is an error, not a crash.
  expect_error(LoadedWeights::load(**lp, WeightLoadOptions{}).status(), {"checkpoint_path"});
  EXPECT_TRUE(parse_load_format("dummy").ok());
  EXPECT_FALSE(parse_load_format("pickle").ok());
}

TEST(WeightLoader, DummyValuesAreTheSharedCounterFunction) {
  test::TinyModel m;
  auto lp = LoadedPlan::from_bytes(m.plan_bytes(""), "tiny");
  ASSERT_TRUE(lp.ok()) << lp.status().message();
  WeightLoadOptions o;
  o.format = LoadFormat::kDummy;
  o.dummy_seed = 11;
  o.dummy_scale = 0.25f;
  auto lw = LoadedWeights::load(**lp, o);
  ASSERT_TRUE(lw.ok()) << lw.status().message();
  for (size_t wi = 0; wi < (*lw)->size(); ++wi) {
    const WeightTensor& t = (*lw)->get(wi);
    const uint64_t key = dummy_weight_key(11, t.name);
    const std::vector<float> got = as_f32(t);
    for (size_t i = 0; i < got.size(); ++i) {
      // Stored in the weight dtype: compare after the same rounding.
      const float want = dummy_weight_value(key, i, 0.25f);
      float rounded = want;
      if (t.dtype == DType::kBF16) rounded = bf16_to_f32(f32_to_bf16(want));
      if (t.dtype == DType::kF16) rounded = f16_to_f32(f32_to_f16(want));
      ASSERT_EQ(got[i], rounded) << t.name << "[" << i << "]";
      ASSERT_LE(std::fabs(got[i]), 0.25f);
    }
  }
}

TEST(WeightLoader, DummyHostFillIsThreadCountIndependent) {
  // A fill large enough to be split over threads equals the element-by-element values.
  const size_t n = (size_t{1} << 21) + 7;
  std::vector<uint16_t> buf(n);
  ASSERT_TRUE(fill_dummy_host(buf.data(), DType::kBF16, n, 1234, 0.5f).ok());
  for (size_t i : {size_t{0}, size_t{1}, n / 3, n / 2 + 1, n - 1})
    EXPECT_EQ(buf[i], f32_to_bf16(dummy_weight_value(1234, i, 0.5f))) << i;
  expect_error(fill_dummy_host(buf.data(), DType::kI32, 4, 1, 0.5f), {"floating dtype", "i32"});
}

TEST(WeightLoader, WithoutMaterializeChecksSourcesOnly) {
  TempDir d;
  test::write_bytes(d.file("model.safetensors"),
                    test::safetensors_bytes({{"a", DType::kF32, {2, 3}, iota(6)}, {"b", DType::kBF16, {4, 3}, iota(12)}}));
  OneWeight w;
  w.shape = {4, 3};
  w.sources = {{"a", "model.safetensors", DType::kF32, {2, 3}}, {"b", "model.safetensors", DType::kBF16, {4, 3}, 0, 1, 2, 0}};
  auto lp = LoadedPlan::from_bytes(test::one_weight_plan(w, d.path()), "check");
  ASSERT_TRUE(lp.ok()) << lp.status().message();
  WeightLoadOptions o;
  o.materialize = false;
  auto lw = LoadedWeights::load(**lp, o);
  ASSERT_TRUE(lw.ok()) << lw.status().message();
  const WeightTensor& t = (*lw)->get(0);
  EXPECT_EQ(t.name, "w");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(t.data, nullptr);
  EXPECT_EQ(t.nbytes, 12 * dtype_size(t.dtype));
  EXPECT_EQ((*lw)->owned_bytes(), 0u);
  // Errors are the same as when loading data.
  w.sources[1].dtype = DType::kF16;
  auto bad = LoadedPlan::from_bytes(test::one_weight_plan(w, d.path()), "bad");
  ASSERT_TRUE(bad.ok()) << bad.status().message();
  expect_error(LoadedWeights::load(**bad, o).status(), {"tensor 'b'", "has dtype bf16 but the plan expects f16"});
  // resolve_weight_sources gives this rank's slice.
  auto ck = Checkpoint::open(d.path(), true);
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  auto views = resolve_weight_sources(**ck, *(*lp)->plan().weights()->Get(0), 0, true);
  ASSERT_TRUE(views.ok()) << views.status().message();
  ASSERT_EQ(views->size(), 2u);
  EXPECT_EQ((*views)[1].slice_start, 1);
  EXPECT_EQ((*views)[1].sliced_shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_NE((*views)[1].data, nullptr);
}

TEST(DTypeConversion, RoundTrips) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f})
    EXPECT_EQ(f16_to_f32(f32_to_f16(f)), f) << f;
  EXPECT_EQ(f16_to_f32(f32_to_f16(1e6f)), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::nanf("")))));
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 4096), f32_to_f16(1.0f));  // ties to even
  for (float f : {0.0f, 1.0f, -1.5f, 448.0f, 0.015625f, 0.001953125f, -240.0f})
    EXPECT_EQ(f8e4m3_to_f32(f32_to_f8e4m3(f)), f) << f;
  EXPECT_EQ(f8e4m3_to_f32(f32_to_f8e4m3(1000.0f)), 448.0f);  // saturates
  EXPECT_EQ(f8e4m3_to_f32(f32_to_f8e4m3(1.0625f)), 1.0f);   // ties to even
  // Every f8 code decodes and re-encodes to itself (except NaN).
  for (int v = 0; v < 256; ++v) {
    if ((v & 0x7f) == 0x7f) continue;
    EXPECT_EQ(f32_to_f8e4m3(f8e4m3_to_f32(static_cast<uint8_t>(v))), v == 0x80 ? 0x80 : v) << v;
  }
}

}  // namespace
}  // namespace ds
