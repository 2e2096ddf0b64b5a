// CustomAllReduce with the RMSNorm of the summed rows fused (RowNorm,
// custom_all_reduce.h): one thread-block cluster per row.
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"
#include "runtime/dist/cuda/custom_all_reduce.h"
#include "runtime/dist/cuda/custom_all_reduce_device.cuh"

namespace ds::cuda {
namespace {

using namespace car;

struct NormArgs {
  const __nv_bfloat16* gamma;
  __nv_bfloat16* out;
  float eps;
  int64_t hidden;     // elements per row
  size_t row_vecs;    // 16-byte vectors per row (of the all-reduce's dtype)
  size_t per_block;   // vectors per block of a row
};

// Row blockIdx.y, its part blockIdx.x (the row's blocks are one cluster along x):
// steps 1-4 of the plain kernel on the part, then the row's RMSNorm. Each block
// reduces its squares, the cluster barrier publishes them, and every block adds
// the row's partials in block order through distributed shared memory.
template <typename T>
__global__ void __launch_bounds__(kThreads) one_shot_all_reduce_norm(PeerPtrs peers, int rank, int world,
                                                                      const uint4* in, const uint4* residual,
                                                                      uint4* out, NormArgs na, size_t half_bytes,
                                                                      uint32_t* counter, long long timeout_ns) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  pdl_wait();
  pdl_trigger();
  const size_t row0 = static_cast<size_t>(blockIdx.y) * na.row_vecs;
  const size_t begin = row0 + static_cast<size_t>(blockIdx.x) * na.per_block;
  const size_t row_end = row0 + na.row_vecs;
  const size_t end = begin + na.per_block < row_end ? begin + na.per_block : row_end;
  const int b = static_cast<int>(blockIdx.y * gridDim.x + blockIdx.x);
  float sq = all_reduce_chunk<T, true>(peers, rank, world, in, residual, out, begin, end, b, half_bytes, counter,
                                       timeout_ns);
  __shared__ float warp_sq[kThreads / 32];
  __shared__ float block_sq;
  for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
  if ((threadIdx.x & 31) == 0) warp_sq[threadIdx.x >> 5] = sq;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) t += warp_sq[w];
    block_sq = t;
  }
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();  // every block's partial is in its shared memory
  float total = 0.0f;
  for (unsigned r = 0; r < cluster.num_blocks(); ++r) total += *cluster.map_shared_rank(&block_sq, r);
  const float rstd = rsqrtf(total / static_cast<float>(na.hidden) + na.eps);
  constexpr int kN = Vec<T>::kN;
  for (size_t i = begin + threadIdx.x; i < end; i += kThreads) {
    float v[kN];
    Vec<T>::load(out[i], v);  // written by this thread above
    const int64_t col = static_cast<int64_t>(i - row0) * kN;
    __nv_bfloat16 o[kN];
    for (int k = 0; k < kN; ++k) o[k] = __float2bfloat16(v[k] * rstd * __bfloat162float(na.gamma[col + k]));
    __nv_bfloat16* dst = na.out + static_cast<int64_t>(blockIdx.y) * na.hidden + col;
    if constexpr (kN == 8) {
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(o);
    } else {
      *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(o);
    }
  }
  cluster.sync();  // the other blocks read block_sq until here
#else
  __trap();  // clusters need sm_90 (supports_norm checks the device; this is a build for another arch)
#endif
}

constexpr int kMaxNormBlocksPerRow = 8;  // the portable cluster size

// Blocks per row of the norm kernel: parts of at most kChunkBytes.
size_t norm_blocks_per_row(size_t row_bytes) { return (row_bytes + kChunkBytes - 1) / kChunkBytes; }

}  // namespace

bool CustomAllReduce::supports_norm(DType dtype, size_t n, int64_t hidden) const {
  if (hidden <= 0 || n % static_cast<size_t>(hidden) != 0 || !detail::pdl_device_ok()) return false;
  const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(dtype);
  if (row_bytes % 16 != 0 || (dtype != DType::kBF16 && dtype != DType::kF16 && dtype != DType::kF32)) return false;
  const size_t bpr = norm_blocks_per_row(row_bytes);
  const int64_t first = norm_row_bytes_.load();
  if (first != 0 && first != static_cast<int64_t>(row_bytes)) return false;
  return bpr <= kMaxNormBlocksPerRow && bpr * (n / static_cast<size_t>(hidden)) <= kMaxBlocks;
}

Status CustomAllReduce::launch_norm(int rank, const void* in, const void* residual, void* out, DType dtype, size_t n,
                                    cudaStream_t stream, const RowNorm& norm, const void* peers_ptr) {
  // The norm kernel stages into its own pair of halves (after the plain kernel's):
  // its blocks map vectors to flag slots differently, and the epoch-parity reuse
  // argument (custom_all_reduce.h) holds per region, where the mapping is fixed.
  int64_t expected = 0;
  const int64_t row_bytes_now = static_cast<int64_t>(norm.hidden) * static_cast<int64_t>(dtype_size(dtype));
  if (!norm_row_bytes_.compare_exchange_strong(expected, row_bytes_now) && expected != row_bytes_now)
    return Status::Error(StrCat() << "custom all-reduce: fused RMSNorm rows of " << row_bytes_now
                                  << " bytes, but this group's norm staging is laid out for rows of " << expected);
  PeerPtrs peers = *static_cast<const PeerPtrs*>(peers_ptr);
  for (int r = 0; r < size(); ++r) peers.staging[r] += 2 * max_bytes_;
  NormArgs na;
  na.gamma = static_cast<const __nv_bfloat16*>(norm.gamma);
  na.out = static_cast<__nv_bfloat16*>(norm.out);
  na.eps = norm.eps;
  na.hidden = norm.hidden;
  const size_t row_bytes = static_cast<size_t>(norm.hidden) * dtype_size(dtype);
  const size_t bpr = norm_blocks_per_row(row_bytes);
  na.row_vecs = row_bytes / 16;
  na.per_block = (na.row_vecs + bpr - 1) / bpr;
  const unsigned rows = static_cast<unsigned>(n / static_cast<size_t>(norm.hidden));
  cudaLaunchAttribute attrs[2];
  cudaLaunchConfig_t cfg = pdl_cluster_launch_config(dim3(static_cast<unsigned>(bpr), rows), dim3(kThreads), 0, stream,
                                                     attrs, dim3(static_cast<unsigned>(bpr), 1, 1));
  const auto* src = static_cast<const uint4*>(in);
  const auto* res = static_cast<const uint4*>(residual);
  auto* dst = static_cast<uint4*>(out);
  auto* counter = static_cast<uint32_t*>(ranks_[rank].counter.data());
  const size_t half_bytes = max_bytes_;
  const int world = size();
  cudaError_t e = cudaSuccess;
  switch (dtype) {
    case DType::kBF16:
      e = cudaLaunchKernelEx(&cfg, one_shot_all_reduce_norm<__nv_bfloat16>, peers, rank, world, src, res, dst, na,
                             half_bytes, counter, timeout_ns_);
      break;
    case DType::kF16:
      e = cudaLaunchKernelEx(&cfg, one_shot_all_reduce_norm<__half>, peers, rank, world, src, res, dst, na, half_bytes,
                             counter, timeout_ns_);
      break;
    default:
      e = cudaLaunchKernelEx(&cfg, one_shot_all_reduce_norm<float>, peers, rank, world, src, res, dst, na, half_bytes,
                             counter, timeout_ns_);
      break;
  }
  if (e != cudaSuccess) return cuda_error_status(e, "one_shot_all_reduce_norm launch", __FILE__, __LINE__);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda
