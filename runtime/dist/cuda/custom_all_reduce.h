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
// reuses a half after all peers passed the barrier of the call in between (the
// vectors a flag slot stages are fixed per kernel: the fused-norm kernel, whose
// blocks cover rows, stages into a second pair of halves).
// A peer that never arrives ends the waiting kernel with a trap after
// `timeout` (a sticky CUDA error: the step fails instead of spinning forever).
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
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
  // and allocates each rank's staging (4 x max_bytes: two halves for each
  // kernel) and flags. An error when
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
  // The RMSNorm of the summed rows, fused (the norm group after an all-reduce
  // marked norm_epilogue by dscc ds-all-reduce-norm): norm_out[i, :] =
  // bf16(out[i, :] * rsqrt(mean(out[i, :]^2) + eps) * gamma), from the stored
  // (rounded) out values; the sum of squares of a row is added in a fixed order
  // (thread blocks of the row form a cluster), so every rank gets the same bits.
  struct RowNorm {
    const void* gamma = nullptr;  // bf16 [hidden]
    float eps = 0.0f;
    void* out = nullptr;          // bf16 [n / hidden, hidden], 16-byte aligned, disjoint from in/out/residual
    int64_t hidden = 0;           // row width (elements)
  };
  // Whether all_reduce_sum takes a RowNorm for this message (sm_90+: clusters):
  // n / hidden rows of at most 8 blocks each, at most kMaxBlocks blocks in all,
  // and the row width and dtype of the group's first fused-norm call (the
  // staging layout of its region depends on them).
  bool supports_norm(DType dtype, size_t n, int64_t hidden) const;

  // out = sum over ranks of in (n elements); called by every rank with the same
  // n and dtype, on the rank's device and stream. in == out is allowed.
  // residual (optional, n elements of dtype, 16-byte aligned, may be out):
  // out = residual + sum over ranks, summed in f32 as residual + in_0 + ... +
  // in_{N-1} (the residual add after a row-parallel linear, fused).
  // norm (optional, supports_norm): also writes the rows' RMSNorm (RowNorm).
  Status all_reduce_sum(int rank, const void* in, void* out, DType dtype, size_t n, cudaStream_t stream,
                        const void* residual = nullptr, const RowNorm* norm = nullptr);

 private:
  struct Rank {
    DeviceBuffer staging;  // 4 halves of max_bytes: plain kernel, fused-norm kernel
    DeviceBuffer flags;    // uint32 [kMaxBlocks][kMaxRanks], written by peers
    DeviceBuffer counter;  // uint32 [kMaxBlocks]: this rank's epochs
  };
  CustomAllReduce() = default;
  // The fused-RMSNorm launch (one cluster of blocks per row); peers: the kernel's peer table.
  Status launch_norm(int rank, const void* in, const void* residual, void* out, DType dtype, size_t n,
                     cudaStream_t stream, const RowNorm& norm, const void* peers);

  std::vector<int> devices_;
  size_t max_bytes_ = 0;
  std::atomic<int64_t> norm_row_bytes_{0};  // row bytes of the first fused-norm call (0: none yet)
  long long timeout_ns_ = 0;
  std::vector<Rank> ranks_;
};

}  // namespace ds::cuda
