// CustomAllReduce (custom_all_reduce.h): the plain one-shot kernel, peer
// access and staging setup, argument checks and the launch.
#include "runtime/dist/cuda/custom_all_reduce.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"
#include "runtime/dist/cuda/custom_all_reduce_device.cuh"

namespace ds::cuda {
namespace {

using namespace car;

// Block b handles 16-byte vectors [b * per_block, min((b + 1) * per_block, nvec)).
template <typename T>
__global__ void __launch_bounds__(kThreads) one_shot_all_reduce(PeerPtrs peers, int rank, int world, const uint4* in,
                                                                 const uint4* residual, uint4* out, size_t nvec,
                                                                 size_t per_block,
                                                                 size_t half_bytes, uint32_t* counter,
                                                                 long long timeout_ns) {
  // Launched with PDL (behind a GEMV that triggers early): wait for the previous
  // kernels before touching the input or the counters, and let the next kernel
  // (which waits for this one to finish) be scheduled at once.
  pdl_wait();
  pdl_trigger();
  const size_t begin = static_cast<size_t>(blockIdx.x) * per_block;
  const size_t end = begin + per_block < nvec ? begin + per_block : nvec;
  all_reduce_chunk<T, false>(peers, rank, world, in, residual, out, begin, end, static_cast<int>(blockIdx.x),
                             half_bytes, counter, timeout_ns);
}


}  // namespace

Result<std::unique_ptr<CustomAllReduce>> CustomAllReduce::create(const std::vector<int>& devices, size_t max_bytes,
                                                                 std::chrono::milliseconds timeout) {
  const int n = static_cast<int>(devices.size());
  if (n < 2 || n > kMaxRanks)
    return Status::Error(StrCat() << "custom all-reduce: " << n << " ranks (2.." << kMaxRanks << " supported)");
  if (max_bytes == 0 || max_bytes % 16 != 0 || max_bytes > kChunkBytes * kMaxBlocks)
    return Status::Error(StrCat() << "custom all-reduce: max_bytes " << max_bytes << " must be a multiple of 16 in (0, "
                                  << kChunkBytes * kMaxBlocks << "]");
  if (timeout.count() <= 0) return Status::Error("custom all-reduce: timeout must be positive");
  int current = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&current));
  for (int a : devices)
    for (int b : devices) {
      if (a == b) continue;
      int ok = 0;
      DS_CUDA_RETURN_IF_ERROR(cudaDeviceCanAccessPeer(&ok, a, b));
      if (!ok)
        return Status::Error(StrCat() << "custom all-reduce: GPU " << a << " cannot access GPU " << b
                                      << " (no peer access)");
    }
  std::unique_ptr<CustomAllReduce> g(new CustomAllReduce());
  g->devices_ = devices;
  g->max_bytes_ = max_bytes;
  g->timeout_ns_ = static_cast<long long>(timeout.count()) * 1000000LL;
  for (int r = 0; r < n; ++r) {
    DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices[r]));
    for (int p = 0; p < n; ++p) {
      if (p == r) continue;
      const cudaError_t e = cudaDeviceEnablePeerAccess(devices[p], 0);
      if (e == cudaErrorPeerAccessAlreadyEnabled) {
        (void)cudaGetLastError();
      } else if (e != cudaSuccess) {
        (void)cudaSetDevice(current);
        return cuda_error_status(e, "cudaDeviceEnablePeerAccess", __FILE__, __LINE__);
      }
    }
    Rank rk;
    DS_ASSIGN_OR_RETURN(rk.staging, DeviceBuffer::allocate(4 * max_bytes));  // plain, then norm halves
    DS_ASSIGN_OR_RETURN(rk.flags, DeviceBuffer::allocate(sizeof(uint32_t) * kMaxBlocks * kMaxRanks));
    DS_ASSIGN_OR_RETURN(rk.counter, DeviceBuffer::allocate(sizeof(uint32_t) * kMaxBlocks));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(rk.flags.data(), 0, rk.flags.bytes()));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(rk.counter.data(), 0, rk.counter.bytes()));
    DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
    g->ranks_.push_back(std::move(rk));
  }
  DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(current));
  return std::move(g);  // C++17 (nvcc): no implicit move into Result
}

