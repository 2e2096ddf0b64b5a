// CustomAllReduce (one-shot NVLink all-reduce of small messages) on local GPU
// groups of 2 and of all visible GPUs: exact sums (test values are exact in
// every dtype) for bf16/f16/f32 over sizes from one 16-byte vector to max_bytes
// (1 to 64 blocks), in place and out of place, many back-to-back calls (epochs,
// staging halves), and replays of a captured CUDA graph with changing inputs;
// argument checks. Skips with fewer than 2 GPUs or without peer access.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "runtime/cuda/device_buffer.h"
#include "runtime/dist/cuda/custom_all_reduce.h"
#include "tests/cuda/dist/dist_test_util.h"

namespace ds::cuda::testing {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<CustomAllReduce> make_group(int n) {
  auto g = CustomAllReduce::create(first_devices(n), CustomAllReduce::kDefaultMaxBytes, 20s);
  if (!g.ok()) {
    ADD_FAILURE() << g.status().message();
    return nullptr;
  }
  return std::move(g).value();
}

#define REQUIRE_PEER_ACCESS(n)                                                  \
  do {                                                                          \
    for (int a = 0; a < (n); ++a)                                               \
      for (int b = 0; b < (n); ++b) {                                           \
        int ok = 1;                                                             \
        if (a != b) (void)cudaDeviceCanAccessPeer(&ok, a, b);                   \
        if (!ok) GTEST_SKIP() << "GPU " << a << " has no peer access to " << b; \
      }                                                                         \
  } while (0)

TEST(CustomAllReduce, ExactSumsOverSizesDtypesAndRepeats) {
  DS_REQUIRE_GPUS(2);
  for (int size : group_sizes()) {
    REQUIRE_PEER_ACCESS(size);
    auto g = make_group(size);
    ASSERT_NE(g, nullptr);
    const size_t max = g->max_bytes();
    for (DType t : {DType::kBF16, DType::kF16, DType::kF32}) {
      const size_t es = dtype_size(t);
      for (size_t bytes : {size_t{16}, size_t{10240}, size_t{8192} * 3 + 16, max}) {
        const size_t n = bytes / es;
        for (bool in_place : {false, true}) {
          std::vector<std::string> mismatch(size);
          auto st = run_ranks(0, size, [&](int r) -> Status {
            DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(r));
            DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
            DS_ASSIGN_OR_RETURN(DeviceBuffer in, DeviceBuffer::allocate(bytes));
            DS_ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::allocate(bytes));
            // Several calls in a row: epochs advance, staging halves alternate.
            for (int rep = 0; rep < 5; ++rep) {
              const auto host = encode(n, t, [&](size_t i) { return test_value(r, i, rep); });
              DS_RETURN_IF_ERROR(in.copy_from_host(host.data(), bytes));
              void* dst = in_place ? in.data() : out.data();
              DS_RETURN_IF_ERROR(g->all_reduce_sum(r, in.data(), dst, t, n, stream.get()));
              DS_RETURN_IF_ERROR(stream.synchronize());
              std::vector<uint8_t> got(bytes);
              DS_CUDA_RETURN_IF_ERROR(cudaMemcpy(got.data(), dst, bytes, cudaMemcpyDeviceToHost));
              const std::string m = compare_exact(got, t, n, [&](size_t i) {
                float s = 0;
                for (int k = 0; k < size; ++k) s += test_value(k, i, rep);
                return s;
              });
              if (!m.empty() && mismatch[r].empty()) mismatch[r] = StrCat() << "call " << rep << ": " << m;
            }
            return Status::Ok();
          });
          expect_all_ok(st, StrCat() << size << " ranks, " << dtype_name(t) << ", " << bytes << " bytes");
          for (int r = 0; r < size; ++r)
            EXPECT_EQ(mismatch[r], "") << size << " ranks, " << dtype_name(t) << ", " << bytes << " bytes, "
                                       << (in_place ? "in place" : "out of place") << ", rank " << r;
        }
      }
    }
  }
}

