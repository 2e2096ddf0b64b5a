// all_reduce_sum / all_gather over local GPU groups (2 and all N GPUs) vs
// host sums, bf16/f16/f32 from one element to 64 MiB; a CUDA-graph-captured
// all_reduce replayed; argument errors. GPU cases skip with fewer than 2 GPUs.
#include <gtest/gtest.h>

#include <chrono>

#include "runtime/cuda/device_buffer.h"
#include "runtime/dist/communicator.h"
#include "runtime/dist/cuda/gather_rows.h"
#include "tests/cuda/dist/dist_test_util.h"

namespace ds::cuda::testing {
namespace {

using namespace std::chrono_literals;
constexpr auto kWait = 60s;

using Group = std::vector<std::unique_ptr<DeviceCommunicator>>;

Group make_group(int size) {
  auto g = create_local_device_group(first_devices(size), 60s);
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? std::move(g).value() : Group{};
}

struct Case {
  DType dtype;
  size_t n;
};

// Element counts: one element, an odd small count, ~1 MiB (odd) and up to
// `max_bytes` (64 MiB for bf16 all_reduce, 16 MiB otherwise, to keep the
// host-side checks short).
std::vector<Case> cases(bool gather) {
  std::vector<Case> out;
  for (DType t : {DType::kBF16, DType::kF32}) {
    const size_t es = dtype_size(t);
    const size_t max_bytes = (t == DType::kBF16 && !gather) ? (size_t{64} << 20) : (size_t{16} << 20);
    for (size_t n : {size_t{1}, size_t{4099}, (size_t{1} << 20) / es + 3, max_bytes / es}) out.push_back({t, n});
  }
  out.push_back({DType::kF16, 4099});
  out.push_back({DType::kF16, (size_t{1} << 20) / 2 + 3});
  return out;
}

// In place, or out of place into a second buffer (`out_of_place`).
Status all_reduce_rank(DeviceCommunicator& c, Case k, int seed, std::string* mismatch, bool out_of_place = false) {
  DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(c.device()));
  DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
  auto bytes = encode(k.n, k.dtype, [&](size_t i) { return test_value(c.rank(), i, seed); });
  DS_ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::allocate(bytes.size()));
  DS_RETURN_IF_ERROR(buf.copy_from_host(bytes.data(), bytes.size()));
  DeviceBuffer out;
  if (out_of_place) {
    DS_ASSIGN_OR_RETURN(out, DeviceBuffer::allocate(bytes.size()));
    DS_RETURN_IF_ERROR(c.all_reduce_sum(buf.data(), out.data(), k.dtype, k.n, stream.get()));
  } else {
    DS_RETURN_IF_ERROR(c.all_reduce_sum(buf.data(), k.dtype, k.n, stream.get()));
  }
  DS_RETURN_IF_ERROR(c.wait(stream.get(), kWait));
  if (out_of_place) {
    // The input is untouched.
    std::vector<uint8_t> in_after(bytes.size());
    DS_RETURN_IF_ERROR(buf.copy_to_host(in_after.data(), in_after.size()));
    if (in_after != bytes) return Status::Error("out-of-place all_reduce_sum modified its input");
  }
  DS_RETURN_IF_ERROR((out_of_place ? out : buf).copy_to_host(bytes.data(), bytes.size()));
  *mismatch = compare_exact(bytes, k.dtype, k.n, [&](size_t i) {
    float sum = 0;
    for (int r = 0; r < c.size(); ++r) sum += test_value(r, i, seed);
    return sum;
  });
  return Status::Ok();
}

Status all_gather_rank(DeviceCommunicator& c, Case k, int seed, bool in_place, std::string* mismatch) {
  DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(c.device()));
  DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
  const size_t es = dtype_size(k.dtype);
  auto mine = encode(k.n, k.dtype, [&](size_t i) { return test_value(c.rank(), i, seed); });
  DS_ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::allocate(k.n * es * c.size()));
  DS_RETURN_IF_ERROR(out.copy_from_host(std::vector<uint8_t>(out.bytes(), 0xff).data(), out.bytes()));
  DeviceBuffer in;
  const void* src = nullptr;
  if (in_place) {
    uint8_t* slice = static_cast<uint8_t*>(out.data()) + c.rank() * k.n * es;
    DS_CUDA_RETURN_IF_ERROR(cudaMemcpy(slice, mine.data(), mine.size(), cudaMemcpyHostToDevice));
    src = slice;
  } else {
    DS_ASSIGN_OR_RETURN(in, DeviceBuffer::allocate(mine.size()));
    DS_RETURN_IF_ERROR(in.copy_from_host(mine.data(), mine.size()));
    src = in.data();
  }
  DS_RETURN_IF_ERROR(c.all_gather(src, k.dtype, k.n, out.data(), stream.get()));
  DS_RETURN_IF_ERROR(c.wait(stream.get(), kWait));
  std::vector<uint8_t> got(out.bytes());
  DS_RETURN_IF_ERROR(out.copy_to_host(got.data(), got.size()));
  // Rank-major: out[r * n + i] = rank r's in[i].
  *mismatch = compare_exact(got, k.dtype, k.n * c.size(),
                            [&](size_t j) { return test_value(static_cast<int>(j / k.n), j % k.n, seed); });
  return Status::Ok();
}

