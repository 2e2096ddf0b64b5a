// A small bandwidth report for docs/PERF.md: all_reduce of bf16 at 64 MiB
// and at decode sizes (5120 x bf16 x 1..256 rows) on all local GPUs, eager
// (one enqueue per call) and replayed from a CUDA graph. Bus bandwidth =
// bytes * 2 (N - 1) / N / time (the nccl-tests convention). Prints only; the
// check is that the collectives complete and keep zeros zero.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "runtime/cuda/device_buffer.h"
#include "tests/cuda/dist/dist_test_util.h"

namespace ds::cuda::testing {
namespace {

using namespace std::chrono_literals;

struct Timing {
  double enqueue_us = 0;  // host time per eager call (non-blocking NCCL: a helper thread per call)
  double eager_us = 0;
  double graph_us = 0;
};

// Times `iters` all_reduces of n bf16 elements on rank c (every rank runs the same).
Status time_all_reduce(DeviceCommunicator& c, Stream& stream, DeviceBuffer& buf, size_t n, int iters,
                       Timing* out) {
  const DType t = DType::kBF16;
  for (int i = 0; i < 3; ++i) DS_RETURN_IF_ERROR(c.all_reduce_sum(buf.data(), t, n, stream.get()));
  DS_RETURN_IF_ERROR(c.wait(stream.get(), 60s));
  DS_ASSIGN_OR_RETURN(Event start, Event::create());
  DS_ASSIGN_OR_RETURN(Event stop, Event::create());

  DS_RETURN_IF_ERROR(start.record(stream));
  const auto host_start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) DS_RETURN_IF_ERROR(c.all_reduce_sum(buf.data(), t, n, stream.get()));
  const std::chrono::duration<double, std::micro> host_us = std::chrono::steady_clock::now() - host_start;
  DS_RETURN_IF_ERROR(stop.record(stream));
  DS_RETURN_IF_ERROR(c.wait(stream.get(), 60s));
  DS_ASSIGN_OR_RETURN(float eager_ms, stop.elapsed_ms_since(start));

  DS_ASSIGN_OR_RETURN(GraphExec exec, capture_graph(stream.get(), [&] {
                        Status captured;
                        for (int i = 0; i < iters && captured.ok(); ++i)
                          captured = c.all_reduce_sum(buf.data(), t, n, stream.get());
                        return captured;
                      }));
  DS_RETURN_IF_ERROR(exec.launch(stream));  // warm-up (uploads the graph)
  DS_RETURN_IF_ERROR(start.record(stream));
  DS_RETURN_IF_ERROR(exec.launch(stream));
  DS_RETURN_IF_ERROR(stop.record(stream));
  DS_RETURN_IF_ERROR(c.wait(stream.get(), 60s));
  DS_ASSIGN_OR_RETURN(float graph_ms, stop.elapsed_ms_since(start));
  out->enqueue_us = host_us.count() / iters;
  out->eager_us = eager_ms * 1000.0 / iters;
  out->graph_us = graph_ms * 1000.0 / iters;
  return Status::Ok();
}

TEST(NcclBandwidth, AllReduceReport) {
  DS_REQUIRE_GPUS(2);
  const int size = device_count();
  auto group = create_local_device_group(first_devices(size), 60s);
  ASSERT_TRUE(group.ok()) << group.status().message();
  auto& g = *group;

  struct Msg {
    const char* label;
    size_t n;
    int iters;
  };
  std::vector<Msg> msgs = {{"64 MiB", size_t{32} << 20, 20}};
  static const char* kRowLabels[] = {"5120 x 1", "5120 x 8", "5120 x 32", "5120 x 64", "5120 x 256"};
  const int rows[] = {1, 8, 32, 64, 256};
  for (int i = 0; i < 5; ++i) msgs.push_back({kRowLabels[i], size_t{5120} * rows[i], 200});

  std::vector<std::vector<Timing>> timing(size, std::vector<Timing>(msgs.size()));
  std::vector<std::string> mismatch(size);
  auto st = run_ranks(0, size, [&](int r) -> Status {
    DeviceCommunicator& c = *g[r];
    DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(c.device()));
    DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
    DS_ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::allocate(msgs[0].n * 2));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(buf.data(), 0, buf.bytes()));
    for (size_t m = 0; m < msgs.size(); ++m)
      DS_RETURN_IF_ERROR(time_all_reduce(c, stream, buf, msgs[m].n, msgs[m].iters, &timing[r][m]));
    std::vector<uint8_t> head(8192);
    DS_RETURN_IF_ERROR(buf.copy_to_host(head.data(), head.size()));
    mismatch[r] = compare_exact(head, DType::kBF16, head.size() / 2, [](size_t) { return 0.0f; });
    return Status::Ok();
  });
  expect_all_ok(st, "all_reduce timing");
  for (int r = 0; r < size; ++r) EXPECT_EQ(mismatch[r], "") << "rank " << r;
  if (HasFailure()) return;

  const double factor = 2.0 * (size - 1) / size;
  std::printf("all_reduce bf16 on %d GPUs (rank 0's stream; bus bandwidth = bytes * 2(N-1)/N / time)\n", size);
  std::printf("  %-12s %12s %10s %10s %12s %10s %12s\n", "message", "bytes", "enqueue us", "eager us",
              "eager GB/s", "graph us", "graph GB/s");
  for (size_t m = 0; m < msgs.size(); ++m) {
    const double bytes = static_cast<double>(msgs[m].n) * 2;
    const Timing& t = timing[0][m];
    std::printf("  %-12s %12.0f %10.1f %10.1f %12.1f %10.1f %12.1f\n", msgs[m].label, bytes, t.enqueue_us, t.eager_us,
                bytes * factor / (t.eager_us * 1e3), t.graph_us, bytes * factor / (t.graph_us * 1e3));
  }
}

}  // namespace
}  // namespace ds::cuda::testing
