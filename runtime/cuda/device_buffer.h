// RAII owners of CUDA runtime handles: device memory, streams, events.
// Move-only; creation returns Result, destruction never fails loudly.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>
#include <utility>

#include "runtime/cuda/cuda_check.h"

namespace ds::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static Result<DeviceBuffer> allocate(size_t bytes);
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void reset();

  // Synchronous host <-> device copies of `n` bytes at offset 0 (n <= bytes()),
  // ordered with every stream (they synchronize the device: setup and tests only).
  Status copy_from_host(const void* src, size_t n);
  Status copy_to_host(void* dst, size_t n) const;
  // Synchronous zero fill of the whole buffer (setup only, like the copies).
  Status zero();

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class Stream {
 public:
  Stream() = default;
  static Result<Stream> create();
  ~Stream() { reset(); }
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return s_; }
  Status synchronize() const;
  void reset();

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event() = default;
  static Result<Event> create();
  ~Event() { reset(); }
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  cudaEvent_t get() const { return e_; }
  Status record(const Stream& stream) { return record(stream.get()); }
  Status record(cudaStream_t stream);
  Status synchronize() const;
  // Milliseconds between `start` and this event (both recorded and complete).
  Result<float> elapsed_ms_since(const Event& start) const;
  void reset();

 private:
  cudaEvent_t e_ = nullptr;
};

// An instantiated CUDA graph, move-only.
class GraphExec {
 public:
  GraphExec() = default;
  explicit GraphExec(cudaGraphExec_t g) : g_(g) {}
  ~GraphExec() { reset(); }
  GraphExec(GraphExec&& o) noexcept : g_(std::exchange(o.g_, nullptr)) {}
  GraphExec& operator=(GraphExec&& o) noexcept;
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  cudaGraphExec_t get() const { return g_; }
  Status launch(const Stream& stream) const { return launch(stream.get()); }
  Status launch(cudaStream_t stream) const;
  void reset();

 private:
  cudaGraphExec_t g_ = nullptr;
};

// Captures the work `body` enqueues on `stream` (thread-local capture mode) and
// instantiates it. On failure the capture is ended, the partial graph dropped
// and the first error returned (body's before the capture's).
Result<GraphExec> capture_graph(cudaStream_t stream, const std::function<Status()>& body);

}  // namespace ds::cuda
