#include "runtime/dist/cuda/custom_all_reduce.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"

namespace ds::cuda {
namespace {

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

__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

template <typename T>
struct Vec;  // 16 bytes of T <-> 8 or 4 floats
template <>
struct Vec<__nv_bfloat16> {
  static constexpr int kN = 8;
  __device__ static void load(const uint4& v, float* f) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
    for (int i = 0; i < 4; ++i) {
      const float2 x = __bfloat1622float2(h[i]);
      f[2 * i] = x.x, f[2 * i + 1] = x.y;
    }
  }
  __device__ static uint4 store(const float* f) {
    uint4 v;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&v);
    for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    return v;
  }
};
template <>
struct Vec<__half> {
  static constexpr int kN = 8;
  __device__ static void load(const uint4& v, float* f) {
    const __half2* h = reinterpret_cast<const __half2*>(&v);
    for (int i = 0; i < 4; ++i) {
      const float2 x = __half22float2(h[i]);
      f[2 * i] = x.x, f[2 * i + 1] = x.y;
    }
  }
  __device__ static uint4 store(const float* f) {
    uint4 v;
    __half2* h = reinterpret_cast<__half2*>(&v);
    for (int i = 0; i < 4; ++i) h[i] = __floats2half2_rn(f[2 * i], f[2 * i + 1]);
    return v;
  }
};
template <>
struct Vec<float> {
  static constexpr int kN = 4;
  __device__ static void load(const uint4& v, float* f) {
    f[0] = __uint_as_float(v.x), f[1] = __uint_as_float(v.y), f[2] = __uint_as_float(v.z), f[3] = __uint_as_float(v.w);
  }
  __device__ static uint4 store(const float* f) {
    return make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]), __float_as_uint(f[3]));
  }
};

// Block b handles 16-byte vectors [b * per_block, min((b + 1) * per_block, nvec)).
template <typename T>
__global__ void __launch_bounds__(kThreads) one_shot_all_reduce(PeerPtrs peers, int rank, int world, const uint4* in,
                                                                 const uint4* residual, uint4* out, size_t nvec,
                                                                 size_t per_block,
                                                                 size_t half_bytes, uint32_t* counter,
                                                                 long long timeout_ns) {
  __shared__ uint32_t epoch_s;
  const int b = blockIdx.x;
  // Launched with PDL (behind a GEMV that triggers early): wait for the previous
  // kernels before touching the input or the counters, and let the next kernel
  // (which waits for this one to finish) be scheduled at once.
  pdl_wait();
  pdl_trigger();
  if (threadIdx.x == 0) epoch_s = counter[b] + 1;
  __syncthreads();
  const uint32_t epoch = epoch_s;
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
  constexpr int kN = Vec<T>::kN;
  for (size_t i = begin + threadIdx.x; i < end; i += kThreads) {
    float acc[kN], x[kN];
    Vec<T>::load(reinterpret_cast<const uint4*>(peers.staging[0] + half)[i], acc);
    if (residual != nullptr) {
      Vec<T>::load(residual[i], x);
      for (int k = 0; k < kN; ++k) acc[k] = x[k] + acc[k];
    }
    for (int r = 1; r < world; ++r) {
      Vec<T>::load(reinterpret_cast<const uint4*>(peers.staging[r] + half)[i], x);
      for (int k = 0; k < kN; ++k) acc[k] += x[k];
    }
    out[i] = Vec<T>::store(acc);
  }
  if (threadIdx.x == 0) counter[b] = epoch;
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
    DS_ASSIGN_OR_RETURN(rk.staging, DeviceBuffer::allocate(2 * max_bytes));
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
                                       cudaStream_t stream, const void* residual) {
  if (rank < 0 || rank >= size())
    return Status::Error(StrCat() << "custom all-reduce: rank " << rank << " of " << size());
  if (n == 0) return Status::Ok();
  if (!supports(in, out, dtype, n))
    return Status::Error(StrCat() << "custom all-reduce: " << n << " x " << dtype_name(dtype)
                                  << " (unaligned, not bf16/f16/f32, or over " << max_bytes_ << " bytes)");
  if (reinterpret_cast<uintptr_t>(residual) % 16 != 0)
    return Status::Error("custom all-reduce: the residual is not 16-byte aligned");
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
