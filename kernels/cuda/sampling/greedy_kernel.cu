// Greedy rows without logprobs or penalties (what most decode calls ask for),
// split over several CTAs per row: the per-row kernel (sampling_kernel.cu)
// scans a whole vocabulary with one CTA, which at one or a few rows leaves the
// GPU idle for most of the call. Here CTA s of row r finds the best (value,
// id) of its contiguous slice of the row, stores it, and the row's last CTA to
// arrive (a per-row counter, reset for the next call) merges the slices'
// partials in slice order. The result is row_argmax's: the largest value,
// the lowest id on ties, NaN ignored, 0 for a row without a comparable value.
#include <cuda_runtime.h>

#include "kernels/cuda/sampling/sampling_block.cuh"
#include "kernels/cuda/sampling/sampling_kernel.h"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda {
namespace sampling {
namespace {

__global__ void __launch_bounds__(kThreads) greedy_rows_kernel(GreedyLaunch a) {
  __shared__ ReduceSmem sm;
  __shared__ bool last;
  const int r = blockIdx.y, s = blockIdx.x, splits = gridDim.x;
  float* row = const_cast<float*>(a.logits) + static_cast<int64_t>(r) * a.vocab;
  const bool vec = (a.vocab % 4 == 0) && (reinterpret_cast<uintptr_t>(a.logits) % 16 == 0);
  const RowView rv{row, a.vocab, (a.vocab + 3) / 4, vec};
  const int64_t g0 = rv.groups * s / splits, g1 = rv.groups * (s + 1) / splits;
  float bv = -INFINITY;
  int bi = INT_MAX;
  for (int64_t g = g0 + threadIdx.x; g < g1; g += kThreads) {
    float v[4];
    const int n = rv.load(g, v);
    for (int j = 0; j < n; ++j) keep_better(bv, bi, v[j], static_cast<int>(g * 4 + j));
  }
  block_argmax(bv, bi, sm);
  const int64_t slot = static_cast<int64_t>(r) * splits + s;
  if (threadIdx.x == 0) {
    a.part_value[slot] = bv;
    a.part_id[slot] = bi;
    __threadfence();
    last = atomicAdd(&a.counters[r], 1u) == static_cast<unsigned>(splits - 1);
  }
  __syncthreads();
  if (!last || threadIdx.x != 0) return;
  __threadfence();
  float v = -INFINITY;
  int id = INT_MAX;
  for (int k = 0; k < splits; ++k) {
    const int64_t at = static_cast<int64_t>(r) * splits + k;
    keep_better(v, id, __ldcg(a.part_value + at), __ldcg(a.part_id + at));
  }
  a.counters[r] = 0;  // ready for the next call (stream order)
  SampleRowOut o;
  o.id = id == INT_MAX ? 0 : id;
  o.logprob = 0.0f;
  for (int k = 0; k < kSamplingMaxLogprobs; ++k) {
    o.top_ids[k] = -1;
    o.top_logprobs[k] = 0.0f;
  }
  a.out[r] = o;
  if (a.out_host != nullptr) a.out_host[r] = o;
}

}  // namespace
}  // namespace sampling

int greedy_splits(int64_t vocab) {
  const int64_t per_cta = int64_t{sampling::kThreads} * 16;  // 4 float4 groups per thread
  const int64_t s = (vocab + per_cta - 1) / per_cta;
  return static_cast<int>(s < 1 ? 1 : (s > kGreedyMaxSplits ? kGreedyMaxSplits : s));
}

Status launch_greedy_rows(const GreedyLaunch& a, cudaStream_t stream) {
  if (a.rows <= 0) return Status::Ok();
  if (!a.logits || !a.part_value || !a.part_id || !a.counters || !a.out)
    return Status::Error("launch_greedy_rows: a device pointer is null");
  if (a.rows > 65535) return Status::Error("launch_greedy_rows: more than 65535 rows in one launch");
  const dim3 grid(static_cast<unsigned>(greedy_splits(a.vocab)), static_cast<unsigned>(a.rows));
  sampling::greedy_rows_kernel<<<grid, sampling::kThreads, 0, stream>>>(a);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda
