// Exact prefix selection over a logit row without sorting it: radix select on
// the 64-bit rank key (value bits, then inverted id bits for ties), 11/11/10
// bits per pass, with block-wide shared-memory histograms of counts and,
// for top-p, of probability mass in 2^-32 fixed point (integer sums: the cut
// does not depend on the order of atomics, so a draw is reproducible).
//
// select_cut() returns the cut C of the shortest prefix (in the CPU sampler's
// order: value desc, id asc) of the tokens with rank_key >= lo that holds
//   count mode: `count` tokens;
//   mass mode:  a mass >= top_p * (mass of all tokens >= lo),
// so the kept set is {token: rank_key >= C}. Most rows finish after 1-2 passes
// (the bucket holding the cut has a single token); exact value ties continue
// into the id bits and cut the tie group at the CPU's lowest-id-first position.
#pragma once

#include "kernels/cuda/sampling/sampling_block.cuh"

namespace ds::cuda::sampling {

constexpr int kMaxBins = 2048;

struct SelectSmem {
  unsigned long long mass[kMaxBins];
  unsigned int cnt[kMaxBins];
  unsigned long long above_cnt, above_mass, bucket_cnt, bucket_mass;
  double target;
  unsigned int bucket;
  int found;
};

struct SelectSpec {
  bool by_mass = false;
  unsigned long long count = 0;  // count mode: the prefix length
  float top_p = 1.0f;            // mass mode
  float max_logit = 0.0f;        // mass(x) = exp((x - max_logit) * inv_t)
  float inv_t = 1.0f;
  uint64_t lo = 0;               // only tokens with rank_key >= lo take part
};

// Probability mass relative to the row's best token, fixed point 2^-32.
__device__ __forceinline__ unsigned long long fixed_mass(float x, float max_logit, float inv_t) {
  const float e = expf((x - max_logit) * inv_t);
  return e > 0.0f ? __float2ull_rn(e * 4294967296.0f) : 0ull;
}

// Pass geometry: value bits 63..32 in 11/11/10, id bits 31..0 in 11/11/10.
__device__ __forceinline__ int level_shift(int level) {
  return level == 0 ? 53 : level == 1 ? 42 : level == 2 ? 32 : level == 3 ? 21 : level == 4 ? 10 : 0;
}
__device__ __forceinline__ int level_width(int level) { return (level == 2 || level == 5) ? 10 : 11; }

// Warp 0: find the bucket (scanning from the top) where the running total
// reaches the goal; writes the result into sm. Lane L owns bins [L*per, (L+1)*per).
__device__ __forceinline__ void find_bucket(SelectSmem& sm, int nb, bool by_mass, bool first_mass_pass,
                                            float top_p, unsigned long long need, double target,
                                            unsigned long long acc_cnt, unsigned long long acc_mass) {
  const int lane = threadIdx.x & 31;
  const int per = nb / 32;
  unsigned long long lane_cnt = 0, lane_mass = 0;
  for (int k = 0; k < per; ++k) {
    lane_cnt += sm.cnt[lane * per + k];
    if (by_mass) lane_mass += sm.mass[lane * per + k];
  }
  if (first_mass_pass) {
    target = static_cast<double>(top_p) * static_cast<double>(warp_sum_u64(lane_mass));
    if (lane == 0) sm.target = target;
  }
  // Suffix sums over lanes: lanes L..31.
  unsigned long long sc = lane_cnt, sm_mass = lane_mass;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const unsigned long long oc = __shfl_down_sync(kFullMask, sc, off);
    const unsigned long long om = __shfl_down_sync(kFullMask, sm_mass, off);
    if (lane + off < 32) {
      sc += oc;
      sm_mass += om;
    }
  }
  const bool reach = by_mass ? static_cast<double>(acc_mass + sm_mass) >= target : acc_cnt + sc >= need;
  const unsigned ballot = __ballot_sync(kFullMask, reach);
  if (ballot == 0) {
    if (lane == 0) sm.found = 0;
    return;
  }
  const int c = 31 - __clz(static_cast<int>(ballot));
  if (lane != c) return;
  unsigned long long run_c = acc_cnt + (sc - lane_cnt), run_m = acc_mass + (sm_mass - lane_mass);
  for (int d = (c + 1) * per - 1; d >= c * per; --d) {
    const unsigned long long nc = run_c + sm.cnt[d];
    const unsigned long long nm = by_mass ? run_m + sm.mass[d] : 0ull;
    const bool hit = by_mass ? static_cast<double>(nm) >= target : nc >= need;
    if (hit || d == c * per) {  // the lane's total reaches, so the last bin always hits
      sm.bucket = static_cast<unsigned>(d);
      sm.above_cnt = run_c;
      sm.above_mass = run_m;
      sm.bucket_cnt = sm.cnt[d];
      sm.bucket_mass = by_mass ? sm.mass[d] : 0ull;
      sm.found = 1;
      return;
    }
    run_c = nc;
    run_m = nm;
  }
}

// No-op histogram combine: the block holds the whole row.
struct BlockCombine {
  __device__ __forceinline__ void operator()(SelectSmem&, int, bool) const {}
};

