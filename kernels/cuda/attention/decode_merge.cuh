// How the tensor-core decode kernel (decode_mma_attention.cu) merges the
// partials of a split KV range: the last CTA of a head group to arrive merges
// them from global memory (merge_splits_if_last), or the splits run as one
// thread-block cluster and rank 0 merges through distributed shared memory
// (cluster_merge_splits). Both merge in split order with the same batch step.
#pragma once

#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention/decode_common.cuh"

namespace ds::cuda::attn {

// Split arrival and merge (tensor-core kernel, p.counters set): every CTA of
// (item, head group) calls this after writing its partial, the neutral one
// included; the last to arrive resets the counter and merges all splits of its
// heads into out, in split order (the result does not depend on arrival order).
// One acq_rel atomic per CTA (after the barrier, thread 0's release covers the
// block's partial stores; its acquire, through the next barrier, makes the
// other CTAs' partials visible), and the merge issues the loads of up to
// kMergeBatch splits before using any, so it costs about one round trip.
constexpr int kMergeBatch = 8;

__device__ __forceinline__ unsigned atomic_add_acq_rel_gpu(unsigned* addr, unsigned v) {
  unsigned old;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(addr), "r"(v) : "memory");
  return old;
}

// Folds a batch of split partials (m, l) / acc into the running (m, l, a), all
// relative to m; partials with l = 0 (no visible key) weigh nothing, whatever
// their acc holds (a select, so garbage there cannot turn into NaN).
__device__ __forceinline__ void merge_split_batch(const float2 (&ml)[kMergeBatch], const float4 (&v)[kMergeBatch],
                                                  float& m, float& l, float4& a) {
  float mb = m;
#pragma unroll
  for (int j = 0; j < kMergeBatch; ++j)
    if (ml[j].y > 0.0f) mb = fmaxf(mb, ml[j].x);
  if (mb == -INFINITY) return;  // nothing visible so far
  const float rescale = fast_exp2(m - mb);  // m = -inf: 0 (l and a are 0 then)
  l *= rescale;
  a.x *= rescale, a.y *= rescale, a.z *= rescale, a.w *= rescale;
#pragma unroll
  for (int j = 0; j < kMergeBatch; ++j) {
    const bool on = ml[j].y > 0.0f;
    const float f = on ? fast_exp2(ml[j].x - mb) : 0.0f;
    l += on ? f * ml[j].y : 0.0f;
    a.x += on ? f * v[j].x : 0.0f;
    a.y += on ? f * v[j].y : 0.0f;
    a.z += on ? f * v[j].z : 0.0f;
    a.w += on ? f * v[j].w : 0.0f;
  }
  m = mb;
}

// out row `row`, head `head`, dims d..d+3 = a / l (0 when nothing was visible).
__device__ __forceinline__ void store_merged(const DecodeParams& p, int row, int head, int d, float l, float4 a) {
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  uint2 o;
  o.x = pack_bf16x2(a.x * inv, a.y * inv);
  o.y = pack_bf16x2(a.z * inv, a.w * inv);
  *reinterpret_cast<uint2*>(p.out + row * p.out_ld + static_cast<int64_t>(head) * p.head_dim + d) = o;
}

// Merges the splits of the group's rows r < w.ng into out (dims in quads over the
// block's threads), in split order, kMergeBatch splits per step:
// load(r, d, s, ml, v) fetches split s's (m, l) and acc[d .. d + 3] of row r.
template <class Load>
__device__ __forceinline__ void merge_split_rows(const DecodeParams& p, const DecodeWork& w, Load load) {
  const int quads = p.head_dim / 4;
  for (int i = threadIdx.x; i < w.ng * quads; i += blockDim.x) {
    const int r = i / quads, d = (i % quads) * 4;
    // Online merge over batches of splits: m, l, a are relative to m.
    float m = -INFINITY, l = 0.0f;
    float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int s0 = 0; s0 < p.splits; s0 += kMergeBatch) {
      float2 ml[kMergeBatch];
      float4 v[kMergeBatch];
#pragma unroll
      for (int j = 0; j < kMergeBatch; ++j) {
        const int s = s0 + j;
        if (s < p.splits) {
          load(r, d, s, ml[j], v[j]);
        } else {
          ml[j] = make_float2(-INFINITY, 0.0f);
          v[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
      }
      merge_split_batch(ml, v, m, l, a);
    }
    store_merged(p, w.row, w.head0 + r, d, l, a);
  }
}

__device__ __forceinline__ void merge_splits_if_last(const DecodeParams& p, const DecodeWork& w) {
  __shared__ bool last_s;
  __syncthreads();  // every partial store of the block precedes thread 0's release
  if (threadIdx.x == 0) {
    unsigned* c = p.counters + static_cast<int64_t>(w.item) * gridDim.y + blockIdx.y;
    const bool last = atomic_add_acq_rel_gpu(c, 1u) + 1u == static_cast<unsigned>(p.splits);
    if (last) *c = 0u;  // read again only by the next launch, after this grid completes
    last_s = last;
  }
  __syncthreads();
  if (!last_s) return;
  merge_split_rows(p, w, [&](int r, int d, int s, float2& ml, float4& v) {
    const int64_t at = (static_cast<int64_t>(w.item) * p.num_heads + w.head0 + r) * p.splits + s;
    // Neutral partials (l = 0) leave acc unwritten: read, then weighted by a select.
    ml = __ldcg(reinterpret_cast<const float2*>(p.part_ml) + at);
    v = __ldcg(reinterpret_cast<const float4*>(p.part_acc + at * p.head_dim + d));
  });
}

// Cluster merge (sm_90 thread-block clusters of the splits of one head group):
// every CTA has put its partial in its own shared memory (acc_s [kRows][kD],
// ml_s [kRows] = (m, l); an empty split only ml = (-inf, 0)); after a cluster
// barrier the CTA of rank 0 reads them all through distributed shared memory,
// merges them in split order and writes the output; a second barrier keeps the
// other CTAs (and their shared memory) alive until it is done.
template <int kD>
__device__ __forceinline__ void cluster_merge_splits(const DecodeParams& p, const DecodeWork& w, const float* acc_s,
                                     const float2* ml_s) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  if (cluster.block_rank() == 0) {
    merge_split_rows(p, w, [&](int r, int d, int s, float2& ml, float4& v) {
      ml = cluster.map_shared_rank(ml_s, s)[r];
      v = *reinterpret_cast<const float4*>(cluster.map_shared_rank(acc_s, s) + r * kD + d);
    });
  }
  cluster.sync();
#endif
}

}  // namespace ds::cuda::attn
