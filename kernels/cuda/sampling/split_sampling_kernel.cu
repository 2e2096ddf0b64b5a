// Sampling over a thread-block cluster (sm_90+): `splits` CTAs per logit row,
// each holding a contiguous slice of the row's token groups, for calls whose
// rows carry no logprobs and no penalties and do not take the small top-k path
// (DeviceSampler picks it when the per-row kernel would leave SMs idle).
//
// The per-row kernel (sampling_kernel.cu) runs every pass over a 152k-token row
// in one CTA; with 64 rows that is 64 CTAs on 132 SMs, and a top-p row costs
// about 1 ms (docs/PERF.md, session 13). Here each pass runs over 1/splits of
// the row per CTA and the CTAs meet through distributed shared memory:
//   1. argmax: each CTA's (value, id) best, merged in rank order by every CTA
//      (the greedy rows' answer; the max logit of the sampled rows);
//   2. top-k / top-p cuts: select_cut_range with the CTAs' histograms added bin
//      by bin after each pass (ClusterCombine: integer counts and fixed-point
//      masses, so every CTA finds the same bucket and stops at the same pass);
//   3. the draw: each CTA sums its slice's kept mass, every CTA adds the slices
//      in rank order (= id order), the slice holding the uniform's target walks
//      its tiles to the token.
// Every sum is an integer and every order the per-row kernel's, so the ids are
// the per-row kernel's bit for bit.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include "kernels/cuda/sampling/philox.h"
#include "kernels/cuda/sampling/sampling_draw.cuh"
#include "kernels/cuda/sampling/sampling_kernel.h"
#include "kernels/cuda/sampling/sampling_select.cuh"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda {
namespace sampling {
namespace {

namespace cg = cooperative_groups;

struct SplitSmem {
  SelectSmem select;
  ReduceSmem reduce;
  float best_v;                     // this CTA's argmax (read by the cluster)
  int best_i;
  unsigned long long slice_total;   // this CTA's kept mass (read by the cluster)
  float max_v;                      // the row's argmax
  int max_i;
  int owner;                        // the CTA whose slice holds the draw's target (-1: no mass)
  unsigned long long owner_target;  // the target inside that slice
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// Adds the cluster's pass histograms bin by bin into every CTA's bins.
struct ClusterCombine {
  __device__ void operator()(SelectSmem& sm, int nb, bool by_mass) const {
    cg::cluster_group cluster = cg::this_cluster();
    const unsigned ranks = cluster.num_blocks();
    constexpr int kPer = kMaxBins / kThreads;
    unsigned long long mass[kPer];
    unsigned cnt[kPer];
    cluster.sync();  // every CTA's histogram is complete
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      const int b = threadIdx.x + k * kThreads;
      mass[k] = 0;
      cnt[k] = 0;
      if (b >= nb) continue;
      for (unsigned q = 0; q < ranks; ++q) {
        const SelectSmem* other = cluster.map_shared_rank(&sm, q);
        cnt[k] += other->cnt[b];
        if (by_mass) mass[k] += other->mass[b];
      }
    }
    cluster.sync();  // every CTA has read every histogram: bins may be overwritten
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      const int b = threadIdx.x + k * kThreads;
      if (b >= nb) continue;
      sm.cnt[b] = cnt[k];
      sm.mass[b] = mass[k];
    }
    __syncthreads();
  }
};
#endif

// The row's result: id, no logprobs (and the host's mapped copy).
__device__ void write_row(SampleRowOut* out, SampleRowOut* out_host, int id) {
  SampleRowOut* const dst[2] = {out, out_host};
  for (SampleRowOut* o : dst) {
    if (o == nullptr) continue;
    if (threadIdx.x == 0) {
      o->id = id;
      o->logprob = 0.0f;
    }
    if (threadIdx.x < kSamplingMaxLogprobs) {
      o->top_ids[threadIdx.x] = -1;
      o->top_logprobs[threadIdx.x] = 0.0f;
    }
  }
}

__global__ void __launch_bounds__(kThreads, 2) split_sample_kernel(SampleLaunch a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  __shared__ SplitSmem sm;
  cg::cluster_group cluster = cg::this_cluster();
  const unsigned ranks = cluster.num_blocks(), rank = cluster.block_rank();
  const int r = static_cast<int>(blockIdx.x / ranks);
  const SampleRowParams p = a.params[r];
  float* row = a.logits + static_cast<int64_t>(r) * a.vocab;
  const bool vec = (a.vocab % 4 == 0) && (reinterpret_cast<uintptr_t>(a.logits) % 16 == 0);
  const RowView rv{row, a.vocab, (a.vocab + 3) / 4, vec};
  const int64_t g0 = rv.groups * rank / ranks, g1 = rv.groups * (rank + 1) / ranks;

  float bv;
  int bi;
  range_argmax(rv, g0, g1, sm.reduce, bv, bi);
  if (threadIdx.x == 0) sm.best_v = bv, sm.best_i = bi;
  cluster.sync();
  if (threadIdx.x == 0) {
    float v = -INFINITY;
    int i = INT_MAX;
    for (unsigned q = 0; q < ranks; ++q) {
      const SplitSmem* other = cluster.map_shared_rank(&sm, q);
      keep_better(v, i, other->best_v, other->best_i);
    }
    sm.max_v = v, sm.max_i = i;
  }
  __syncthreads();
  const float max_logit = sm.max_v;
  const int argmax_id = sm.max_i == INT_MAX ? 0 : sm.max_i;
  int chosen = -1;  // written by this CTA when >= 0
  if (p.temperature == 0.0f || p.top_k == 1) {
    if (rank == 0) chosen = argmax_id;
  } else {
    const float inv_t = 1.0f / p.temperature;
    const uint64_t cut = filter_cut_range(rv, p.top_k, p.top_p, max_logit, inv_t, sm.select, g0, g1, ClusterCombine{});
    const DrawParams d{cut, max_logit, inv_t, p.min_p, p.seed, p.counter};
    const DrawTiles tiles(g0, g1);
    const unsigned long long mine = draw_tile_masses(rv, d, tiles, sm.select);
    if (threadIdx.x == 0) sm.slice_total = mine;
    cluster.sync();
    if (threadIdx.x == 0) {
      unsigned long long total = 0;
      for (unsigned q = 0; q < ranks; ++q) total += cluster.map_shared_rank(&sm, q)->slice_total;
      sm.owner = -1;
      if (total > 0) {
        const unsigned long long target = cdf_target(row_uniform(p.seed, p.counter), total);
        unsigned long long run = 0;
        for (unsigned q = 0; q < ranks; ++q) {
          const unsigned long long s = cluster.map_shared_rank(&sm, q)->slice_total;
          if (target < run + s) {
            sm.owner = static_cast<int>(q);
            sm.owner_target = target - run;
            break;
          }
          run += s;
        }
      }
    }
    __syncthreads();
    if (sm.owner < 0) {
      if (rank == 0) chosen = argmax_id;  // no kept token has mass: the per-row kernel's fallback
    } else if (sm.owner == static_cast<int>(rank)) {
      const int id = draw_pick(rv, d, tiles, sm.owner_target, sm.select);
      chosen = id >= 0 ? id : argmax_id;
    }
  }
  if (chosen >= 0) write_row(a.out + r, a.out_host != nullptr ? a.out_host + r : nullptr, chosen);
  cluster.sync();  // no CTA leaves while the cluster may still read its shared memory
#else
  __trap();
#endif
}

static_assert(kSamplingSmallTopK == kSmallTopK, "DeviceSampler routes small top-k rows to the per-row kernel");

}  // namespace
}  // namespace sampling

int sampling_cluster_splits(int64_t rows, int64_t vocab, int num_sms) {
  const int64_t groups = (vocab + 3) / 4;
  int splits = kSamplingMaxClusterSplits;
  while (splits > 1 && (rows * splits > 2 * static_cast<int64_t>(num_sms) || groups < splits)) splits /= 2;
  return splits;
}

Status launch_sample_rows_split(const SampleLaunch& a, int splits, cudaStream_t stream) {
  if (a.rows <= 0) return Status::Ok();
  if (!a.logits || !a.params || !a.out) return Status::Error("launch_sample_rows_split: a device pointer is null");
  if (splits != 2 && splits != 4 && splits != 8)
    return Status::Error(StrCat() << "launch_sample_rows_split: splits = " << splits << " (2, 4 or 8)");
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(a.rows) * static_cast<unsigned>(splits));
  cfg.blockDim = dim3(sampling::kThreads);
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(splits);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  DS_CUDA_RETURN_IF_ERROR(cudaLaunchKernelEx(&cfg, sampling::split_sample_kernel, a));
  return Status::Ok();
}

}  // namespace ds::cuda