TEST(NcclCollectives, AllReduceSumMatchesHostSums) {
  DS_REQUIRE_GPUS(2);
  for (int size : group_sizes()) {
    Group g = make_group(size);
    ASSERT_EQ(static_cast<int>(g.size()), size);
    int seed = 0;
    for (Case k : cases(false)) {
      ++seed;
      std::vector<std::string> mismatch(size);
      auto st = run_ranks(0, size, [&](int r) { return all_reduce_rank(*g[r], k, seed, &mismatch[r]); });
      const std::string what = StrCat() << "all_reduce_sum " << size << " GPUs, " << k.n << " x " << dtype_name(k.dtype);
      expect_all_ok(st, what);
      for (int r = 0; r < size; ++r) EXPECT_EQ(mismatch[r], "") << what << ": rank " << r;
    }
    // Out of place (the plan's all_reduce writes a separate arena buffer).
    for (Case k : {Case{DType::kBF16, 4099}, Case{DType::kF32, (size_t{1} << 20) / 4 + 3}}) {
      ++seed;
      std::vector<std::string> mismatch(size);
      auto st = run_ranks(0, size, [&](int r) { return all_reduce_rank(*g[r], k, seed, &mismatch[r], true); });
      const std::string what = StrCat() << "out-of-place all_reduce_sum " << size << " GPUs, " << k.n << " x "
                                        << dtype_name(k.dtype);
      expect_all_ok(st, what);
      for (int r = 0; r < size; ++r) EXPECT_EQ(mismatch[r], "") << what << ": rank " << r;
    }
  }
}

TEST(NcclCollectives, AllGatherIsRankMajor) {
  DS_REQUIRE_GPUS(2);
  for (int size : group_sizes()) {
    Group g = make_group(size);
    ASSERT_EQ(static_cast<int>(g.size()), size);
    int seed = 100;
    for (Case k : cases(true)) {
      for (bool in_place : {false, true}) {
        if (in_place && k.n != 4099) continue;
        ++seed;
        std::vector<std::string> mismatch(size);
        auto st = run_ranks(0, size, [&](int r) { return all_gather_rank(*g[r], k, seed, in_place, &mismatch[r]); });
        const std::string what = StrCat() << "all_gather " << size << " GPUs, " << k.n << " x "
                                          << dtype_name(k.dtype) << (in_place ? " in place" : "");
        expect_all_ok(st, what);
        for (int r = 0; r < size; ++r) EXPECT_EQ(mismatch[r], "") << what << ": rank " << r;
      }
    }
  }
}

Status gather_rows_rank(DeviceCommunicator& c, DType t, int64_t rows, int64_t n, int seed, std::string* mismatch) {
  DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(c.device()));
  DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
  const size_t count = static_cast<size_t>(rows * n), es = dtype_size(t);
  auto mine = encode(count, t, [&](size_t i) { return test_value(c.rank(), i, seed); });
  DS_ASSIGN_OR_RETURN(DeviceBuffer in, DeviceBuffer::allocate(mine.size()));
  DS_RETURN_IF_ERROR(in.copy_from_host(mine.data(), mine.size()));
  DS_ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::allocate(count * es * c.size()));
  DS_ASSIGN_OR_RETURN(DeviceBuffer scratch,
                      DeviceBuffer::allocate(all_gather_rows_scratch_bytes(c.size(), rows, n, t)));
  DS_RETURN_IF_ERROR(all_gather_rows(c, in.data(), t, rows, n, out.data(), scratch.data(), stream.get()));
  DS_RETURN_IF_ERROR(c.wait(stream.get(), kWait));
  std::vector<uint8_t> got(out.bytes());
  DS_RETURN_IF_ERROR(out.copy_to_host(got.data(), got.size()));
  // out[row, r * n + j] = rank r's in[row, j].
  const size_t width = static_cast<size_t>(n) * c.size();
  *mismatch = compare_exact(got, t, count * c.size(), [&](size_t k) {
    const size_t row = k / width, col = k % width;
    return test_value(static_cast<int>(col / n), row * n + col % n, seed);
  });
  return Status::Ok();
}

