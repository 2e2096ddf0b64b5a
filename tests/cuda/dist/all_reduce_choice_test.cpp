// The start-up timing of the custom all-reduce against NCCL
// (runtime/dist/cuda/all_reduce_choice.h) on local GPU groups of 2 and of all
// visible GPUs: both times are positive and finite, both backends still give
// exact sums afterwards (the timing advanced every rank's epochs in step), the
// process-wide result is reused, and bad arguments are errors. Skips with fewer
// than 2 GPUs, without peer access or without NCCL.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "runtime/cuda/device_buffer.h"
#include "runtime/dist/cuda/all_reduce_choice.h"
#include "tests/cuda/dist/dist_test_util.h"

namespace ds::cuda::testing {
namespace {

using namespace std::chrono_literals;

bool peer_access(int n) {
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b) {
      int ok = 1;
      if (a != b) (void)cudaDeviceCanAccessPeer(&ok, a, b);
      if (!ok) return false;
    }
  return true;
}

// One f32 all-reduce of test values on every rank through `custom` (or the
// communicators) and the exact check of the sums.
void expect_exact_sums(int size, CustomAllReduce* custom, const std::vector<DeviceCommunicator*>& comms,
                       const std::string& what) {
  const size_t n = 5120;
  std::vector<std::string> mismatch(static_cast<size_t>(size));
  auto st = run_ranks(0, size, [&](int r) -> Status {
    DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(r));
    DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
    DS_ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::allocate(n * 4));
    const auto host = encode(n, DType::kF32, [&](size_t i) { return test_value(r, i, 3); });
    DS_RETURN_IF_ERROR(buf.copy_from_host(host.data(), host.size()));
    if (custom) {
      DS_RETURN_IF_ERROR(custom->all_reduce_sum(r, buf.data(), buf.data(), DType::kF32, n, stream.get()));
    } else {
      DS_RETURN_IF_ERROR(comms[static_cast<size_t>(r)]->all_reduce_sum(buf.data(), buf.data(), DType::kF32, n, stream.get()));
    }
    DS_RETURN_IF_ERROR(comms[static_cast<size_t>(r)]->wait(stream.get(), 20s));
    std::vector<uint8_t> got(n * 4);
    DS_RETURN_IF_ERROR(buf.copy_to_host(got.data(), got.size()));
    mismatch[static_cast<size_t>(r)] = compare_exact(got, DType::kF32, n, [&](size_t i) {
      float s = 0;
      for (int k = 0; k < size; ++k) s += test_value(k, i, 3);
      return s;
    });
    return Status::Ok();
  });
  expect_all_ok(st, what);
  for (int r = 0; r < size; ++r) EXPECT_EQ(mismatch[static_cast<size_t>(r)], "") << what << ", rank " << r;
}

TEST(AllReduceChoice, TimesBothBackendsAndLeavesThemUsable) {
  DS_REQUIRE_GPUS(2);
  if (!have_device_collectives()) GTEST_SKIP() << "built without NCCL";
  for (int size : group_sizes())
  for (size_t ll : {CustomAllReduce::kDefaultLlMaxBytes, size_t{0}}) {  // the kernel's LL protocol, then staged
    if (!peer_access(size)) GTEST_SKIP() << "no peer access among the first " << size << " GPUs";
    auto custom = CustomAllReduce::create(first_devices(size), CustomAllReduce::kDefaultMaxBytes, 20s, ll);
    ASSERT_TRUE(custom.ok()) << custom.status().message();
    auto group = create_local_device_group(first_devices(size), 60s);
    ASSERT_TRUE(group.ok()) << group.status().message();
    std::vector<DeviceCommunicator*> comms;
    for (auto& c : *group) comms.push_back(c.get());
    AllReduceTimingOptions o;
    o.calls = 8;
    o.replays = 3;
    o.timeout = 20s;
    auto t = time_decode_all_reduce(**custom, comms, first_devices(size), o);
    ASSERT_TRUE(t.ok()) << t.status().message();
    std::printf("%d GPUs, %zu bytes: custom kernel (%s) %.2f us, NCCL %.2f us per all-reduce -> %s\n", size, o.bytes,
                o.bytes <= (*custom)->ll_max_bytes() ? "LL" : "staged", t->custom_us, t->nccl_us,
                prefer_custom_all_reduce(*t) ? "custom" : "NCCL");
    EXPECT_TRUE(std::isfinite(t->custom_us) && t->custom_us > 0.0) << t->custom_us;
    EXPECT_TRUE(std::isfinite(t->nccl_us) && t->nccl_us > 0.0) << t->nccl_us;
    expect_exact_sums(size, custom->get(), comms, StrCat() << size << " GPUs, custom kernel after the timing");
    expect_exact_sums(size, nullptr, comms, StrCat() << size << " GPUs, NCCL after the timing");

    // Process-wide: the second call for the same devices returns the first result without measuring.
    bool measured = true;
    auto first = decode_all_reduce_timing(**custom, comms, first_devices(size), o, &measured);
    ASSERT_TRUE(first.ok()) << first.status().message();
    auto again = decode_all_reduce_timing(**custom, comms, first_devices(size), o, &measured);
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_FALSE(measured);
    EXPECT_EQ(again->custom_us, first->custom_us);
    EXPECT_EQ(again->nccl_us, first->nccl_us);

    // Bad arguments.
    AllReduceTimingOptions bad = o;
    bad.bytes = 24;  // not a multiple of 16
    EXPECT_FALSE(time_decode_all_reduce(**custom, comms, first_devices(size), bad).ok());
    bad = o;
    bad.calls = 0;
    EXPECT_FALSE(time_decode_all_reduce(**custom, comms, first_devices(size), bad).ok());
    bad = o;
    bad.bytes = (*custom)->max_bytes() + 16;
    EXPECT_FALSE(time_decode_all_reduce(**custom, comms, first_devices(size), bad).ok());
    std::vector<DeviceCommunicator*> fewer(comms.begin(), comms.end() - 1);
    EXPECT_FALSE(time_decode_all_reduce(**custom, fewer, first_devices(size), o).ok());
  }
}

