#include "runtime/cuda/device_buffer.h"

namespace ds::cuda {

Result<DeviceBuffer> DeviceBuffer::allocate(size_t bytes) {
  DeviceBuffer b;
  if (bytes == 0) return b;
  DS_CUDA_RETURN_IF_ERROR(cudaMalloc(&b.ptr_, bytes));
  b.bytes_ = bytes;
  return b;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (ptr_) (void)cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

Status DeviceBuffer::copy_from_host(const void* src, size_t n) {
  if (n > bytes_)
    return Status::Error(StrCat() << "DeviceBuffer: copy of " << n << " bytes into a buffer of " << bytes_);
  DS_CUDA_RETURN_IF_ERROR(cudaMemcpy(ptr_, src, n, cudaMemcpyHostToDevice));
  // A pageable-memory cudaMemcpy may return before its DMA lands, and Stream's
  // non-blocking streams are not ordered after it: wait, so that work queued
  // afterwards on any stream sees the data (GPU batch 2 caught tests reading
  // stale buffers under contention).
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  return Status::Ok();
}

Status DeviceBuffer::zero() {
  if (bytes_ == 0) return Status::Ok();
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(ptr_, 0, bytes_));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  return Status::Ok();
}

Status DeviceBuffer::copy_to_host(void* dst, size_t n) const {
  if (n > bytes_)
    return Status::Error(StrCat() << "DeviceBuffer: copy of " << n << " bytes out of a buffer of " << bytes_);
  // Work on non-blocking streams is not ordered before a legacy-stream copy.
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  DS_CUDA_RETURN_IF_ERROR(cudaMemcpy(dst, ptr_, n, cudaMemcpyDeviceToHost));
  return Status::Ok();
}

Result<Stream> Stream::create() {
  Stream s;
  DS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s.s_, cudaStreamNonBlocking));
  return s;
}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    reset();
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}

Status Stream::synchronize() const {
  DS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(s_));
  return Status::Ok();
}

void Stream::reset() {
  if (s_) (void)cudaStreamDestroy(s_);
  s_ = nullptr;
}

Result<Event> Event::create() {
  Event e;
  DS_CUDA_RETURN_IF_ERROR(cudaEventCreate(&e.e_));
  return e;
}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    reset();
    e_ = std::exchange(o.e_, nullptr);
  }
  return *this;
}

Status Event::record(cudaStream_t stream) {
  DS_CUDA_RETURN_IF_ERROR(cudaEventRecord(e_, stream));
  return Status::Ok();
}

Status Event::synchronize() const {
  DS_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(e_));
  return Status::Ok();
}

Result<float> Event::elapsed_ms_since(const Event& start) const {
  float ms = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, start.e_, e_));
  return ms;
}

void Event::reset() {
  if (e_) (void)cudaEventDestroy(e_);
  e_ = nullptr;
}

GraphExec& GraphExec::operator=(GraphExec&& o) noexcept {
  if (this != &o) {
    reset();
    g_ = std::exchange(o.g_, nullptr);
  }
  return *this;
}

Status GraphExec::launch(cudaStream_t stream) const {
  if (g_ == nullptr) return Status::Error("cudaGraphLaunch: no graph");
  DS_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(g_, stream));
  return Status::Ok();
}

void GraphExec::reset() {
  if (g_) (void)cudaGraphExecDestroy(g_);
  g_ = nullptr;
}

Result<GraphExec> capture_graph(cudaStream_t stream, const std::function<Status()>& body) {
  DS_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  const Status s = body();
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  if (!s.ok() || end != cudaSuccess) {
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();  // an invalidated capture leaves its error behind
    if (!s.ok()) return s;
    return cuda_error_status(end, "cudaStreamEndCapture", __FILE__, __LINE__);
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  if (inst != cudaSuccess) return cuda_error_status(inst, "cudaGraphInstantiate", __FILE__, __LINE__);
  return GraphExec(exec);
}

}  // namespace ds::cuda
