// Start-up choice between the custom one-shot all-reduce (custom_all_reduce.h)
// and NCCL for the decode all-reduces of one process's GPUs.
//
// Which is faster depends on the host: on 2 x H200 hosts the custom kernel won
// (32B TP 2 decode 96.8 vs 93.7 tok/s), on a 4 x H200 host it lost (82.6 vs
// 93.7; docs/PERF.md, tensor parallelism). So it is measured, not assumed: every
// rank captures `calls` back-to-back all-reduces of a decode-sized message into
// one CUDA graph per backend (the way decode graphs run them), the graphs are
// replayed on all ranks at once, alternating backends, and each backend's time
// per all-reduce is the median over replays of the slowest rank's time. One
// process drives all the ranks, so every rank gets the same decision.
#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

#include "runtime/common/status.h"
#include "runtime/dist/cuda/custom_all_reduce.h"
#include "runtime/dist/cuda/device_communicator.h"

namespace ds::cuda {

struct AllReduceTiming {
  double custom_us = 0.0;  // per all-reduce
  double nccl_us = 0.0;
};

struct AllReduceTimingOptions {
  size_t bytes = 20480;  // message (f32); a multiple of 16 up to custom.max_bytes()
  int calls = 64;        // all-reduces per graph
  int replays = 5;       // timed replays per backend (after one warm-up replay each)
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};  // bounds every wait on a peer
};

// comms[r] and devices[r]: rank r of the custom group (same order). Leaves
// both backends usable (their epochs advanced in step on every rank).
Result<AllReduceTiming> time_decode_all_reduce(CustomAllReduce& custom, const std::vector<DeviceCommunicator*>& comms,
                                               const std::vector<int>& devices, const AllReduceTimingOptions& opt = {});

// Process-wide per set of devices: the first call measures (time_decode_all_reduce)
// and later calls reuse its result (*measured false), so every executor of the
// process (a graph one and an eager one, say) runs the same all-reduce and
// computes the same bits.
Result<AllReduceTiming> decode_all_reduce_timing(CustomAllReduce& custom, const std::vector<DeviceCommunicator*>& comms,
                                                 const std::vector<int>& devices, const AllReduceTimingOptions& opt,
                                                 bool* measured = nullptr);

// The custom kernel serves unless NCCL is more than 3% faster (ties keep the
// kernel that needs no NCCL launch machinery inside graphs).
bool prefer_custom_all_reduce(const AllReduceTiming& t);

}  // namespace ds::cuda