// The fused residual add (all_reduce with a residual after a row-parallel
// linear): out = residual + sum over ranks, with out a separate buffer or the
// residual itself (in place, as the plans use it), in every dtype.
TEST(CustomAllReduce, AddsTheResidualOutOfPlaceAndInPlace) {
  DS_REQUIRE_GPUS(2);
  for (int size : group_sizes()) {
    REQUIRE_PEER_ACCESS(size);
    auto g = make_group(size);
    ASSERT_NE(g, nullptr);
    for (DType t : {DType::kBF16, DType::kF16, DType::kF32}) {
      const size_t bytes = 5120 * 4 * 3;  // three f32 decode rows of a 5120-wide model
      const size_t n = bytes / dtype_size(t);
      for (bool in_place : {false, true}) {
        std::vector<std::string> mismatch(size);
        auto st = run_ranks(0, size, [&](int r) -> Status {
          DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(r));
          DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
          DS_ASSIGN_OR_RETURN(DeviceBuffer in, DeviceBuffer::allocate(bytes));
          DS_ASSIGN_OR_RETURN(DeviceBuffer res, DeviceBuffer::allocate(bytes));
          DS_ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::allocate(bytes));
          for (int rep = 0; rep < 3; ++rep) {
            const auto host = encode(n, t, [&](size_t i) { return test_value(r, i, rep); });
            // The residual is replicated: the same values on every rank.
            const auto rhost = encode(n, t, [&](size_t i) { return test_value(size, i, rep + 7); });
            DS_RETURN_IF_ERROR(in.copy_from_host(host.data(), bytes));
            DS_RETURN_IF_ERROR(res.copy_from_host(rhost.data(), bytes));
            void* dst = in_place ? res.data() : out.data();
            DS_RETURN_IF_ERROR(g->all_reduce_sum(r, in.data(), dst, t, n, stream.get(), res.data()));
            DS_RETURN_IF_ERROR(stream.synchronize());
            std::vector<uint8_t> got(bytes);
            DS_CUDA_RETURN_IF_ERROR(cudaMemcpy(got.data(), dst, bytes, cudaMemcpyDeviceToHost));
            const std::string m = compare_exact(got, t, n, [&](size_t i) {
              float s = test_value(size, i, rep + 7);
              for (int k = 0; k < size; ++k) s += test_value(k, i, rep);
              return s;
            });
            if (!m.empty() && mismatch[r].empty()) mismatch[r] = StrCat() << "call " << rep << ": " << m;
          }
          return Status::Ok();
        });
        expect_all_ok(st, StrCat() << size << " ranks, " << dtype_name(t) << ", residual");
        for (int r = 0; r < size; ++r)
          EXPECT_EQ(mismatch[r], "") << size << " ranks, " << dtype_name(t) << ", "
                                     << (in_place ? "in place" : "out of place") << ", rank " << r;
      }
    }
  }
}

TEST(CustomAllReduce, GraphReplaysWithChangingInputs) {
  DS_REQUIRE_GPUS(2);
  const int size = 2;
  REQUIRE_PEER_ACCESS(size);
  auto g = make_group(size);
  ASSERT_NE(g, nullptr);
  const DType t = DType::kBF16;
  const size_t n = 5120 * 3;  // three decode rows of a 5120-wide model
  const size_t bytes = n * 2;
  std::vector<std::string> mismatch(size);
  auto st = run_ranks(0, size, [&](int r) -> Status {
    DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(r));
    DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
    DS_ASSIGN_OR_RETURN(DeviceBuffer in, DeviceBuffer::allocate(bytes));
    DS_ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::allocate(bytes));
    // Two all-reduces per graph (like two per layer), then replays.
    DS_ASSIGN_OR_RETURN(GraphExec exec, capture_graph(stream.get(), [&] {
                          Status cap = g->all_reduce_sum(r, in.data(), out.data(), t, n, stream.get());
                          return cap.ok() ? g->all_reduce_sum(r, out.data(), out.data(), t, n, stream.get()) : cap;
                        }));
    Status s;
    for (int rep = 0; rep < 20 && s.ok(); ++rep) {
      const auto host = encode(n, t, [&](size_t i) { return test_value(r, i, rep); });
      s = in.copy_from_host(host.data(), bytes);
      if (!s.ok()) break;
      s = exec.launch(stream);
      if (!s.ok()) break;
      s = stream.synchronize();
      if (!s.ok()) break;
      std::vector<uint8_t> got(bytes);
      s = out.copy_to_host(got.data(), bytes);
      if (!s.ok()) break;
      // (sum over ranks) summed again over ranks = size * sum.
      const std::string m = compare_exact(got, t, n, [&](size_t i) {
        float sum = 0;
        for (int k = 0; k < size; ++k) sum += test_value(k, i, rep);
        return sum * size;
      });
      if (!m.empty() && mismatch[r].empty()) mismatch[r] = StrCat() << "replay " << rep << ": " << m;
    }
    return s;
  });
  expect_all_ok(st, "graph replays");
  for (int r = 0; r < size; ++r) EXPECT_EQ(mismatch[r], "") << "rank " << r;
}

TEST(CustomAllReduce, RejectsWhatItDoesNotSupport) {
  DS_REQUIRE_GPUS(2);
  REQUIRE_PEER_ACCESS(2);
  auto g = make_group(2);
  ASSERT_NE(g, nullptr);
  auto buf = DeviceBuffer::allocate(64);
  ASSERT_TRUE(buf.ok());
  auto* p = static_cast<uint8_t*>(buf->data());
  EXPECT_FALSE(g->supports(p, p, DType::kI32, 16));                     // dtype
  EXPECT_FALSE(g->supports(p + 2, p, DType::kBF16, 8));                  // alignment
  EXPECT_FALSE(g->supports(p, p, DType::kBF16, 7));                      // not 16-byte multiple
  EXPECT_FALSE(g->supports(p, p, DType::kBF16, g->max_bytes() / 2 + 8));  // too large
  EXPECT_TRUE(g->supports(p, p, DType::kBF16, 8));
  EXPECT_FALSE(g->all_reduce_sum(2, p, p, DType::kBF16, 8, nullptr).ok());  // rank out of range
  EXPECT_FALSE(CustomAllReduce::create({0}).ok());                         // one rank
  EXPECT_FALSE(CustomAllReduce::create({0, 1}, 100).ok());                 // max_bytes not a multiple of 16
}

}  // namespace
}  // namespace ds::cuda::testing
