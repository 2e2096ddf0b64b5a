#include "runtime/dist/cuda/all_reduce_choice.h"

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "runtime/common/parallel_for.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda {
namespace {

// One rank's buffers, stream and the two captured graphs.
struct RankBench {
  Stream stream;
  DeviceBuffer data;
  Event start, stop;
  GraphExec custom, nccl;
};

// `calls` back-to-back calls of `one`, captured into one graph.
Result<GraphExec> capture_calls(const Stream& stream, int calls, const std::function<Status()>& one) {
  return capture_graph(stream.get(), [&] {
    Status st;
    for (int i = 0; i < calls && st.ok(); ++i) st = one();
    return st;
  });
}

// Setup on rank r's own thread: buffers, one eager call of each backend (NCCL
// connects lazily; every rank must take part at once), then the captures.
Status prepare_rank(RankBench& b, int r, CustomAllReduce& custom, DeviceCommunicator& comm, int device,
                    const AllReduceTimingOptions& opt) {
  DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  DS_ASSIGN_OR_RETURN(b.stream, Stream::create());
  DS_ASSIGN_OR_RETURN(b.data, DeviceBuffer::allocate(opt.bytes));
  DS_RETURN_IF_ERROR(b.data.zero());
  DS_ASSIGN_OR_RETURN(b.start, Event::create());
  DS_ASSIGN_OR_RETURN(b.stop, Event::create());
  const size_t n = opt.bytes / sizeof(float);
  auto custom_one = [&] { return custom.all_reduce_sum(r, b.data.data(), b.data.data(), DType::kF32, n, b.stream.get()); };
  auto nccl_one = [&] { return comm.all_reduce_sum(b.data.data(), b.data.data(), DType::kF32, n, b.stream.get()); };
  DS_RETURN_IF_ERROR(nccl_one());
  DS_RETURN_IF_ERROR(custom_one());
  DS_RETURN_IF_ERROR(comm.wait(b.stream.get(), opt.timeout));
  DS_ASSIGN_OR_RETURN(b.custom, capture_calls(b.stream, opt.calls, custom_one));
  DS_ASSIGN_OR_RETURN(b.nccl, capture_calls(b.stream, opt.calls, nccl_one));
  return Status::Ok();
}

// Replays one backend's graph on every rank (launched from this thread: graph
// launches do not block on peers) and returns the slowest rank's milliseconds.
Result<float> replay_all(std::vector<RankBench>& benches, const std::vector<DeviceCommunicator*>& comms,
                         const std::vector<int>& devices, bool use_custom, std::chrono::milliseconds timeout) {
  for (size_t r = 0; r < benches.size(); ++r) {
    RankBench& b = benches[r];
    DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices[r]));
    DS_RETURN_IF_ERROR(b.start.record(b.stream));
    DS_RETURN_IF_ERROR((use_custom ? b.custom : b.nccl).launch(b.stream));
    DS_RETURN_IF_ERROR(b.stop.record(b.stream));
  }
  float slowest = 0.0f;
  for (size_t r = 0; r < benches.size(); ++r) {
    DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices[r]));
    // A peer that never arrives: NCCL's wait times out, the custom kernel traps after its timeout.
    DS_RETURN_IF_ERROR(comms[r]->wait(benches[r].stream.get(), timeout));
    DS_ASSIGN_OR_RETURN(const float ms, benches[r].stop.elapsed_ms_since(benches[r].start));
    slowest = std::max(slowest, ms);
  }
  return slowest;
}

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

Result<AllReduceTiming> time_decode_all_reduce(CustomAllReduce& custom, const std::vector<DeviceCommunicator*>& comms,
                                               const std::vector<int>& devices, const AllReduceTimingOptions& opt) {
  const size_t n = devices.size();
  if (n < 2 || comms.size() != n || static_cast<int>(n) != custom.size())
    return Status::Error(StrCat() << "all-reduce timing: " << comms.size() << " communicators and " << n
                                  << " devices for a custom group of " << custom.size() << " ranks");
  if (opt.bytes == 0 || opt.bytes % 16 != 0 || opt.bytes > custom.max_bytes() || opt.calls < 1 || opt.replays < 1)
    return Status::Error(StrCat() << "all-reduce timing: bytes " << opt.bytes << " (a multiple of 16 up to "
                                  << custom.max_bytes() << "), calls " << opt.calls << ", replays " << opt.replays);
  int current = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&current));
  std::vector<RankBench> benches(n);
  std::vector<Status> status(n);
  parallel_for_each(n, [&](size_t r) {
    status[r] = prepare_rank(benches[r], static_cast<int>(r), custom, *comms[r], devices[r], opt);
  });
  Status result;
  for (size_t r = 0; r < n && result.ok(); ++r)
    if (!status[r].ok()) result = status[r].with_context(StrCat() << "all-reduce timing, rank " << r);
  std::vector<float> custom_ms, nccl_ms;
  // Warm-up replay of each, then the timed ones, backends taking turns.
  for (int i = 0; i <= opt.replays && result.ok(); ++i) {
    auto c = replay_all(benches, comms, devices, true, opt.timeout);
    if (!c.ok()) { result = c.status(); break; }
    auto g = replay_all(benches, comms, devices, false, opt.timeout);
    if (!g.ok()) { result = g.status(); break; }
    if (i > 0) custom_ms.push_back(*c), nccl_ms.push_back(*g);
  }
  // Graphs before the streams and buffers, each on its own device.
  for (size_t r = 0; r < n; ++r) {
    (void)cudaSetDevice(devices[r]);
    benches[r] = RankBench();
  }
  (void)cudaSetDevice(current);
  DS_RETURN_IF_ERROR(result);
  AllReduceTiming t;
  t.custom_us = median(custom_ms) * 1000.0 / opt.calls;
  t.nccl_us = median(nccl_ms) * 1000.0 / opt.calls;
  return t;
}

Result<AllReduceTiming> decode_all_reduce_timing(CustomAllReduce& custom, const std::vector<DeviceCommunicator*>& comms,
                                                 const std::vector<int>& devices, const AllReduceTimingOptions& opt,
                                                 bool* measured) {
  static std::mutex mu;
  static std::map<std::vector<int>, AllReduceTiming> done;
  std::lock_guard<std::mutex> lock(mu);
  if (measured) *measured = false;
  if (auto it = done.find(devices); it != done.end()) return it->second;
  DS_ASSIGN_OR_RETURN(const AllReduceTiming t, time_decode_all_reduce(custom, comms, devices, opt));
  done[devices] = t;
  if (measured) *measured = true;
  return t;
}

bool prefer_custom_all_reduce(const AllReduceTiming& t) { return !(t.nccl_us * 1.03 < t.custom_us); }

}  // namespace ds::cuda
