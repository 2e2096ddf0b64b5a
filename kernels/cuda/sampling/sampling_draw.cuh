// The draw of a sampled row, by inverse CDF with ONE uniform per row over the
// kept tokens' masses exp((x - max) / T) in 2^-32 fixed point (integer sums:
// the chosen token is a pure function of (seed, counter, logits)).
//   draw_inverse_cdf:  any filter; kept = rank_key >= cut and mass >= min_p.
//     Pass 1 sums the masses per tile (32*m consecutive token groups, <= 2048
//     tiles), warp 0 finds the tile holding the uniform's target, warp 0 then
//     re-walks only that tile.
//   sample_small_top_k: top_k <= kSmallTopK. The top-k tokens are gathered into
//     shared memory and sorted; top-p, min-p and the draw run there.
#pragma once

#include "kernels/cuda/sampling/philox.h"
#include "kernels/cuda/sampling/sampling_select.cuh"

namespace ds::cuda::sampling {

constexpr int kSmallTopK = 1024;

// Group index of the row's uniform (token groups are < 2^29).
constexpr uint32_t kUniformGroup = 0xFFFFFFFFu;

// A uniform double in [0, 1) with 53 random bits.
__device__ __forceinline__ double row_uniform(uint64_t seed, uint64_t counter) {
  const Philox4x32 w = sampling_random_words(seed, counter, kUniformGroup);
  const uint64_t bits = (static_cast<uint64_t>(w.v[0]) << 21) ^ static_cast<uint64_t>(w.v[1] >> 11);
  return static_cast<double>(bits & ((uint64_t{1} << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// floor(u * total), clamped into [0, total).
__device__ __forceinline__ unsigned long long cdf_target(double u, unsigned long long total) {
  unsigned long long t = static_cast<unsigned long long>(u * static_cast<double>(total));
  return t >= total ? total - 1 : t;
}

// Value of a rank key (inverse of order_key).
__device__ __forceinline__ float key_value(uint64_t key) {
  const uint32_t u = static_cast<uint32_t>(key >> 32);
  return __uint_as_float((u & 0x80000000u) ? (u & 0x7FFFFFFFu) : ~u);
}

struct DrawParams {
  uint64_t cut;
  float max_logit;
  float inv_t;
  float min_p;
  uint64_t seed;
  uint64_t counter;
};

// Mass of a token if kept, else 0.
__device__ __forceinline__ unsigned long long kept_mass(float x, uint32_t id, const DrawParams& d) {
  if (rank_key(x, id) < d.cut) return 0ull;
  const float e = expf((x - d.max_logit) * d.inv_t);
  if (d.min_p > 0.0f && !(e >= d.min_p)) return 0ull;
  return e > 0.0f ? __float2ull_rn(e * 4294967296.0f) : 0ull;
}

__device__ __forceinline__ unsigned long long warp_inclusive_scan_u64(unsigned long long v) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const unsigned long long o = __shfl_up_sync(kFullMask, v, off);
    if (lane >= off) v += o;
  }
  return v;
}

// Tiles of the token groups [g0, g1): consecutive runs of 32 * m groups, at
// most kMaxBins of them (sm.mass holds one sum per tile).
struct DrawTiles {
  int64_t g0, g1, m, tile_groups;
  int ntiles;
  __device__ __forceinline__ DrawTiles(int64_t begin, int64_t end) : g0(begin), g1(end) {
    const int64_t warp_tiles = (g1 - g0 + 31) / 32;
    // Warp iterations per tile; at least 1, so an empty range (a cluster CTA's
    // slice of a tiny row) has no tiles instead of a division by zero.
    m = max(int64_t{1}, (warp_tiles + kMaxBins - 1) / kMaxBins);
    tile_groups = 32 * m;
    ntiles = static_cast<int>((g1 - g0 + tile_groups - 1) / tile_groups);
  }
};

// Pass 1 of the draw over the groups of `t`: the kept mass of every tile into
// sm.mass; returns the total (every thread gets it).
__device__ inline unsigned long long draw_tile_masses(const RowView& rv, const DrawParams& d, const DrawTiles& t,
                                               SelectSmem& sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int i = threadIdx.x; i < t.ntiles; i += kThreads) sm.mass[i] = 0;
  __syncthreads();
  // A warp covers 32 consecutive groups per iteration, all in one tile.
  for (int64_t base = t.g0 + static_cast<int64_t>(warp) * 32; base < t.g1; base += kThreads) {
    const int64_t g = base + lane;
    unsigned long long s = 0;
    if (g < t.g1) {
      float v[4];
      const int n = rv.load(g, v);
      for (int j = 0; j < n; ++j) s += kept_mass(v[j], static_cast<uint32_t>(g * 4 + j), d);
    }
    s = warp_sum_u64(s);
    if (lane == 0 && s) atomicAdd(&sm.mass[(base - t.g0) / t.tile_groups], s);
  }
  __syncthreads();
  if (warp == 0) {
    const int per = (t.ntiles + 31) / 32;
    const int t0 = lane * per, t1 = min(t.ntiles, t0 + per);
    unsigned long long lane_sum = 0;
    for (int i = t0; i < t1; ++i) lane_sum += sm.mass[i];
    const unsigned long long total = warp_sum_u64(lane_sum);
    if (lane == 0) sm.bucket_mass = total;
  }
  __syncthreads();
  const unsigned long long total = sm.bucket_mass;
  __syncthreads();
  return total;
}

// Pass 2: the token of the groups of `t` where the running kept mass (in id
// order, from the tiles' sums left by draw_tile_masses) passes `target` (<
// their total); -1 if none does.
__device__ inline int draw_pick(const RowView& rv, const DrawParams& d, const DrawTiles& t, unsigned long long target,
                         SelectSmem& sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (warp == 0) {
    const int per = (t.ntiles + 31) / 32;
    const int t0 = lane * per, t1 = min(t.ntiles, t0 + per);
    unsigned long long lane_sum = 0;
    for (int i = t0; i < t1; ++i) lane_sum += sm.mass[i];
    const unsigned long long incl = warp_inclusive_scan_u64(lane_sum);
    if (lane == 0) sm.found = 0;
    __syncwarp();
    unsigned long long run = incl - lane_sum;
    if (run <= target && target < incl) {
      for (int i = t0; i < t1; ++i) {
        if (target < run + sm.mass[i]) {
          sm.bucket = static_cast<unsigned>(i);
          sm.above_mass = target - run;  // target inside the tile
          sm.found = 1;
          break;
        }
        run += sm.mass[i];
      }
    }
  }
  __syncthreads();
  if (!sm.found) return -1;
  if (warp == 0) {
    const int64_t tile = sm.bucket;
    const unsigned long long r = sm.above_mass;
    unsigned long long run = 0;
    int chosen = -1;
    for (int64_t i = 0; i < t.m && chosen < 0; ++i) {
      const int64_t g = t.g0 + tile * t.tile_groups + 32 * i + lane;
      unsigned long long ms[4] = {0, 0, 0, 0};
      if (g < t.g1) {
        float v[4];
        const int n = rv.load(g, v);
        for (int j = 0; j < n; ++j) ms[j] = kept_mass(v[j], static_cast<uint32_t>(g * 4 + j), d);
      }
      const unsigned long long s = ms[0] + ms[1] + ms[2] + ms[3];
      const unsigned long long incl = warp_inclusive_scan_u64(s);
      const unsigned long long total = __shfl_sync(kFullMask, incl, 31);
      if (r < run + total) {
        unsigned long long acc = run + incl - s;
        int pick = -1;
        if (acc <= r && r < run + incl) {
          for (int j = 0; j < 4; ++j) {
            if (r < acc + ms[j]) {
              pick = static_cast<int>(g * 4 + j);
              break;
            }
            acc += ms[j];
          }
        }
        const unsigned ballot = __ballot_sync(kFullMask, pick >= 0);
        chosen = ballot ? __shfl_sync(kFullMask, pick, __ffs(static_cast<int>(ballot)) - 1) : INT_MAX;
      }
      run += total;
    }
    if (lane == 0) sm.bucket = chosen >= 0 && chosen != INT_MAX ? static_cast<unsigned>(chosen) : 0xFFFFFFFFu;
  }
  __syncthreads();
  const unsigned chosen = sm.bucket;
  __syncthreads();
  return chosen == 0xFFFFFFFFu ? -1 : static_cast<int>(chosen);
}

// Returns the drawn token, or -1 when no kept token has mass (caller falls back).
// Pass 1 sums the masses per tile, warp 0 finds the tile holding the uniform's
// target, warp 0 then re-walks only that tile.
__device__ inline int draw_inverse_cdf(const RowView& rv, const DrawParams& d, SelectSmem& sm) {
  const DrawTiles t(0, rv.groups);
  const unsigned long long total = draw_tile_masses(rv, d, t, sm);
  if (total == 0) return -1;
  return draw_pick(rv, d, t, cdf_target(row_uniform(d.seed, d.counter), total), sm);
}

struct SmallTopKSmem {
  unsigned int found;
  int n_min_p;
  int n_keep;
  int chosen;
};

// top_k in [2, kSmallTopK], top_k < vocab. Returns the drawn token.
__device__ inline int sample_small_top_k(const RowView& rv, int k, float top_p, float inv_t, float min_p, uint64_t seed,
                                  uint64_t counter, SelectSmem& sm, SmallTopKSmem& st) {
  SelectSpec spec;
  spec.count = static_cast<unsigned long long>(k);
  const uint64_t cut = select_cut(rv, spec, sm);
  unsigned long long* unsorted = sm.mass;               // [k] keys as found
  unsigned long long* sorted = sm.mass + kSmallTopK;    // [k] keys, best first
  unsigned long long* cum = sm.mass;                    // reused: inclusive mass prefix sums
  if (threadIdx.x == 0) {
    st.found = 0;
    st.n_min_p = k;
  }
  __syncthreads();
  for (int64_t g = threadIdx.x; g < rv.groups; g += kThreads) {
    float v[4];
    const int n = rv.load(g, v);
    for (int j = 0; j < n; ++j) {
      const uint64_t key = rank_key(v[j], static_cast<uint32_t>(g * 4 + j));
      if (key < cut) continue;
      const unsigned slot = atomicAdd(&st.found, 1u);
      if (slot < static_cast<unsigned>(kSmallTopK)) unsorted[slot] = key;
    }
  }
  __syncthreads();
  const int kk = min(static_cast<int>(st.found), k);  // == k: rank keys are unique
  for (int i = threadIdx.x; i < kk; i += kThreads) {  // rank sort (keys are distinct)
    const unsigned long long key = unsorted[i];
    int rank = 0;
    for (int j = 0; j < kk; ++j) rank += unsorted[j] > key;
    sorted[rank] = key;
  }
  __syncthreads();
  const float max_logit = key_value(sorted[0]);
  for (int i = threadIdx.x; i < kk; i += kThreads) {
    const float e = expf((key_value(sorted[i]) - max_logit) * inv_t);
    cum[i] = e > 0.0f ? __float2ull_rn(e * 4294967296.0f) : 0ull;
    if (min_p > 0.0f && !(e >= min_p)) atomicMin(&st.n_min_p, i);
  }
  __syncthreads();
  if (threadIdx.x < 32) {  // in-place inclusive scan, 32 consecutive entries per lane
    const int lane = threadIdx.x;
    const int per = (kk + 31) / 32, i0 = lane * per, i1 = min(kk, i0 + per);
    unsigned long long s = 0;
    for (int i = i0; i < i1; ++i) s += cum[i];
    unsigned long long run = warp_inclusive_scan_u64(s) - s;
    for (int i = i0; i < i1; ++i) {
      run += cum[i];
      cum[i] = run;
    }
    __syncwarp();
    if (lane == 0) {
      // top-p over the top-k set: the shortest prefix reaching top_p of its mass.
      int n = kk;
      if (top_p < 1.0f) {
        const double target = static_cast<double>(top_p) * static_cast<double>(cum[kk - 1]);
        int lo = 0, hi = kk - 1;  // first index with cum >= target (cum is non-decreasing)
        if (static_cast<double>(cum[hi]) >= target) {
          while (lo < hi) {
            const int mid = (lo + hi) / 2;
            if (static_cast<double>(cum[mid]) >= target) hi = mid; else lo = mid + 1;
          }
          n = lo + 1;
        }
      }
      n = min(n, max(st.n_min_p, 1));
      st.n_keep = n;
      const unsigned long long total = cum[n - 1];
      int chosen = 0;
      if (total > 0) {
        const unsigned long long target = cdf_target(row_uniform(seed, counter), total);
        int lo = 0, hi = n - 1;  // first index with cum > target
        while (lo < hi) {
          const int mid = (lo + hi) / 2;
          if (cum[mid] > target) hi = mid; else lo = mid + 1;
        }
        chosen = lo;
      }
      st.chosen = static_cast<int>(rank_key_id(sorted[chosen]));
    }
  }
  __syncthreads();
  return st.chosen;
}

}  // namespace ds::cuda::sampling
