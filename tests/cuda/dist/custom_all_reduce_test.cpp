// CustomAllReduce (one-shot NVLink all-reduce of small messages) on local GPU
// groups of 2 and of all visible GPUs: exact sums (test values are exact in
// every dtype) for bf16/f16/f32 over sizes from one 16-byte vector to max_bytes
// (1 to 64 blocks), in place and out of place, many back-to-back calls (epochs,
// staging halves), and replays of a captured CUDA graph with changing inputs;
// both protocols (LL below ll_max_bytes, staged above it or with LL off), which
// give the same bits as a host sum in rank order even for inexact values, also
// when calls of different sizes interleave; argument checks. Skips with fewer
// than 2 GPUs or without peer access.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "runtime/cuda/device_buffer.h"
#include "runtime/dist/cuda/custom_all_reduce.h"
#include "tests/cuda/dist/dist_test_util.h"

namespace ds::cuda::testing {
namespace {

using namespace std::chrono_literals;

// ll_max_bytes 0: every message through the staged protocol.
std::unique_ptr<CustomAllReduce> make_group(int n, size_t ll_max_bytes = CustomAllReduce::kDefaultLlMaxBytes) {
  auto g = CustomAllReduce::create(first_devices(n), CustomAllReduce::kDefaultMaxBytes, 20s, ll_max_bytes);
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
  for (int size : group_sizes())
  // LL bounds: the default, none (staged only), and one that is not a whole number of LL blocks.
  for (size_t ll : {CustomAllReduce::kDefaultLlMaxBytes, size_t{0}, size_t{2048} * 3 + 16}) {
    REQUIRE_PEER_ACCESS(size);
    auto g = make_group(size, ll);
    ASSERT_NE(g, nullptr);
    const size_t max = g->max_bytes();
    std::vector<size_t> sizes = {16, 10240, 8192 * 3 + 16, max};
    if (ll != 0) sizes.push_back(ll);  // the largest LL message
    for (DType t : {DType::kBF16, DType::kF16, DType::kF32}) {
      const size_t es = dtype_size(t);
      for (size_t bytes : sizes) {
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
          expect_all_ok(st, StrCat() << size << " ranks, LL up to " << ll << " bytes, " << dtype_name(t) << ", "
                                     << bytes << " bytes");
          for (int r = 0; r < size; ++r)
            EXPECT_EQ(mismatch[r], "") << size << " ranks, LL up to " << ll << " bytes, " << dtype_name(t) << ", "
                                       << bytes << " bytes, " << (in_place ? "in place" : "out of place")
                                       << ", rank " << r;
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
  for (int size : group_sizes())
  for (size_t ll : {CustomAllReduce::kDefaultLlMaxBytes, size_t{0}}) {
    REQUIRE_PEER_ACCESS(size);
    auto g = make_group(size, ll);
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
        expect_all_ok(st, StrCat() << size << " ranks, LL up to " << ll << " bytes, " << dtype_name(t) << ", residual");
        for (int r = 0; r < size; ++r)
          EXPECT_EQ(mismatch[r], "") << size << " ranks, LL up to " << ll << " bytes, " << dtype_name(t) << ", "
                                     << (in_place ? "in place" : "out of place") << ", rank " << r;
      }
    }
  }
}

// Inexact values (random floats), calls of different sizes back to back (blocks
// of one message size advance their epochs while the others' stay), the
// residual on: both protocols give exactly the host's sum in the kernels' order
// (rank 0, then the residual, then ranks 1..N-1), rounded once to the dtype.
TEST(CustomAllReduce, ProtocolsMatchTheHostOrderOverInterleavedSizes) {
  DS_REQUIRE_GPUS(2);
  for (int size : group_sizes()) {
    REQUIRE_PEER_ACCESS(size);
    auto ll = make_group(size), staged = make_group(size, 0);
    ASSERT_NE(ll, nullptr);
    ASSERT_NE(staged, nullptr);
    ASSERT_GT(ll->ll_max_bytes(), size_t{20480});
    ASSERT_LT(ll->ll_max_bytes() + 4096, ll->max_bytes());
    const size_t lim = ll->ll_max_bytes();
    // LL sizes (one line, one row, a partial block, the bound) and staged ones (just above it).
    const std::vector<size_t> sizes = {16, 20480, 2048 + 16, lim, 16, lim + 16, 20480, 4096, lim + 4096, 16};
    for (DType t : {DType::kBF16, DType::kF32}) {
      const size_t es = dtype_size(t);
      std::vector<std::string> mismatch(size);
      auto value = [&](int rank, size_t i, size_t call) {  // a hash of the position, in [-3, 3)
        uint64_t z = (static_cast<uint64_t>(rank) << 48) ^ (static_cast<uint64_t>(call) << 40) ^ i;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        return static_cast<float>(z >> 40) / static_cast<float>(1 << 24) * 6.0f - 3.0f;
      };
      auto st = run_ranks(0, size, [&](int r) -> Status {
        DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(r));
        DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
        const size_t max = lim + 4096;
        DS_ASSIGN_OR_RETURN(DeviceBuffer in, DeviceBuffer::allocate(max));
        DS_ASSIGN_OR_RETURN(DeviceBuffer res, DeviceBuffer::allocate(max));
        DS_ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::allocate(max));
        for (size_t c = 0; c < sizes.size(); ++c) {
          const size_t bytes = sizes[c], n = bytes / es;
          const auto host = encode(n, t, [&](size_t i) { return value(r, i, c); });
          const auto rhost = encode(n, t, [&](size_t i) { return value(size, i, c); });
          // Host reference from the dtype-rounded inputs, in the kernels' order.
          std::vector<std::vector<uint8_t>> ins;
          for (int k = 0; k < size; ++k) ins.push_back(encode(n, t, [&](size_t i) { return value(k, i, c); }));
          const auto want = encode(n, t, [&](size_t i) {
            float acc = decode_at(ins[0], t, i);
            acc = decode_at(rhost, t, i) + acc;
            for (int k = 1; k < size; ++k) acc += decode_at(ins[static_cast<size_t>(k)], t, i);
            return acc;
          });
          for (CustomAllReduce* g : {ll.get(), staged.get()}) {
            DS_RETURN_IF_ERROR(in.copy_from_host(host.data(), bytes));
            DS_RETURN_IF_ERROR(res.copy_from_host(rhost.data(), bytes));
            DS_RETURN_IF_ERROR(g->all_reduce_sum(r, in.data(), out.data(), t, n, stream.get(), res.data()));
            DS_RETURN_IF_ERROR(stream.synchronize());
            std::vector<uint8_t> got(bytes);
            DS_RETURN_IF_ERROR(out.copy_to_host(got.data(), bytes));
            const std::string m = compare_exact(got, t, n, [&](size_t i) { return decode_at(want, t, i); });
            if (!m.empty() && mismatch[r].empty())
              mismatch[r] = StrCat() << (g == ll.get() ? "LL group" : "staged group") << ", call " << c << " ("
                                     << bytes << " bytes): " << m;
          }
        }
        return Status::Ok();
      });
      expect_all_ok(st, StrCat() << size << " ranks, " << dtype_name(t) << ", interleaved sizes");
      for (int r = 0; r < size; ++r) EXPECT_EQ(mismatch[r], "") << size << " ranks, " << dtype_name(t) << ", rank " << r;
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
  EXPECT_FALSE(CustomAllReduce::create({0, 1}, CustomAllReduce::kDefaultMaxBytes, 20s, 24).ok());  // LL bound
  EXPECT_FALSE(
      CustomAllReduce::create({0, 1}, CustomAllReduce::kDefaultMaxBytes, 20s, CustomAllReduce::kMaxLlBytes + 16).ok());
}

}  // namespace
}  // namespace ds::cuda::testing
