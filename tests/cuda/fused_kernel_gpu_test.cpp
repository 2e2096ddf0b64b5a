// GPU tests of ds_cuda_runtime: RAII handles, loading a cubin through the
// runtime API, the launch rule, the NVRTC recompile path with its disk cache,
// and loading every generated fused kernel of an sm_90a plan. Each test
// GTEST_SKIPs without a device (device_count() == 0), so CI passes GPU-less.
//
// Plan for PlanKernels: $DS_CUDA_TEST_PLAN, else
// <source root>/.deps/plans/qwen2-tiny-tied.sm_90a.dsplan (tools/gpu/make_plans.sh).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/kernel_library.h"
#include "runtime/plan/plan_reader.h"
#include "test_kernels.h"

namespace ds::cuda {
namespace {

#define SKIP_WITHOUT_GPU()                                              \
  do {                                                                  \
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";   \
  } while (0)

template <typename T>
T take(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) std::abort();
  return std::move(r).value();
}

std::filesystem::path temp_cache_dir() {
  auto d = std::filesystem::temp_directory_path() /
           ("ds_cuda_gpu_cache_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(d);
  return d;
}

// Runs the scale kernel on `num_tokens` rows of a `capacity`-row buffer whose
// output is poisoned with NaN; checks the rows written and the rows left alone.
void run_and_check_scale(const LoadedKernel& k, int num_tokens, int capacity) {
  using testing::kCols;
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> dist(0.5f, 2.0f);
  std::vector<float> x(static_cast<size_t>(capacity) * kCols);
  for (auto& v : x) v = dist(rng) * (rng() % 2 ? 1.f : -1.f);
  std::vector<float> y(x.size(), std::numeric_limits<float>::quiet_NaN());

  Stream stream = take(Stream::create());
  DeviceBuffer dx = take(DeviceBuffer::allocate(x.size() * sizeof(float)));
  DeviceBuffer dy = take(DeviceBuffer::allocate(y.size() * sizeof(float)));
  DeviceBuffer dargs = take(DeviceBuffer::allocate(sizeof(DsStepArgs)));
  ASSERT_TRUE(dx.copy_from_host(x.data(), x.size() * sizeof(float)).ok());
  ASSERT_TRUE(dy.copy_from_host(y.data(), y.size() * sizeof(float)).ok());
  DsStepArgs args{num_tokens, nullptr};
  ASSERT_TRUE(dargs.copy_from_host(&args, sizeof(args)).ok());

  Event start = take(Event::create()), stop = take(Event::create());
  ASSERT_TRUE(start.record(stream).ok());
  Status st = k.launch(stream.get(), num_tokens, static_cast<const DsStepArgs*>(dargs.data()),
                       {dx.data(), dy.data()});
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(stop.record(stream).ok());
  ASSERT_TRUE(stream.synchronize().ok());
  auto ms = stop.elapsed_ms_since(start);
  ASSERT_TRUE(ms.ok()) << ms.status().message();
  EXPECT_GE(*ms, 0.f);

  ASSERT_TRUE(dy.copy_to_host(y.data(), y.size() * sizeof(float)).ok());
  for (int t = 0; t < capacity; ++t)
    for (int c = 0; c < kCols; ++c) {
      const size_t i = static_cast<size_t>(t) * kCols + c;
      if (t < num_tokens)
        ASSERT_FLOAT_EQ(y[i], 2.f * x[i] + 1.f) << "row " << t << " col " << c;
      else
        ASSERT_TRUE(std::isnan(y[i])) << "row " << t << " beyond num_tokens was written";
    }
}

TEST(CudaGpu, DeviceBufferIsMoveOnlyAndFreesOnReset) {
  SKIP_WITHOUT_GPU();
  DeviceBuffer a = take(DeviceBuffer::allocate(1024));
  void* p = a.data();
  ASSERT_NE(p, nullptr);
  DeviceBuffer b = std::move(a);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.bytes(), 1024u);
  std::vector<char> big(2048);
  EXPECT_FALSE(b.copy_from_host(big.data(), big.size()).ok());
  b.reset();
  EXPECT_EQ(b.data(), nullptr);
}

TEST(CudaGpu, PlanCubinLoadsAndLaunchRuleCoversEveryRow) {
  SKIP_WITHOUT_GPU();
  const std::string arch = take(device_arch(0));
  auto dir = temp_cache_dir();
  auto cubin = take(compile_cubin_cached(testing::kScaleSource, "scale", {"--std=c++17"}, arch, dir.string()));
  const std::string bytes = testing::build_generated_kernel(arch, cubin.cubin);
  LoadedKernel::Options opts;
  opts.cache_dir = dir.string();
  LoadedKernel k = take(LoadedKernel::load(testing::as_generated(bytes), "scale", opts));
  EXPECT_FALSE(k.recompiled());
  EXPECT_EQ(k.rows_per_block(), testing::kRowsPerBlock);
  // 10 rows with 3 per block: the last block is partial.
  run_and_check_scale(k, 10, 12);
  run_and_check_scale(k, 1, 4);
  std::filesystem::remove_all(dir);
}

TEST(CudaGpu, ArchMismatchRecompilesWithNvrtcAndHitsTheDiskCache) {
  SKIP_WITHOUT_GPU();
  auto dir = temp_cache_dir();
  // A plan built for another architecture, with a (bogus) binary that must not be loaded.
  const std::string bytes = testing::build_generated_kernel("sm_35", "not a cubin");
  LoadedKernel::Options opts;
  opts.cache_dir = dir.string();
  LoadedKernel first = take(LoadedKernel::load(testing::as_generated(bytes), "scale", opts));
  EXPECT_TRUE(first.recompiled());
  EXPECT_FALSE(first.cache_hit());
  run_and_check_scale(first, 7, 9);
  LoadedKernel second = take(LoadedKernel::load(testing::as_generated(bytes), "scale", opts));
  EXPECT_TRUE(second.recompiled());
  EXPECT_TRUE(second.cache_hit());
  run_and_check_scale(second, 5, 6);
  std::filesystem::remove_all(dir);
}

TEST(CudaGpu, MissingEntryIsAClearError) {
  SKIP_WITHOUT_GPU();
  const std::string arch = take(device_arch(0));
  flatbuffers::FlatBufferBuilder fbb;
  auto gen = plan::CreateGeneratedKernelDirect(fbb, testing::kScaleSource, "no_such_entry", arch.c_str(),
                                               nullptr, nullptr, 64, 1);
  fbb.Finish(gen);
  auto dir = temp_cache_dir();
  LoadedKernel::Options opts;
  opts.cache_dir = dir.string();
  auto r = LoadedKernel::load(*flatbuffers::GetRoot<plan::GeneratedKernel>(fbb.GetBufferPointer()),
                              "k", opts);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no_such_entry"), std::string::npos) << r.status().message();
  std::filesystem::remove_all(dir);
}

std::string test_plan_path() {
  if (const char* p = std::getenv("DS_CUDA_TEST_PLAN"); p && *p) return p;
  return std::string(DS_SOURCE_ROOT) + "/.deps/plans/qwen2-tiny-tied.sm_90a.dsplan";
}

// Every generated fused kernel of the plan loads from its cubin (and from NVRTC).
TEST(CudaGpu, PlanKernelsLoad) {
  SKIP_WITHOUT_GPU();
  const std::string path = test_plan_path();
  if (!std::filesystem::exists(path))
    GTEST_SKIP() << "no sm_90a plan at " << path
                 << " (set DS_CUDA_TEST_PLAN or run tools/gpu/make_plans.sh)";
  auto plan = take(LoadedPlan::from_file(path));
  const std::string arch = take(device_arch(0));
  auto dir = temp_cache_dir();
  int loaded = 0;
  ASSERT_NE((*plan)->kernels(), nullptr);
  for (const auto* kernel : *(*plan)->kernels()) {
    if (kernel->kind() != plan::KernelKind::fused || !kernel->generated()) continue;
    const auto& gen = *kernel->generated();
    const std::string name = kernel->name() ? kernel->name()->str() : "?";
    LoadedKernel::Options opts;
    opts.cache_dir = dir.string();
    auto k = LoadedKernel::load(gen, name, opts);
    ASSERT_TRUE(k.ok()) << k.status().message();
    EXPECT_EQ(k->recompiled(), !arch_matches(gen.arch() ? gen.arch()->str() : "", arch)) << name;
    opts.force_recompile = true;
    auto r = LoadedKernel::load(gen, name, opts);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(r->recompiled());
    ++loaded;
  }
  EXPECT_GT(loaded, 0) << "the plan at " << path << " has no generated fused kernels";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ds::cuda