TEST(NcclCollectives, AllGatherRowsInterleavesRanks) {
  DS_REQUIRE_GPUS(2);
  for (int size : group_sizes()) {
    Group g = make_group(size);
    ASSERT_EQ(static_cast<int>(g.size()), size);
    int seed = 300;
    for (auto [t, rows] : {std::pair{DType::kBF16, int64_t{1}}, std::pair{DType::kBF16, int64_t{3}},
                           std::pair{DType::kF32, int64_t{17}}}) {
      const int64_t n = 1001;
      ++seed;
      std::vector<std::string> mismatch(size);
      auto st = run_ranks(0, size, [&](int r) { return gather_rows_rank(*g[r], t, rows, n, seed, &mismatch[r]); });
      const std::string what = StrCat() << "all_gather_rows " << size << " GPUs, [" << rows << ", " << n << "] "
                                        << dtype_name(t);
      expect_all_ok(st, what);
      for (int r = 0; r < size; ++r) EXPECT_EQ(mismatch[r], "") << what << ": rank " << r;
    }
  }
}

// A graph holding one all_reduce, replayed 3 times: x -> S, N*S, N^2*S
// (S = sum over ranks of x), exact in bf16 for these values.
TEST(NcclCollectives, GraphCapturedAllReduceReplays) {
  DS_REQUIRE_GPUS(2);
  const int size = device_count();
  Group g = make_group(size);
  ASSERT_EQ(static_cast<int>(g.size()), size);
  const DType t = DType::kBF16;
  const size_t n = 5120 * 8;  // decode-sized: 8 rows of hidden size 5120
  constexpr int kReplays = 3;
  std::vector<std::string> mismatch(size);
  auto st = run_ranks(0, size, [&](int r) -> Status {
    DeviceCommunicator& c = *g[r];
    DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(c.device()));
    DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
    auto value = [&](int rank, size_t i) { return static_cast<float>(static_cast<int>((i + rank) % 5) - 2); };
    auto bytes = encode(n, t, [&](size_t i) { return value(r, i); });
    DS_ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::allocate(bytes.size()));
    DS_ASSIGN_OR_RETURN(DeviceBuffer warm, DeviceBuffer::allocate(bytes.size()));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(warm.data(), 0, warm.bytes()));
    // Warm-up outside the capture (connections are set up lazily).
    DS_RETURN_IF_ERROR(c.all_reduce_sum(warm.data(), t, n, stream.get()));
    DS_RETURN_IF_ERROR(c.wait(stream.get(), kWait));

    DS_ASSIGN_OR_RETURN(GraphExec exec,
                        capture_graph(stream.get(), [&] { return c.all_reduce_sum(buf.data(), t, n, stream.get()); }));

    DS_RETURN_IF_ERROR(buf.copy_from_host(bytes.data(), bytes.size()));
    for (int k = 0; k < kReplays; ++k) DS_RETURN_IF_ERROR(exec.launch(stream));
    DS_RETURN_IF_ERROR(c.wait(stream.get(), kWait));
    DS_RETURN_IF_ERROR(buf.copy_to_host(bytes.data(), bytes.size()));
    mismatch[r] = compare_exact(bytes, t, n, [&](size_t i) {
      float sum = 0;
      for (int q = 0; q < size; ++q) sum += value(q, i);
      for (int k = 1; k < kReplays; ++k) sum *= static_cast<float>(size);
      return sum;
    });
    return Status::Ok();
  });
  expect_all_ok(st, "graph-captured all_reduce");
  for (int r = 0; r < size; ++r) EXPECT_EQ(mismatch[r], "") << "graph replay, rank " << r;
}

// The multi-process path (NCCL id broadcast over the host group), with the
// host ranks as threads of this process (in-process Gloo).
TEST(NcclCollectives, DeviceGroupOverHostGroup) {
  DS_REQUIRE_GPUS(2);
  if (!have_collectives()) GTEST_SKIP() << "built without Gloo host collectives";
  const int size = 2;
  auto host = create_local_group(size, CommOptions{});
  ASSERT_TRUE(host.ok()) << host.status().message();
  std::vector<std::string> mismatch(size);
  auto st = run_ranks(0, size, [&](int r) -> Status {
    DS_ASSIGN_OR_RETURN(auto c, create_device_group(*(*host)[r], r, 60s));
    if (c->rank() != r || c->size() != size || c->device() != r)
      return Status::Error(StrCat() << "rank/size/device " << c->rank() << "/" << c->size() << "/" << c->device());
    return all_reduce_rank(*c, Case{DType::kBF16, 4099}, 7, &mismatch[r]);
  });
  expect_all_ok(st, "create_device_group + all_reduce");
  for (int r = 0; r < size; ++r) EXPECT_EQ(mismatch[r], "") << "rank " << r;
}

