// Tests of ds_cuda_runtime that need no GPU: error mapping, arch matching and
// the NVRTC cubin disk cache (NVRTC compiles without a device).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "runtime/common/file_util.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/kernel_library.h"
#include "test_kernels.h"

namespace ds::cuda {
namespace {

Status failing_call() {
  DS_CUDA_RETURN_IF_ERROR(cudaErrorInvalidValue);
  return Status::Ok();
}

TEST(CudaCheck, ErrorNamesExpressionFileAndReason) {
  Status st = failing_call();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("cudaErrorInvalidValue"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("kernel_library_test.cpp:"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(cudaGetErrorString(cudaErrorInvalidValue)), std::string::npos);
}

TEST(CudaCheck, DeviceCountIsNonNegativeWithoutDriver) {
  // Without a driver this is 0, not an error or a crash.
  EXPECT_GE(device_count(), 0);
}

TEST(CudaCheck, ArchMatching) {
  EXPECT_TRUE(arch_matches("sm_90a", "sm_90a"));
  EXPECT_TRUE(arch_matches("sm_90", "sm_90a"));
  EXPECT_FALSE(arch_matches("sm_90a", "sm_100a"));
  EXPECT_FALSE(arch_matches("sm_80", "sm_86"));
  EXPECT_FALSE(arch_matches("", "sm_90a"));
}

class CubinCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ds_cubin_cache_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(CubinCacheTest, CompilesOnceThenHitsTheCache) {
  auto first = compile_cubin_cached(testing::kScaleSource, "scale", {"--std=c++17"}, "sm_90a",
                                    dir_.string());
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_FALSE(first->cache_hit);
  ASSERT_GE(first->cubin.size(), 4u);
  EXPECT_EQ(first->cubin.substr(0, 4), std::string("\x7f" "ELF"));
  EXPECT_TRUE(std::filesystem::is_regular_file(first->cache_path));
  EXPECT_EQ(std::filesystem::path(first->cache_path).parent_path(), dir_);

  auto second = compile_cubin_cached(testing::kScaleSource, "scale", {"--std=c++17"}, "sm_90a",
                                     dir_.string());
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_TRUE(second->cache_hit);
  EXPECT_EQ(second->cache_path, first->cache_path);
  EXPECT_EQ(second->cubin, first->cubin);

  // Another architecture or option set is another cache entry.
  auto other = compile_cubin_cached(testing::kScaleSource, "scale", {"--std=c++17", "-lineinfo"},
                                    "sm_90a", dir_.string());
  ASSERT_TRUE(other.ok()) << other.status().message();
  EXPECT_FALSE(other->cache_hit);
  EXPECT_NE(other->cache_path, first->cache_path);
}

TEST_F(CubinCacheTest, CompileErrorsCarryTheNvrtcLog) {
  auto r = compile_cubin_cached("extern \"C\" __global__ void k() { undefined_symbol(); }", "broken",
                                {}, "sm_90a", dir_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("broken"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("undefined_symbol"), std::string::npos) << r.status().message();
  EXPECT_FALSE(std::filesystem::exists(dir_) && !std::filesystem::is_empty(dir_));
}

TEST_F(CubinCacheTest, RejectsBadArchitecture) {
  auto r = compile_cubin_cached(testing::kScaleSource, "scale", {}, "compute90", dir_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("compute90"), std::string::npos);
}

TEST(CubinCacheDir, FollowsXdgCacheHome) {
  const char* old = std::getenv("XDG_CACHE_HOME");
  std::string saved = old ? old : "";
  ::setenv("XDG_CACHE_HOME", "/tmp/xdg-test", 1);
  EXPECT_EQ(cubin_cache_dir(), "/tmp/xdg-test/dsrt");
  if (old) ::setenv("XDG_CACHE_HOME", saved.c_str(), 1); else ::unsetenv("XDG_CACHE_HOME");
}

}  // namespace
}  // namespace ds::cuda