TEST(AllReduceChoice, PrefersTheCustomKernelUnlessNcclIsClearlyFaster) {
  EXPECT_TRUE(prefer_custom_all_reduce({7.0, 9.0}));
  EXPECT_TRUE(prefer_custom_all_reduce({7.0, 7.0}));
  EXPECT_TRUE(prefer_custom_all_reduce({7.1, 7.0}));   // within 3%
  EXPECT_FALSE(prefer_custom_all_reduce({12.0, 7.0}));
}

}  // namespace
}  // namespace ds::cuda::testing

namespace ds::cuda::testing {
namespace {

// A report for docs/PERF.md (tools/gpu/bench_tp.sh, part nccl): the custom
// kernel's LL and staged protocols and NCCL, each graph-timed by
// time_decode_all_reduce, over f32 decode rows of a 5120-wide model (1 to 12
// rows: where the LL bound CustomAllReduce::kDefaultLlMaxBytes should sit).
// Prints only; the check is that every backend still sums exactly afterwards.
TEST(AllReduceProtocols, DecodeRowsReport) {
  DS_REQUIRE_GPUS(2);
  if (!have_device_collectives()) GTEST_SKIP() << "built without NCCL";
  const int size = device_count();
  if (!peer_access(size)) GTEST_SKIP() << "no peer access among the first " << size << " GPUs";
  auto ll = CustomAllReduce::create(first_devices(size), CustomAllReduce::kDefaultMaxBytes, 20s,
                                    CustomAllReduce::kMaxLlBytes);
  auto staged = CustomAllReduce::create(first_devices(size), CustomAllReduce::kDefaultMaxBytes, 20s, 0);
  ASSERT_TRUE(ll.ok()) << ll.status().message();
  ASSERT_TRUE(staged.ok()) << staged.status().message();
  auto group = create_local_device_group(first_devices(size), 60s);
  ASSERT_TRUE(group.ok()) << group.status().message();
  std::vector<DeviceCommunicator*> comms;
  for (auto& c : *group) comms.push_back(c.get());
  std::printf("all_reduce of f32 rows of 5120 on %d GPUs, us per call (graphs of 16 calls, median of 5)\n", size);
  std::printf("  %5s %8s %10s %10s %10s\n", "rows", "bytes", "LL", "staged", "NCCL");
  for (int rows : {1, 2, 3, 4, 6, 8, 12}) {
    AllReduceTimingOptions o;
    o.bytes = static_cast<size_t>(rows) * 5120 * 4;
    o.calls = 16;
    o.replays = 5;
    o.timeout = 20s;
    auto a = time_decode_all_reduce(**ll, comms, first_devices(size), o);
    ASSERT_TRUE(a.ok()) << a.status().message();
    auto b = time_decode_all_reduce(**staged, comms, first_devices(size), o);
    ASSERT_TRUE(b.ok()) << b.status().message();
    std::printf("  %5d %8zu %10.2f %10.2f %10.2f\n", rows, o.bytes, a->custom_us, b->custom_us,
                (a->nccl_us + b->nccl_us) / 2);
  }
  expect_exact_sums(size, ll->get(), comms, "LL protocol after the report");
  expect_exact_sums(size, staged->get(), comms, "staged protocol after the report");
  expect_exact_sums(size, nullptr, comms, "NCCL after the report");
}

}  // namespace
}  // namespace ds::cuda::testing