CustomAllReduce::~CustomAllReduce() = default;

bool CustomAllReduce::supports(const void* in, const void* out, DType dtype, size_t n) const {
  if (dtype != DType::kBF16 && dtype != DType::kF16 && dtype != DType::kF32) return false;
  const size_t bytes = n * dtype_size(dtype);
  return bytes > 0 && bytes <= max_bytes_ && bytes % 16 == 0 && reinterpret_cast<uintptr_t>(in) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(out) % 16 == 0;
}

Status CustomAllReduce::all_reduce_sum(int rank, const void* in, void* out, DType dtype, size_t n,
                                       cudaStream_t stream, const void* residual, const RowNorm* norm) {
  if (rank < 0 || rank >= size())
    return Status::Error(StrCat() << "custom all-reduce: rank " << rank << " of " << size());
  if (n == 0) return Status::Ok();
  if (!supports(in, out, dtype, n))
    return Status::Error(StrCat() << "custom all-reduce: " << n << " x " << dtype_name(dtype)
                                  << " (unaligned, not bf16/f16/f32, or over " << max_bytes_ << " bytes)");
  if (reinterpret_cast<uintptr_t>(residual) % 16 != 0)
    return Status::Error("custom all-reduce: the residual is not 16-byte aligned");
  if (norm != nullptr && (!supports_norm(dtype, n, norm->hidden) || norm->gamma == nullptr ||
                          norm->out == nullptr || reinterpret_cast<uintptr_t>(norm->out) % 16 != 0 ||
                          !(norm->eps >= 0.0f)))
    return Status::Error(StrCat() << "custom all-reduce: the fused RMSNorm does not take " << n << " x "
                                  << dtype_name(dtype) << " in rows of " << norm->hidden
                                  << " (supports_norm), or its gamma/out/eps are invalid");
  PeerPtrs peers{};
  for (int r = 0; r < size(); ++r) {
    peers.staging[r] = static_cast<const uint8_t*>(ranks_[r].staging.data());
    peers.flags[r] = static_cast<uint32_t*>(ranks_[r].flags.data());
  }
  const size_t bytes = n * dtype_size(dtype);
  const size_t nvec = bytes / 16;
  const size_t per_block = kChunkBytes / 16;
  const unsigned blocks = static_cast<unsigned>((nvec + per_block - 1) / per_block);
  auto* counter = static_cast<uint32_t*>(ranks_[rank].counter.data());
  const auto* src = static_cast<const uint4*>(in);
  const auto* res = static_cast<const uint4*>(residual);
  auto* dst = static_cast<uint4*>(out);
  const dim3 grid(blocks), block(kThreads);
  const size_t half_bytes = max_bytes_;
  const int world = size();
  const long long timeout_ns = timeout_ns_;
  cudaError_t e = cudaSuccess;
  if (norm != nullptr) return launch_norm(rank, src, res, dst, dtype, n, stream, *norm, &peers);
  switch (dtype) {
    case DType::kBF16:
      e = launch_kernel(one_shot_all_reduce<__nv_bfloat16>, grid, block, 0, stream, peers, rank, world, src, res, dst, nvec,
                        per_block, half_bytes, counter, timeout_ns);
      break;
    case DType::kF16:
      e = launch_kernel(one_shot_all_reduce<__half>, grid, block, 0, stream, peers, rank, world, src, res, dst, nvec,
                        per_block, half_bytes, counter, timeout_ns);
      break;
    default:
      e = launch_kernel(one_shot_all_reduce<float>, grid, block, 0, stream, peers, rank, world, src, res, dst, nvec,
                        per_block, half_bytes, counter, timeout_ns);
      break;
  }
  if (e != cudaSuccess) return cuda_error_status(e, "one_shot_all_reduce launch", __FILE__, __LINE__);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda
