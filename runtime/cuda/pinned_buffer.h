// Page-locked host memory (cudaHostAlloc), RAII and move-only: the staging of
// every asynchronous host <-> device copy of the runtime (step metadata, weight
// upload, sampler parameters and results). Header-only.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "runtime/cuda/cuda_check.h"

namespace ds::cuda {

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  // bytes == 0 gives an empty buffer (data() == nullptr).
  static Result<PinnedBuffer> allocate(size_t bytes) { return allocate_with(bytes, cudaHostAllocDefault); }
  // Mapped into the device address space as well (cudaHostAllocMapped; portable to every device):
  // kernels read and write it through device_data() (zero-copy over PCIe), so a
  // few hundred bytes need no cudaMemcpyAsync (whose DMA round trip costs ~10
  // us of stream time on an H200).
  static Result<PinnedBuffer> allocate_mapped(size_t bytes) {
    DS_ASSIGN_OR_RETURN(PinnedBuffer b, allocate_with(bytes, cudaHostAllocMapped | cudaHostAllocPortable));
    if (b.ptr_ != nullptr) DS_CUDA_RETURN_IF_ERROR(cudaHostGetDevicePointer(&b.device_ptr_, b.ptr_, 0));
    return b;
  }
  ~PinnedBuffer() { reset(); }
  PinnedBuffer(PinnedBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)),
        device_ptr_(std::exchange(o.device_ptr_, nullptr)),
        bytes_(std::exchange(o.bytes_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      device_ptr_ = std::exchange(o.device_ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const { return ptr_; }
  // The device's address of a mapped buffer (allocate_mapped), else null.
  void* device_data() const { return device_ptr_; }
  uint8_t* bytes_data() const { return static_cast<uint8_t*>(ptr_); }
  size_t bytes() const { return bytes_; }
  void reset() {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    device_ptr_ = nullptr;
    bytes_ = 0;
  }

 private:
  static Result<PinnedBuffer> allocate_with(size_t bytes, unsigned flags) {
    PinnedBuffer b;
    if (bytes == 0) return b;
    void* p = nullptr;
    DS_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&p, bytes, flags));
    b.ptr_ = p;  // owned only once allocated
    b.bytes_ = bytes;
    return b;
  }

  void* ptr_ = nullptr;
  void* device_ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace ds::cuda