// select_cut over the token groups [g0, g1) of the row, with `combine(sm, nb,
// by_mass)` called once the block's histogram of a pass is complete (every
// thread, after a __syncthreads()): a thread-block cluster holding the row in
// slices adds its blocks' histograms there (split_sampling_kernel.cu), so every
// block finds the same bucket and takes the same number of passes.
template <typename Combine>
__device__ __forceinline__ uint64_t select_cut_range(const RowView& rv, const SelectSpec& spec, SelectSmem& sm,
                                                     int64_t g0, int64_t g1, const Combine& combine) {
  bool by_mass = spec.by_mass;
  unsigned long long need = spec.count, acc_cnt = 0, acc_mass = 0;
  double target = 0.0;
  uint64_t prefix = 0;
  for (int level = 0; level < 6; ++level) {
    const int shift = level_shift(level), width = level_width(level), nb = 1 << width;
    for (int b = threadIdx.x; b < nb; b += kThreads) {
      sm.cnt[b] = 0;
      sm.mass[b] = 0;
    }
    __syncthreads();
    // Warp-uniform loop; lanes that hit the same bin are aggregated (match +
    // redux) so one shared atomic per distinct bin and warp step is issued:
    // logits crowd into few bins of the top digit.
    const int lane = threadIdx.x & 31;
    for (int64_t base = g0 + threadIdx.x - lane; base < g1; base += kThreads) {
      const int64_t g = base + lane;
      float v[4];
      const int n = g < g1 ? rv.load(g, v) : 0;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        unsigned d = 0xFFFFFFFFu;
        unsigned long long ms = 0;
        if (j < n) {
          const uint64_t key = rank_key(v[j], static_cast<uint32_t>(g * 4 + j));
          if (key >= spec.lo && (level == 0 || (key >> (shift + width)) == prefix)) {
            d = static_cast<unsigned>(key >> shift) & static_cast<unsigned>(nb - 1);
            if (by_mass) ms = fixed_mass(v[j], spec.max_logit, spec.inv_t);
          }
        }
        if (__ballot_sync(kFullMask, d != 0xFFFFFFFFu) == 0) continue;  // sparse passes: most steps
        // Lanes of one bin form a peer group; each group reduces with its own
        // mask (disjoint groups, every member passes the same mask, as redux.sync
        // requires) and its leader issues the shared atomics.
        const unsigned peers = __match_any_sync(kFullMask, d);
        if (d == 0xFFFFFFFFu) continue;  // the whole peer group skips together
        const bool leader = lane == __ffs(static_cast<int>(peers)) - 1;
        if (by_mass) {
          // mass <= 2^32: sum its two 16-bit halves separately (no u32 overflow).
          const unsigned hi = __reduce_add_sync(peers, static_cast<unsigned>(ms >> 16));
          const unsigned lo = __reduce_add_sync(peers, static_cast<unsigned>(ms & 0xFFFFu));
          if (leader) atomicAdd(&sm.mass[d], (static_cast<unsigned long long>(hi) << 16) + lo);
        }
        if (leader) atomicAdd(&sm.cnt[d], static_cast<unsigned>(__popc(peers)));
      }
    }
    __syncthreads();
    combine(sm, nb, by_mass);
    if (threadIdx.x < 32)
      find_bucket(sm, nb, by_mass, by_mass && level == 0, spec.top_p, need, target, acc_cnt, acc_mass);
    __syncthreads();
    if (!sm.found) return spec.lo;  // fewer tokens / less mass than asked: keep them all
    if (by_mass && level == 0) target = sm.target;
    prefix = (prefix << width) | sm.bucket;
    acc_cnt = sm.above_cnt;
    acc_mass = sm.above_mass;
    const unsigned long long bucket_cnt = sm.bucket_cnt, bucket_mass = sm.bucket_mass;
    const uint64_t whole_bucket = prefix << shift;  // the smallest key with this prefix
    const uint64_t cut = whole_bucket > spec.lo ? whole_bucket : spec.lo;
    if (bucket_cnt == 1) return cut;
    if (!by_mass && acc_cnt + bucket_cnt == need) return cut;
    if (by_mass && level == 2) {
      // The bucket is one exact value: every token in it has the same mass e,
      // and the CPU's cumulative sum reaches the target after n of them.
      const unsigned long long e = bucket_mass / bucket_cnt;
      double n = e == 0 ? 1.0 : ceil((target - static_cast<double>(acc_mass)) / static_cast<double>(e));
      n = n < 1.0 ? 1.0 : n > static_cast<double>(bucket_cnt) ? static_cast<double>(bucket_cnt) : n;
      if (static_cast<unsigned long long>(n) == bucket_cnt) return cut;
      by_mass = false;
      need = static_cast<unsigned long long>(n);
      acc_cnt = 0;
    }
    __syncthreads();  // sm is cleared by the next pass
  }
  return prefix > spec.lo ? prefix : spec.lo;
}

__device__ __forceinline__ uint64_t select_cut(const RowView& rv, const SelectSpec& spec, SelectSmem& sm) {
  return select_cut_range(rv, spec, sm, 0, rv.groups, BlockCombine{});
}

// The cut of a sampled row's filters over the groups [g0, g1): top-k (off when
// top_k <= 0 or >= vocab), then top-p over the tokens top-k keeps (off at 1);
// 0 keeps every token.
template <typename Combine>
__device__ __forceinline__ uint64_t filter_cut_range(const RowView& rv, int32_t top_k, float top_p, float max_logit,
                                                     float inv_t, SelectSmem& sm, int64_t g0, int64_t g1,
                                                     const Combine& combine) {
  uint64_t cut = 0;
  if (top_k > 0 && top_k < rv.vocab) {
    SelectSpec spec;
    spec.count = static_cast<unsigned long long>(top_k);
    cut = select_cut_range(rv, spec, sm, g0, g1, combine);
  }
  if (top_p < 1.0f) {
    SelectSpec spec;
    spec.by_mass = true;
    spec.top_p = top_p;
    spec.max_logit = max_logit;
    spec.inv_t = inv_t;
    spec.lo = cut;
    cut = select_cut_range(rv, spec, sm, g0, g1, combine);
  }
  return cut;
}

}  // namespace ds::cuda::sampling
