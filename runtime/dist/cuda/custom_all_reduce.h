// One-shot all-reduce over NVLink peer access for the small messages of decode
// steps (the GPUs of one process, e.g. CudaTpExecutor's ranks): every rank copies
// its input into its own staging buffer, raises a flag in every peer's memory,
// waits for all peers' flags, then reads the N staging buffers over NVLink and
// sums them in float in rank order 0..N-1, so every rank gets the same bits.
// One kernel per call, no host work: graph capturable; launched with PDL
// (runtime/cuda/pdl.h) like the kernels around it in a decode graph. Not for large messages
// (each rank reads N x the data; NCCL's ring/tree is better there).
//
// Synchronization: per block, a flag slot per sending rank holds the epoch of
// its last call (a per-block counter every rank advances in the same order);
// staging halves alternate by epoch parity, which is safe because a rank only
// reuses a half after all peers passed the barrier of the call in between.
// A peer that never arrives ends the waiting kernel with a trap after
// `timeout` (a sticky CUDA error: the step fails instead of spinning forever).
#pragma once

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda {

class CustomAllReduce {
 public:
  static constexpr int kMaxRanks = 8;
  static constexpr int kMaxBlocks = 128;
  // 1 MiB: f32 decode rows of a 5120-wide model up to a batch of 51 (20 KiB a row).
  static constexpr size_t kDefaultMaxBytes = size_t{1} << 20;

  // Enables peer access between every pair of `devices` (rank r on devices[r])
  // and allocates each rank's staging (2 x max_bytes) and flags. An error when
  // a pair has no peer access (then use NCCL alone).
  static Result<std::unique_ptr<CustomAllReduce>> create(const std::vector<int>& devices,
                                                         size_t max_bytes = kDefaultMaxBytes,
                                                         std::chrono::milliseconds timeout = std::chrono::seconds(60));
  ~CustomAllReduce();
  CustomAllReduce(const CustomAllReduce&) = delete;
  CustomAllReduce& operator=(const CustomAllReduce&) = delete;

  int size() const { return static_cast<int>(devices_.size()); }
  size_t max_bytes() const { return max_bytes_; }
  // Whether a message qualifies: bf16/f16/f32, 16-byte aligned pointers, a
  // multiple of 16 bytes, at most max_bytes.
  bool supports(const void* in, const void* out, DType dtype, size_t n) const;
  // out = sum over ranks of in (n elements); called by every rank with the same
  // n and dtype, on the rank's device and stream. in == out is allowed.
  // residual (optional, n elements of dtype, 16-byte aligned, may be out):
  // out = residual + sum over ranks, summed in f32 as residual + in_0 + ... +
  // in_{N-1} (the residual add after a row-parallel linear, fused).
  Status all_reduce_sum(int rank, const void* in, void* out, DType dtype, size_t n, cudaStream_t stream,
                        const void* residual = nullptr);

 private:
  struct Rank {
    DeviceBuffer staging;  // 2 halves of max_bytes
    DeviceBuffer flags;    // uint32 [kMaxBlocks][kMaxRanks], written by peers
    DeviceBuffer counter;  // uint32 [kMaxBlocks]: this rank's epochs
  };
  CustomAllReduce() = default;

  std::vector<int> devices_;
  size_t max_bytes_ = 0;
  long long timeout_ns_ = 0;
  std::vector<Rank> ranks_;
};

}  // namespace ds::cuda
