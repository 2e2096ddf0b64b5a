// The per-row sampling kernel: one CTA of kThreads per logit row.
//   1. logprobs (rows with logprobs >= 0) from the RAW row, before anything is
//      modified: logsumexp, and the top-n tokens by an exact radix select;
//   2. penalties in place, exactly as apply_penalties (token_sampler.cpp),
//      deduplicated through an int32 scratch row that is left all-zero again;
//      the raw logits of the history tokens are saved first, so the chosen
//      token's raw logprob is known even when its logit was penalized;
//   3. greedy rows: argmax, lowest id on ties;
//      sampled rows: top_k <= 1024: the top-k tokens gathered and sorted in
//      shared memory, top-p/min-p and the draw there; otherwise top-k cut
//      (count select), top-p cut over the top-k set (mass select), min-p as a
//      per-token test. The draw is an inverse CDF with one Philox4x32-10
//      uniform keyed by (seed, counter) over fixed-point masses: an exact draw
//      from the filtered softmax(logits / temperature) (sampling_draw.cuh).
#include <cuda_runtime.h>

#include "kernels/cuda/sampling/philox.h"
#include "kernels/cuda/sampling/sampling_kernel.h"
#include "kernels/cuda/sampling/sampling_draw.cuh"
#include "kernels/cuda/sampling/sampling_select.cuh"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda {
namespace sampling {
namespace {

struct KernelSmem {
  SelectSmem select;
  ReduceSmem reduce;
  SmallTopKSmem small;
  uint64_t top_keys[kSamplingMaxLogprobs];
  unsigned int top_found;
  float chosen_raw;
};

__device__ void write_top_logprobs(const RowView& rv, int n, float lse, KernelSmem& sm, SampleRowOut* out) {
  SelectSpec spec;
  spec.count = static_cast<unsigned long long>(n);
  const uint64_t cut = select_cut(rv, spec, sm.select);
  if (threadIdx.x == 0) sm.top_found = 0;
  __syncthreads();
  for (int64_t g = threadIdx.x; g < rv.groups; g += kThreads) {
    float v[4];
    const int cnt = rv.load(g, v);
    for (int j = 0; j < cnt; ++j) {
      const uint64_t key = rank_key(v[j], static_cast<uint32_t>(g * 4 + j));
      if (key < cut) continue;
      const unsigned slot = atomicAdd(&sm.top_found, 1u);
      if (slot < static_cast<unsigned>(kSamplingMaxLogprobs)) sm.top_keys[slot] = key;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const int m = min(static_cast<int>(sm.top_found), n);  // == n: rank keys are unique
    for (int a = 1; a < m; ++a) {  // insertion sort, best (largest key) first
      const uint64_t k = sm.top_keys[a];
      int b = a - 1;
      while (b >= 0 && sm.top_keys[b] < k) {
        sm.top_keys[b + 1] = sm.top_keys[b];
        --b;
      }
      sm.top_keys[b + 1] = k;
    }
    for (int a = 0; a < kSamplingMaxLogprobs; ++a) {
      const int id = a < m ? static_cast<int>(rank_key_id(sm.top_keys[a])) : -1;
      out->top_ids[a] = id;
      out->top_logprobs[a] = id >= 0 ? rv.row[id] - lse : 0.0f;
    }
  }
  __syncthreads();
}

__device__ __forceinline__ bool valid_token(int32_t t, int64_t vocab) { return t >= 0 && t < vocab; }

__device__ void apply_penalties(float* row, int64_t vocab, const SampleRowParams& p, const int32_t* hist,
                                float* raw_hist, int32_t* scratch, bool save_raw) {
  const int64_t n_all = static_cast<int64_t>(p.prompt_len) + p.output_len;
  const int32_t* out_tokens = hist + p.prompt_len;
  if (save_raw) {
    for (int64_t i = threadIdx.x; i < n_all; i += kThreads)
      if (valid_token(hist[i], vocab)) raw_hist[i] = row[hist[i]];
    __syncthreads();
  }
  if (p.repetition_penalty != 1.0f) {
    const float r = p.repetition_penalty;
    for (int64_t i = threadIdx.x; i < n_all; i += kThreads) {
      const int32_t t = hist[i];
      if (!valid_token(t, vocab) || atomicExch(&scratch[t], 1) != 0) continue;
      const float l = row[t];
      row[t] = l > 0.0f ? __fdiv_rn(l, r) : __fmul_rn(l, r);
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n_all; i += kThreads)
      if (valid_token(hist[i], vocab)) scratch[hist[i]] = 0;
    __syncthreads();
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    for (int64_t i = threadIdx.x; i < p.output_len; i += kThreads)
      if (valid_token(out_tokens[i], vocab)) atomicAdd(&scratch[out_tokens[i]], 1);
    __syncthreads();
    for (int64_t i = threadIdx.x; i < p.output_len; i += kThreads) {
      const int32_t t = out_tokens[i];
      if (!valid_token(t, vocab)) continue;
      const int c = atomicExch(&scratch[t], 0);  // one occurrence takes the count, the rest see 0
      if (c <= 0) continue;
      // Same rounding as the CPU: l - (f * c + p), no fused multiply-add.
      row[t] = __fsub_rn(row[t], __fadd_rn(__fmul_rn(p.frequency_penalty, static_cast<float>(c)),
                                           p.presence_penalty));
    }
    __syncthreads();
  }
}

__device__ int sample_filtered(const RowView& rv, const SampleRowParams& p, KernelSmem& sm) {
  const float inv_t = 1.0f / p.temperature;
  if (p.top_k > 1 && p.top_k <= kSmallTopK && p.top_k < rv.vocab)
    return sample_small_top_k(rv, p.top_k, p.top_p, inv_t, p.min_p, p.seed, p.counter, sm.select, sm.small);
  float max_logit = -INFINITY;
  row_argmax(rv, sm.reduce, &max_logit);
  const uint64_t cut =
      filter_cut_range(rv, p.top_k, p.top_p, max_logit, inv_t, sm.select, 0, rv.groups, BlockCombine{});
  const DrawParams d{cut, max_logit, inv_t, p.min_p, p.seed, p.counter};
  const int chosen = draw_inverse_cdf(rv, d, sm.select);
  return chosen >= 0 ? chosen : row_argmax(rv, sm.reduce, nullptr);
}

__global__ void __launch_bounds__(kThreads, 2) sample_rows_kernel(SampleLaunch a) {
  __shared__ KernelSmem sm;
  const int r = blockIdx.x;
  const SampleRowParams p = a.params[r];
  float* row = a.logits + static_cast<int64_t>(r) * a.vocab;
  const bool vec = (a.vocab % 4 == 0) && (reinterpret_cast<uintptr_t>(a.logits) % 16 == 0);
  const RowView rv{row, a.vocab, (a.vocab + 3) / 4, vec};
  SampleRowOut* out = a.out + r;
  const bool penalties = p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
  const bool has_history = static_cast<int64_t>(p.prompt_len) + p.output_len > 0;
  const int32_t* hist = a.tokens + p.history_offset;
  float* raw_hist = a.raw_history + p.history_offset;

  float lse = 0.0f;
  if (p.logprobs >= 0) {
    lse = row_logsumexp(rv, sm.reduce);
    const int n = p.logprobs < a.vocab ? p.logprobs : static_cast<int>(a.vocab);
    if (n > 0) {
      write_top_logprobs(rv, n, lse, sm, out);
    } else if (threadIdx.x == 0) {
      for (int k = 0; k < kSamplingMaxLogprobs; ++k) {
        out->top_ids[k] = -1;
        out->top_logprobs[k] = 0.0f;
      }
    }
  }
  if (penalties && has_history && p.scratch_slot >= 0)
    apply_penalties(row, a.vocab, p, hist, raw_hist, a.scratch + static_cast<int64_t>(p.scratch_slot) * a.vocab,
                    p.logprobs >= 0);

  const bool greedy = p.temperature == 0.0f || p.top_k == 1;
  const int chosen = greedy ? row_argmax(rv, sm.reduce, nullptr) : sample_filtered(rv, p, sm);

  if (p.logprobs >= 0) {
    if (threadIdx.x == 0) sm.chosen_raw = row[chosen];
    __syncthreads();
    if (penalties && has_history && p.scratch_slot >= 0) {
      const int64_t n_all = static_cast<int64_t>(p.prompt_len) + p.output_len;
      for (int64_t i = threadIdx.x; i < n_all; i += kThreads)
        if (hist[i] == chosen) sm.chosen_raw = raw_hist[i];  // every copy holds the same raw value
      __syncthreads();
    }
  }
  if (threadIdx.x == 0) {
    out->id = chosen;
    out->logprob = p.logprobs >= 0 ? sm.chosen_raw - lse : 0.0f;
    if (p.logprobs < 0)
      for (int k = 0; k < kSamplingMaxLogprobs; ++k) {
        out->top_ids[k] = -1;
        out->top_logprobs[k] = 0.0f;
      }
  }
  if (a.out_host != nullptr) {  // the host's copy, written over PCIe (no copy back on the stream)
    __syncthreads();
    constexpr int kWords = static_cast<int>(sizeof(SampleRowOut) / sizeof(int32_t));
    static_assert(kWords <= kThreads, "one word of the row's result per thread");
    if (threadIdx.x < kWords)
      reinterpret_cast<int32_t*>(a.out_host + r)[threadIdx.x] = __ldcg(reinterpret_cast<const int32_t*>(out) + threadIdx.x);
  }
}

}  // namespace
}  // namespace sampling

Status launch_sample_rows(const SampleLaunch& a, cudaStream_t stream) {
  if (a.rows <= 0) return Status::Ok();
  if (!a.logits || !a.params || !a.out || !a.scratch || !a.tokens || !a.raw_history)
    return Status::Error("launch_sample_rows: a device pointer is null");
  sampling::sample_rows_kernel<<<a.rows, sampling::kThreads, 0, stream>>>(a);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda
