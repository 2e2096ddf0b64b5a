// CustomAllReduce::all_reduce_sum_norm: the LL all-reduce of one f32 row fused
// with the RMSNorm that reads it (decode batch 1 under tensor parallelism), in
// one launch of kNormBlocks ordinary blocks. Opt-in in the CUDA executor
// (CudaExecutorOptions::all_reduce_norm, DSRT_AR_NORM=1).
//
// Block b owns lines [b * per, min((b + 1) * per, L)) of the row's L lines (8
// payload bytes each): it pushes them to every peer as LL lines
// (custom_all_reduce_device.cuh), waits for the peers' lines, adds in rank order
// with the residual (the plain kernel's order and bits), and keeps its values in
// registers with their sum of squares. The blocks' sums meet in global memory:
// block b posts {sum, epoch} in its slot of this rank's sum array, and every
// block waits for all slots of the call and adds them in block order (so every
// block and every rank has the same total) before it writes its lines of out
// and of the norm output. Every block reads its lines of in and of the
// residual before it posts its sum, and writes only after it has seen all the
// sums, so outputs may alias inputs (norm_out over in, out over the residual).
// Every call launches all kNormBlocks blocks and pushes all L lines, and each
// block keeps its own epoch counter, so the blocks' epochs stay equal and, with
// one row width per object, no line keeps a stale epoch. An earlier version shared the
// sums through a thread-block cluster's distributed shared memory; the decode
// step lost 2.6% (H200, 32B TP 2: 100.4 vs 103.1 tok/s, batch 48), perhaps
// because the cluster waited for 8 free SMs of one GPC behind a GEMV that
// fills every SM.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"
#include "runtime/dist/cuda/custom_all_reduce.h"
#include "runtime/dist/cuda/custom_all_reduce_device.cuh"

namespace ds::cuda {
namespace {

using namespace ar_detail;

constexpr int kNormBlocks = CustomAllReduce::kNormBlocks;
constexpr int kNormLinesPerThread = 4;
static_assert(CustomAllReduce::kMaxNormRowBytes == size_t{8} * kNormBlocks * kLlThreads * kNormLinesPerThread,
              "kMaxNormRowBytes is what the blocks hold in registers");
static_assert(kNormBlocks <= 32, "one lane of warp 0 waits for each block's sum");

// A block's sum of squares and the call's epoch, as one 8-byte access (not torn).
__device__ __forceinline__ void post_sum(uint2* slot, float ss, uint32_t epoch) {
  asm volatile("st.volatile.global.v2.u32 [%0], {%1, %2};" ::"l"(slot), "r"(__float_as_uint(ss)), "r"(epoch)
               : "memory");
}

__device__ __forceinline__ float wait_sum(const uint2* slot, uint32_t epoch, long long timeout_ns) {
  const unsigned long long start = global_ns();
  for (;;) {
    uint32_t v, e;
    asm volatile("ld.volatile.global.v2.u32 {%0, %1}, [%2];" : "=r"(v), "=r"(e) : "l"(slot) : "memory");
    if (e == epoch) return __uint_as_float(v);
    if (static_cast<long long>(global_ns() - start) > timeout_ns) __trap();
  }
}

__global__ void __launch_bounds__(kLlThreads) ll_all_reduce_norm(LlPeers peers, int rank, int world, const uint2* in,
                                                                 const uint2* residual, uint2* out,
                                                                 __nv_bfloat16* norm_out, const __nv_bfloat16* gamma,
                                                                 float eps, int n, int nline, int per_block,
                                                                 size_t lines_per_rank, uint32_t* seq, uint2* sums,
                                                                 bool early_trigger, long long timeout_ns) {
  constexpr int kN = Vec<float, 2>::kN;  // 2 elements per line
  constexpr int kL = kNormLinesPerThread;
  __shared__ float red[kLlThreads / 32];
  __shared__ float total_s;
  const int b = blockIdx.x;
  const uint32_t epoch = begin_call(seq + b, early_trigger);
  const int first = b * per_block;
  const int last = min(first + per_block, nline);
  const size_t base = (static_cast<size_t>(epoch & 1u) * world) * lines_per_rank;
  uint2 mine[kL];
#pragma unroll
  for (int u = 0; u < kL; ++u) {
    const int j = first + threadIdx.x + u * kLlThreads;
    if (j >= last) break;
    mine[u] = in[j];
    for (int k = 1; k < world; ++k) {
      const int d = rank + k < world ? rank + k : rank + k - world;
      ll_store(peers.recv[d] + base + static_cast<size_t>(rank) * lines_per_rank + j, mine[u], epoch);
    }
  }
  float h[kL][kN];
  float ss = 0.0f;
#pragma unroll
  for (int u = 0; u < kL; ++u) {
    const int j = first + threadIdx.x + u * kLlThreads;
    if (j >= last) break;
    const uint32_t* res = residual != nullptr ? reinterpret_cast<const uint32_t*>(residual + j) : nullptr;
    for (int r = 0; r < world; ++r) {
      const uint2 v = r == rank ? mine[u]
                                : ll_wait(peers.recv[rank] + base + static_cast<size_t>(r) * lines_per_rank + j, epoch,
                                          timeout_ns);
      const uint32_t w[2] = {v.x, v.y};
      add_rank<float, 2>(r, w, res, h[u]);
    }
#pragma unroll
    for (int e = 0; e < kN; ++e) ss += h[u][e] * h[u][e];
  }
  // The block's sum in a fixed order (lanes by shuffles, then warp 0 over the warps).
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float t = threadIdx.x < kLlThreads / 32 ? red[threadIdx.x] : 0.0f;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) t += __shfl_xor_sync(0xffffffffu, t, off);
    // Post this block's sum; lane c waits for block c's; lane 0 adds them in block order.
    if (threadIdx.x == 0) post_sum(sums + b, t, epoch);
    const int c = threadIdx.x;
    const float other = c < kNormBlocks ? (c == b ? t : wait_sum(sums + c, epoch, timeout_ns)) : 0.0f;
    float total = 0.0f;
#pragma unroll
    for (int k = 0; k < kNormBlocks; ++k) total += __shfl_sync(0xffffffffu, other, k);
    if (c == 0) total_s = total;
  }
  __syncthreads();
  if (!early_trigger) pdl_trigger();
  const float rstd = rsqrtf(total_s / static_cast<float>(n) + eps);
#pragma unroll
  for (int u = 0; u < kL; ++u) {
    const int j = first + threadIdx.x + u * kLlThreads;
    if (j >= last) break;
    uint32_t w[2];
    Vec<float, 2>::store(h[u], w);
    out[j] = make_uint2(w[0], w[1]);
    const float2 g = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(gamma + j * kN));
    *reinterpret_cast<__nv_bfloat162*>(norm_out + j * kN) =
        __floats2bfloat162_rn(h[u][0] * rstd * g.x, h[u][1] * rstd * g.y);
  }
  if (threadIdx.x == 0) seq[b] = epoch;
}

}  // namespace

