#include "runtime/dist/cuda/custom_all_reduce.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"
#include "runtime/dist/cuda/custom_all_reduce_device.cuh"

namespace ds::cuda {
namespace {

using namespace ar_detail;

constexpr int kThreads = 256;
constexpr size_t kChunkBytes = 8192;  // bytes per block (the grid grows with the message)

struct PeerPtrs {
  const uint8_t* staging[CustomAllReduce::kMaxRanks];  // each rank's staging base (2 halves)
  uint32_t* flags[CustomAllReduce::kMaxRanks];         // each rank's flag array
};

__device__ __forceinline__ void store_release_sys(uint32_t* p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ uint32_t load_acquire_sys(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Block b handles 16-byte vectors [b * per_block, min((b + 1) * per_block, nvec)).
template <typename T>
__global__ void __launch_bounds__(kThreads) one_shot_all_reduce(PeerPtrs peers, int rank, int world, const uint4* in,
                                                                 const uint4* residual, uint4* out, size_t nvec,
                                                                 size_t per_block,
                                                                 size_t half_bytes, uint32_t* counter,
                                                                 long long timeout_ns) {
  const int b = blockIdx.x;
  const uint32_t epoch = begin_call(counter + b);
  const size_t half = (epoch & 1u) * half_bytes;
  const size_t begin = static_cast<size_t>(b) * per_block;
  const size_t end = begin + per_block < nvec ? begin + per_block : nvec;

  // 1. Own input into own staging half.
  uint4* mine = reinterpret_cast<uint4*>(const_cast<uint8_t*>(peers.staging[rank]) + half);
  for (size_t i = begin + threadIdx.x; i < end; i += kThreads) mine[i] = in[i];
  __syncthreads();
  // 2. Tell every rank (self included) that this block's chunk is staged.
  if (threadIdx.x < world) {
    __threadfence_system();
    store_release_sys(peers.flags[threadIdx.x] + b * CustomAllReduce::kMaxRanks + rank, epoch);
  }
  // 3. Wait for every rank's chunk (bounded: a missing peer traps).
  if (threadIdx.x < world) {
    const uint32_t* f = peers.flags[rank] + b * CustomAllReduce::kMaxRanks + threadIdx.x;
    const unsigned long long start = global_ns();
    while (static_cast<int32_t>(load_acquire_sys(f) - epoch) < 0) {
      if (static_cast<long long>(global_ns() - start) > timeout_ns) __trap();
    }
  }
  __syncthreads();
  // 4. Sum the ranks' chunks in rank order (the same bits on every rank), after
  //    the residual when there is one (identical on every rank: the replicated
  //    hidden state). residual may be out: each element is read before it is written.
  using V = Vec<T, 4>;
  for (size_t i = begin + threadIdx.x; i < end; i += kThreads) {
    float acc[V::kN];
    const uint32_t* res = residual != nullptr ? reinterpret_cast<const uint32_t*>(residual + i) : nullptr;
    for (int r = 0; r < world; ++r) {
      const uint4 u = reinterpret_cast<const uint4*>(peers.staging[r] + half)[i];
      const uint32_t v[4] = {u.x, u.y, u.z, u.w};
      add_rank<T, 4>(r, v, res, acc);
    }
    uint32_t w[4];
    V::store(acc, w);
    out[i] = make_uint4(w[0], w[1], w[2], w[3]);
  }
  if (threadIdx.x == 0) counter[b] = epoch;
}

// --- LL protocol (messages up to ll_max_bytes) ---------------------------------
// A 16-byte line carries 8 payload bytes: {word 0, epoch, word 1, epoch}. It is
// written and read as one 16-byte access, and the reader takes it only when
// both epoch words match, so each 8-byte (word, epoch) half it uses was
// written by the call it waits for (8-byte aligned halves are not torn). A
// sender pushes its lines straight into every peer's receive region (posted
// NVLink stores: no fence, no flag, no read from a peer), and a receiver polls
// its own memory. Thread t of block b owns payload line b * kLlThreads + t on
// every call and pushes it even past the message's end, so all of a block's
// lines hold the epoch of the block's last call; regions alternate by epoch
// parity (safe for the reason the staging halves are, see the header).
template <typename T>
__global__ void __launch_bounds__(kLlThreads) ll_all_reduce(LlPeers peers, int rank, int world, const uint2* in,
                                                            const uint2* residual, uint2* out, size_t nline,
                                                            size_t lines_per_rank, uint32_t* counter,
                                                            long long timeout_ns) {
  const int b = blockIdx.x;
  const uint32_t epoch = begin_call(counter + b);
  const size_t i = static_cast<size_t>(b) * kLlThreads + threadIdx.x;
  // Every line of the block is pushed, past the message's end too (zeros): a
  // block's lines then all carry the epoch of its last call, and none keeps an
  // older one that could come round again when the 32-bit counter wraps.
  const uint2 mine = i < nline ? in[i] : make_uint2(0, 0);
  // Region (parity, source rank) of a receive buffer.
  const size_t base = (static_cast<size_t>(epoch & 1u) * world) * lines_per_rank + i;
  for (int k = 1; k < world; ++k) {
    const int d = rank + k < world ? rank + k : rank + k - world;
    ll_store(peers.recv[d] + base + static_cast<size_t>(rank) * lines_per_rank, mine, epoch);
  }
  if (i < nline) {
    // Residual and out may alias in: every read of line i happens before its write.
    const uint32_t* res = residual != nullptr ? reinterpret_cast<const uint32_t*>(residual + i) : nullptr;
    float acc[Vec<T, 2>::kN];
    for (int r = 0; r < world; ++r) {
      const uint2 u = r == rank ? mine
                                : ll_wait(peers.recv[rank] + base + static_cast<size_t>(r) * lines_per_rank, epoch,
                                          timeout_ns);
      const uint32_t v[2] = {u.x, u.y};
      add_rank<T, 2>(r, v, res, acc);
    }
    uint32_t w[2];
    Vec<T, 2>::store(acc, w);
    out[i] = make_uint2(w[0], w[1]);
  }
  if (threadIdx.x == 0) counter[b] = epoch;
}

}  // namespace

Result<std::unique_ptr<CustomAllReduce>> CustomAllReduce::create(const std::vector<int>& devices, size_t max_bytes,
                                                                 std::chrono::milliseconds timeout,
                                                                 size_t ll_max_bytes) {
  const int n = static_cast<int>(devices.size());
  if (n < 2 || n > kMaxRanks)
    return Status::Error(StrCat() << "custom all-reduce: " << n << " ranks (2.." << kMaxRanks << " supported)");
  if (max_bytes == 0 || max_bytes % 16 != 0 || max_bytes > kChunkBytes * kMaxBlocks)
    return Status::Error(StrCat() << "custom all-reduce: max_bytes " << max_bytes << " must be a multiple of 16 in (0, "
                                  << kChunkBytes * kMaxBlocks << "]");
  if (timeout.count() <= 0) return Status::Error("custom all-reduce: timeout must be positive");
  if (ll_max_bytes % 16 != 0 || ll_max_bytes > kMaxLlBytes)
    return Status::Error(StrCat() << "custom all-reduce: ll_max_bytes " << ll_max_bytes
                                  << " must be a multiple of 16 in [0, " << kMaxLlBytes << "]");
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
  g->ll_max_bytes_ = std::min(ll_max_bytes, max_bytes);
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
    DS_ASSIGN_OR_RETURN(rk.staging, DeviceBuffer::allocate(2 * max_bytes));
    DS_ASSIGN_OR_RETURN(rk.flags, DeviceBuffer::allocate(sizeof(uint32_t) * kMaxBlocks * kMaxRanks));
    DS_ASSIGN_OR_RETURN(rk.counter, DeviceBuffer::allocate(sizeof(uint32_t) * kMaxBlocks));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(rk.flags.data(), 0, rk.flags.bytes()));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(rk.counter.data(), 0, rk.counter.bytes()));
    if (g->ll_max_bytes_ > 0) {
      // Two parity regions per source rank, 16-byte lines of 8 payload bytes.
      DS_ASSIGN_OR_RETURN(rk.ll_recv,
                          DeviceBuffer::allocate(2 * static_cast<size_t>(n) * ll_lines_per_rank(g->ll_max_bytes_) * 16));
      DS_ASSIGN_OR_RETURN(rk.ll_counter, DeviceBuffer::allocate(sizeof(uint32_t) * kMaxBlocks));
      DS_CUDA_RETURN_IF_ERROR(cudaMemset(rk.ll_recv.data(), 0, rk.ll_recv.bytes()));
      DS_CUDA_RETURN_IF_ERROR(cudaMemset(rk.ll_counter.data(), 0, rk.ll_counter.bytes()));
    }
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
                                       cudaStream_t stream, const void* residual) {
  if (rank < 0 || rank >= size())
    return Status::Error(StrCat() << "custom all-reduce: rank " << rank << " of " << size());
  if (n == 0) return Status::Ok();
  if (!supports(in, out, dtype, n))
    return Status::Error(StrCat() << "custom all-reduce: " << n << " x " << dtype_name(dtype)
                                  << " (unaligned, not bf16/f16/f32, or over " << max_bytes_ << " bytes)");
  if (reinterpret_cast<uintptr_t>(residual) % 16 != 0)
    return Status::Error("custom all-reduce: the residual is not 16-byte aligned");
  const size_t bytes = n * dtype_size(dtype);
  const int world = size();
  const long long timeout_ns = timeout_ns_;
  cudaError_t e = cudaSuccess;
  if (bytes <= ll_max_bytes_) {
    LlPeers peers{};
    for (int r = 0; r < world; ++r) peers.recv[r] = static_cast<uint4*>(ranks_[r].ll_recv.data());
    const size_t nline = bytes / 8;
    const dim3 grid(static_cast<unsigned>((nline + kLlThreads - 1) / kLlThreads)), block(kLlThreads);
    auto* counter = static_cast<uint32_t*>(ranks_[rank].ll_counter.data());
    const auto* src = static_cast<const uint2*>(in);
    const auto* res = static_cast<const uint2*>(residual);
    auto* dst = static_cast<uint2*>(out);
    const size_t lines_per_rank = ll_lines_per_rank(ll_max_bytes_);
    e = for_dtype(dtype, [&](auto tag) {
      return launch_kernel(ll_all_reduce<decltype(tag)>, grid, block, 0, stream, peers, rank, world, src, res, dst,
                           nline, lines_per_rank, counter, timeout_ns);
    });
    if (e != cudaSuccess) return cuda_error_status(e, "ll_all_reduce launch", __FILE__, __LINE__);
    DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return Status::Ok();
  }
  PeerPtrs peers{};
  for (int r = 0; r < world; ++r) {
    peers.staging[r] = static_cast<const uint8_t*>(ranks_[r].staging.data());
    peers.flags[r] = static_cast<uint32_t*>(ranks_[r].flags.data());
  }
  const size_t nvec = bytes / 16;
  const size_t per_block = kChunkBytes / 16;
  const unsigned blocks = static_cast<unsigned>((nvec + per_block - 1) / per_block);
  auto* counter = static_cast<uint32_t*>(ranks_[rank].counter.data());
  const auto* src = static_cast<const uint4*>(in);
  const auto* res = static_cast<const uint4*>(residual);
  auto* dst = static_cast<uint4*>(out);
  const dim3 grid(blocks), block(kThreads);
  const size_t half_bytes = max_bytes_;
  e = for_dtype(dtype, [&](auto tag) {
    return launch_kernel(one_shot_all_reduce<decltype(tag)>, grid, block, 0, stream, peers, rank, world, src, res,
                         dst, nvec, per_block, half_bytes, counter, timeout_ns);
  });
  if (e != cudaSuccess) return cuda_error_status(e, "one_shot_all_reduce launch", __FILE__, __LINE__);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda
