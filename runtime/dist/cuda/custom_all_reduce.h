// One-shot all-reduce over NVLink peer access for the small messages of decode
// steps (the GPUs of one process, e.g. CudaTpExecutor's ranks), in two
// protocols that give the same bits (a float sum in rank order 0..N-1 on every
// rank):
//  - LL (messages up to ll_max_bytes, e.g. a few decode rows): every rank
//    pushes its input into each peer's receive buffer as 16-byte lines of 8
//    payload bytes and two copies of the call's epoch, then polls its own buffer
//    until every peer's lines carry the epoch. One NVLink write latency per call:
//    no fence, no flag, no read across the link.
//  - Staged (larger messages): every rank copies its input into its own staging
//    buffer, raises a flag in every peer's memory, waits for all peers' flags,
//    then reads the N staging buffers over NVLink.
// One kernel per call, no host work: graph capturable; launched with PDL
// (runtime/cuda/pdl.h) like the kernels around it in a decode graph. Not for large messages
// (each rank reads N x the data; NCCL's ring/tree is better there).
//
// Synchronization: per block, a flag slot per sending rank (staged) or the lines
// themselves (LL) hold the epoch of its last call (a per-block counter every rank
// advances in the same order; blocks cover fixed byte ranges); staging halves
// and LL receive regions alternate by epoch parity, which is safe because a rank
// only reuses one after all peers finished the call in between.
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
  // LL protocol bound (one block of 256 lines of 8 bytes per 2 KiB, kMaxBlocks
  // blocks: 256 KiB, twelve f32 rows of a 5120-wide model), also the default:
  // on 2 and 4 x H200 it beat the staged protocol at every size up to there
  // (docs/PERF.md, session 9: 2.8-4.1 vs 6.3-7.3 us on 2 GPUs).
  static constexpr size_t kMaxLlBytes = size_t{2048} * kMaxBlocks;
  static constexpr size_t kDefaultLlMaxBytes = kMaxLlBytes;

  // Enables peer access between every pair of `devices` (rank r on devices[r])
  // and allocates each rank's staging (2 x max_bytes) and flags, and for
  // ll_max_bytes > 0 (a multiple of 16 up to kMaxLlBytes; 0: staged protocol
  // only) its LL receive buffer (about 4 x N x ll_max_bytes). An error when a pair has
  // no peer access (then use NCCL alone).
  static Result<std::unique_ptr<CustomAllReduce>> create(const std::vector<int>& devices,
                                                         size_t max_bytes = kDefaultMaxBytes,
                                                         std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                                         size_t ll_max_bytes = kDefaultLlMaxBytes);
  ~CustomAllReduce();
  CustomAllReduce(const CustomAllReduce&) = delete;
  CustomAllReduce& operator=(const CustomAllReduce&) = delete;

  int size() const { return static_cast<int>(devices_.size()); }
  size_t max_bytes() const { return max_bytes_; }
  // Messages up to this many bytes go through the LL protocol.
  size_t ll_max_bytes() const { return ll_max_bytes_; }
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
    DeviceBuffer ll_recv;     // LL lines written by peers: [2 parities][N sources][ll_max_bytes / 8, whole blocks]
    DeviceBuffer ll_counter;  // uint32 [kMaxBlocks]: this rank's LL epochs
  };
  CustomAllReduce() = default;

  std::vector<int> devices_;
  size_t max_bytes_ = 0;
  size_t ll_max_bytes_ = 0;
  long long timeout_ns_ = 0;
  std::vector<Rank> ranks_;
};

}  // namespace ds::cuda
