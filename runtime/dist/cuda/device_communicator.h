// Collectives on device buffers for tensor parallelism on GPUs (NCCL). One
// DeviceCommunicator per rank; every rank issues the same collectives in the
// same order on its stream. Calls are asynchronous (enqueued on `stream`) and
// CUDA-graph capturable.
//
// Implementation notes (NCCL, runtime/dist/cuda/nccl_communicator.*): the
// communicators are non-blocking, so NCCL enqueues each collective from a
// helper thread (a thread start per eager call, tens of microseconds of host
// time; graph replays pay nothing): capture graphs in
// cudaStreamCaptureModeThreadLocal (or Relaxed), not Global; run one eager
// collective of each kind on every rank before capturing (NCCL connects lazily). Destroy graphs holding captured collectives before
// the communicator (NCCL waits for them when finalizing). After any error the
// communicator is aborted and every later call returns an error.
#pragma once

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"
#include "runtime/dist/communicator.h"

namespace ds::cuda {

class DeviceCommunicator {
 public:
  virtual ~DeviceCommunicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int device() const = 0;
  // In place: data[i] = sum over ranks (n elements of dtype bf16/f16/f32).
  virtual Status all_reduce_sum(void* data, DType dtype, size_t n, cudaStream_t stream) = 0;
  // Out of place (the plan's all_reduce writes an arena buffer): out[i] = sum
  // over ranks of in[i]; in == out is the in-place form, other overlaps are errors.
  virtual Status all_reduce_sum(const void* in, void* out, DType dtype, size_t n, cudaStream_t stream) = 0;
  // out[r * n + i] = rank r's in[i] (rank-major).
  virtual Status all_gather(const void* in, DType dtype, size_t n, void* out, cudaStream_t stream) = 0;
  // Waits for the rank's outstanding collectives with a timeout; an error (and
  // the communicator aborted) when a peer does not take part in time.
  virtual Status wait(cudaStream_t stream, std::chrono::milliseconds timeout) = 0;
  // The same for the work recorded before `event` (on any of the rank's
  // streams) instead of everything queued on a stream: pipelined steps wait for
  // the oldest queued step while a later one stays queued behind it.
  virtual Status wait_event(cudaEvent_t event, std::chrono::milliseconds timeout) = 0;
  // True once the communicator was aborted (after an error or a timeout).
  virtual bool aborted() const = 0;
  // Aborts now (idempotent): this rank's pending collectives end, later calls error.
  virtual void abort() = 0;
};

// True when this dsrt was built with NCCL (DS_HAVE_NCCL); without it the
// factories below return a clear error (check_p2p works either way).
bool have_device_collectives();

// `timeout` bounds communicator creation (a rank that never joins) and the
// enqueueing of each collective; wait() takes its own.

// In-process group: one rank per device in `devices` (one thread per GPU drives each).
Result<std::vector<std::unique_ptr<DeviceCommunicator>>> create_local_device_group(
    const std::vector<int>& devices, std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Multi-process group: host_group.size() processes each drive L = devices.size()
// GPUs (the same L in every process); this process's ranks are
// host_group.rank() * L + i on devices[i] of a host_group.size() * L rank group.
// Process 0's NCCL unique id travels over `host_group` (Gloo), which also
// checked that every process loaded the same plan.
Result<std::vector<std::unique_ptr<DeviceCommunicator>>> create_process_device_group(
    Communicator& host_group, const std::vector<int>& devices,
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The one-GPU-per-process case of create_process_device_group (rank
// host_group.rank() of host_group.size(), on `device`).
Result<std::unique_ptr<DeviceCommunicator>> create_device_group(
    Communicator& host_group, int device, std::chrono::milliseconds timeout = std::chrono::seconds(30));

// --enable-p2p-check: every pair of `devices` can access each other (cudaDeviceCanAccessPeer);
// an error naming the pair otherwise.
Status check_p2p(const std::vector<int>& devices);

}  // namespace ds::cuda