TEST(NcclCollectives, RejectsBadArguments) {
  DS_REQUIRE_GPUS(1);
  Group g = make_group(1);
  ASSERT_EQ(g.size(), 1u);
  DeviceCommunicator& c = *g[0];
  ASSERT_TRUE(cudaSetDevice(c.device()) == cudaSuccess);
  auto stream = Stream::create();
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  auto buf = DeviceBuffer::allocate(4096);
  ASSERT_TRUE(buf.ok()) << buf.status().message();

  Status st = c.all_reduce_sum(buf->data(), DType::kI32, 16, stream->get());
  EXPECT_NE(st.message().find("not supported"), std::string::npos) << st.message();
  st = c.all_reduce_sum(nullptr, DType::kF32, 16, stream->get());
  EXPECT_NE(st.message().find("null"), std::string::npos) << st.message();
  EXPECT_TRUE(c.all_reduce_sum(nullptr, DType::kF32, 0, stream->get()).ok());
  auto* bytes = static_cast<uint8_t*>(buf->data());
  st = c.all_reduce_sum(bytes, bytes + 8, DType::kF32, 16, stream->get());
  EXPECT_NE(st.message().find("overlap"), std::string::npos) << st.message();
  // Overlap other than "in = this rank's slice of out".
  auto* base = static_cast<uint8_t*>(buf->data());
  st = c.all_gather(base + 4, DType::kF32, 16, base, stream->get());
  EXPECT_NE(st.message().find("overlaps"), std::string::npos) << st.message();
  // A size-1 group: all_gather copies, all_reduce keeps the values.
  std::vector<float> host(16);
  for (int i = 0; i < 16; ++i) host[i] = static_cast<float>(i);
  ASSERT_TRUE(buf->copy_from_host(host.data(), 64).ok());
  ASSERT_TRUE(c.all_gather(base, DType::kF32, 16, base + 1024, stream->get()).ok());
  ASSERT_TRUE(c.all_reduce_sum(base + 1024, DType::kF32, 16, stream->get()).ok());
  ASSERT_TRUE(c.wait(stream->get(), kWait).ok());
  std::vector<float> got(16);
  ASSERT_TRUE(cudaMemcpy(got.data(), base + 1024, 64, cudaMemcpyDeviceToHost) == cudaSuccess);
  EXPECT_EQ(got, host);
  // all_gather_rows on one rank is a copy; missing scratch is an error on > 1 rank only.
  ASSERT_TRUE(cudaMemset(base + 2048, 0, 64) == cudaSuccess);
  ASSERT_TRUE(all_gather_rows(c, base, DType::kF32, 4, 4, base + 2048, nullptr, stream->get()).ok());
  ASSERT_TRUE(c.wait(stream->get(), kWait).ok());
  ASSERT_TRUE(cudaMemcpy(got.data(), base + 2048, 64, cudaMemcpyDeviceToHost) == cudaSuccess);
  EXPECT_EQ(got, host);
}

// Runs without a GPU (CI): bad device lists are errors, never crashes.
TEST(NcclGroups, RejectBadDeviceLists) {
  const int count = device_count();
  auto none = create_local_device_group({});
  ASSERT_FALSE(none.ok());
  auto missing = create_local_device_group({count});
  ASSERT_FALSE(missing.ok());
  if (have_device_collectives()) {
    EXPECT_NE(none.status().message().find("no devices"), std::string::npos) << none.status().message();
    EXPECT_NE(missing.status().message().find("does not exist"), std::string::npos) << missing.status().message();
    if (count >= 1) {
      auto twice = create_local_device_group({0, 0});
      ASSERT_FALSE(twice.ok());
      EXPECT_NE(twice.status().message().find("listed twice"), std::string::npos) << twice.status().message();
    }
    auto bad_timeout = create_local_device_group({0}, std::chrono::milliseconds(0));
    ASSERT_FALSE(bad_timeout.ok());
    EXPECT_NE(bad_timeout.status().message().find("timeout"), std::string::npos);
  } else {
    EXPECT_NE(none.status().message().find("without"), std::string::npos) << none.status().message();
  }
}

TEST(NcclGroups, P2pCheck) {
  const int count = device_count();
  Status st = check_p2p({count});
  EXPECT_NE(st.message().find("does not exist"), std::string::npos) << st.message();
  if (count < 2) return;
  st = check_p2p({1, 1});
  EXPECT_NE(st.message().find("listed twice"), std::string::npos) << st.message();
  // Informational: whether this machine's GPUs reach each other directly.
  st = check_p2p(first_devices(count));
  std::printf("check_p2p(%d GPUs): %s\n", count, st.ok() ? "ok" : st.message().c_str());
  EXPECT_TRUE(check_p2p({0}).ok());
}

}  // namespace
}  // namespace ds::cuda::testing