bool CustomAllReduce::supports_norm(const void* in, const void* out, DType dtype, size_t n) const {
  return ll_max_bytes_ > 0 && dtype == DType::kF32 && n * sizeof(float) <= kMaxNormRowBytes &&
         supports(in, out, dtype, n);
}

Status CustomAllReduce::all_reduce_sum_norm(int rank, const void* in, void* out, DType dtype, size_t n,
                                            cudaStream_t stream, const void* residual, void* norm_out,
                                            const void* gamma, float eps) {
  if (rank < 0 || rank >= size())
    return Status::Error(StrCat() << "custom all-reduce: rank " << rank << " of " << size());
  if (n == 0 || !supports_norm(in, out, dtype, n))
    return Status::Error(StrCat() << "custom all-reduce + RMSNorm: a row of " << n << " x " << dtype_name(dtype)
                                  << " (f32 only, LL protocol on, 16-byte aligned, at most " << kMaxNormRowBytes
                                  << " bytes)");
  if (reinterpret_cast<uintptr_t>(residual) % 16 != 0 || norm_out == nullptr || gamma == nullptr ||
      reinterpret_cast<uintptr_t>(norm_out) % 4 != 0 || reinterpret_cast<uintptr_t>(gamma) % 4 != 0)
    return Status::Error("custom all-reduce + RMSNorm: residual, norm output or gamma missing or unaligned");
  LlPeers peers{};
  for (int r = 0; r < size(); ++r) peers.recv[r] = static_cast<uint4*>(ranks_[r].ll_norm_recv.data());
  const int nline = static_cast<int>(n * sizeof(float) / 8);
  const int per_block = (nline + kNormBlocks - 1) / kNormBlocks;
  // Experiment (DSRT_AR_NORM_TRIGGER=start): let the next kernel (a GEMV, whose
  // blocks issue their first weight loads before their PDL wait) be scheduled
  // at the start instead of once the sums are in.
  static const bool early_trigger = [] {
    const char* e = std::getenv("DSRT_AR_NORM_TRIGGER");
    return e != nullptr && std::string(e) == "start";
  }();
  cudaLaunchAttribute attrs[1];
  cudaLaunchConfig_t cfg = pdl_launch_config(dim3(kNormBlocks), dim3(kLlThreads), 0, stream, attrs);
  const cudaError_t e = cudaLaunchKernelEx(
      &cfg, ll_all_reduce_norm, peers, rank, size(), static_cast<const uint2*>(in), static_cast<const uint2*>(residual),
      static_cast<uint2*>(out), static_cast<__nv_bfloat16*>(norm_out), static_cast<const __nv_bfloat16*>(gamma), eps,
      static_cast<int>(n), nline, per_block, kMaxNormRowBytes / 8, static_cast<uint32_t*>(ranks_[rank].ll_norm_seq.data()),
      static_cast<uint2*>(ranks_[rank].ll_norm_sums.data()), early_trigger, timeout_ns_);
  if (e != cudaSuccess) return cuda_error_status(e, "ll_all_reduce_norm launch", __FILE__, __LINE__);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda
