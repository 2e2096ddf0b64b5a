// Page-locked host memory (cudaHostAlloc), RAII and move-only, for the
// sampler's staging of row parameters and results: async copies from/to it
// overlap nothing else on the host and need no bounce buffer. In namespace
// ds::cuda::sampling: the executor and weight loader have their own classes
// named ds::cuda::PinnedBuffer, and inline members of the same name would
// break the one-definition rule.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "runtime/cuda/cuda_check.h"

namespace ds::cuda::sampling {

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  static Result<PinnedBuffer> allocate(size_t bytes) {
    PinnedBuffer b;
    if (bytes == 0) return b;
    void* p = nullptr;
    DS_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
    b.ptr_ = p;
    b.bytes_ = bytes;
    return b;
  }
  ~PinnedBuffer() { reset(); }
  PinnedBuffer(PinnedBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void reset() {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace ds::cuda::sampling
