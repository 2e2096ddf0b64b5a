// FlashAttention-2 class paged prefill: one CTA (4 warps) per (query head,
// query tile of one sequence). 64-row tiles keep the Q fragments in registers;
// 128-row tiles (long prompts) give each warp two m-tiles that share every K/V
// fragment read from smem. 64-key K/V tiles are gathered from the pages with 16-byte
// cp.async into a two-stage smem pipeline; S = Q K^T and O += P V run on
// tensor cores (mma.sync m16n8k16 bf16, ldmatrix), with an f32 online softmax
// and the causal mask applied only on tiles that cross the diagonal.
//
// Ragged batches without host work per token: with BM rows per tile, sequence
// s owns the CTA rows [q_start[s] / BM + s, q_start[s+1] / BM + s + 1) of
// grid.y (at least its ceil(q_len / BM) tiles, at most one spare), found by a
// device-side binary search; grid.y = num_tokens / BM + num_seqs. CTAs are
// issued heaviest-first. In mixed batches the q_len == 1 sequences can be left
// to the split-KV decode kernel (skip_single).
#include <cuda_bf16.h>

#include <atomic>
#include <cmath>

#include "kernels/cuda/attention/attention_common.cuh"
#include "kernels/cuda/attention/attention_internal.h"
#include "runtime/cuda/cuda_check.h"

namespace ds::cuda::attn {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kBN = 64;  // keys per tile
constexpr int kThreads = 128;

// kMT: 16-row m-tiles per warp (1: Q fragments stay in registers; 2: 128-row
// CTAs that read each K/V fragment once for two m-tiles, Q re-read from smem).
template <int kD, int kMT>
struct PrefillCfg {
  static constexpr int kBM = 64 * kMT;    // query rows per CTA
  static constexpr int kStride = kD + 8;  // smem row (bf16): +16 B keeps ldmatrix conflict-free
  static constexpr int kChunks = kD / 8;
  static constexpr bool kQInRegs = kMT == 1;
  static constexpr size_t kSmemBytes = static_cast<size_t>(kBM + 4 * kBN) * kStride * sizeof(bf16);
};

struct PrefillParams : BatchParams {
  bool skip_single;  // sequences with q_len == 1 are left to the decode kernel
};

template <int kD, int kMT>
__global__ void __launch_bounds__(kThreads, 2) prefill_kernel(const PrefillParams p) {
  using C = PrefillCfg<kD, kMT>;
  constexpr int kBM = C::kBM;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* q_s = reinterpret_cast<bf16*>(smem_raw);  // [kBM][kStride]
  bf16* kv_s = q_s + kBM * C::kStride;            // [2 stages][K, V][kBN][kStride]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int h = blockIdx.x;
  const int kvh = h / p.group;
  const int b = gridDim.y - 1 - blockIdx.y;  // late (long-context) tiles first

  int lo = 0, hi = p.num_seqs - 1;  // last sequence whose first CTA row <= b
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (p.q_start[mid] / kBM + mid <= b) lo = mid; else hi = mid - 1;
  }
  const int seq = lo;
  const int q0 = p.q_start[seq];
  const int q_len = p.q_start[seq + 1] - q0;
  if (p.skip_single && q_len == 1) return;
  const int i0 = (b - (q0 / kBM + seq)) * kBM;  // first query index of this tile within the sequence
  if (i0 >= q_len) return;
  const int nrows = min(kBM, min(q_len - i0, p.num_tokens - (q0 + i0)));
  if (nrows <= 0) return;
  const int kvl = p.kv_len[seq];
  const int pos0 = kvl - q_len + i0;                  // history position of row 0
  const int n_keys = max(0, min(kvl, pos0 + nrows));  // keys any row of the tile sees
  const int ntiles = (n_keys + kBN - 1) / kBN;
  const int32_t* pages = p.page_table + seq * p.pt_stride;

  for (int i = tid; i < kBM * C::kChunks; i += kThreads) {
    const int r = i / C::kChunks, c = i % C::kChunks;
    const bool valid = r < nrows && c * 8 < p.head_dim;
    const bf16* src = valid ? p.q + static_cast<int64_t>(q0 + i0 + r) * p.q_ld + static_cast<int64_t>(h) * p.head_dim + c * 8
                            : p.q;
    cp_async_16(q_s + r * C::kStride + c * 8, src, valid);
  }
  auto load_kv = [&](int tile, int stage) {
    bf16* ks = kv_s + stage * 2 * kBN * C::kStride;
    bf16* vs = ks + kBN * C::kStride;
#pragma unroll
    for (int i = tid; i < kBN * C::kChunks; i += kThreads) {
      const int j = i / C::kChunks, c = i % C::kChunks;
      const int key = tile * kBN + j;
      const bool valid = key < n_keys && c * 8 < p.head_dim;
      const int64_t off = valid ? kv_offset(pages, key, p.page_size, p.num_kv_heads, kvh, p.head_dim) + c * 8 : 0;
      cp_async_16(ks + j * C::kStride + c * 8, p.k + off, valid);
      cp_async_16(vs + j * C::kStride + c * 8, p.v + off, valid);
    }
  };
  if (ntiles > 0) load_kv(0, 0);
  cp_async_commit();

  // Thread rows: m-tile mi covers CTA rows warp * 16 * kMT + mi * 16 + [0, 16);
  // this thread holds rows g (index 0) and g + 8 (index 1) of each.
  const int g = lane >> 2, t4 = lane & 3;
  const int wrow = warp * 16 * kMT;
  float o[kMT][kD / 8][4];
  float m_run[kMT][2], l_run[kMT][2];
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
#pragma unroll
    for (int j = 0; j < kD / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mi][j][e] = 0.0f;
    m_run[mi][0] = m_run[mi][1] = -INFINITY;
    l_run[mi][0] = l_run[mi][1] = 0.0f;
  }
  uint32_t qf[C::kQInRegs ? kD / 16 : 1][4];

  for (int n = 0; n < ntiles; ++n) {
    if (n + 1 < ntiles) {
      load_kv(n + 1, (n + 1) & 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if constexpr (C::kQInRegs) {
      if (n == 0) {
#pragma unroll
        for (int kk = 0; kk < kD / 16; ++kk)
          ldmatrix_x4(qf[kk], q_s + (wrow + (lane & 15)) * C::kStride + kk * 16 + (lane >> 4) * 8);
      }
    }
    const bf16* ks = kv_s + (n & 1) * 2 * kBN * C::kStride;
    const bf16* vs = ks + kBN * C::kStride;

    float s[kMT][kBN / 8][4];
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
      for (int j = 0; j < kBN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mi][j][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t qa[kMT][4];
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi) {
        if constexpr (C::kQInRegs) {
#pragma unroll
          for (int e = 0; e < 4; ++e) qa[mi][e] = qf[kk][e];
        } else {
          ldmatrix_x4(qa[mi], q_s + (wrow + mi * 16 + (lane & 15)) * C::kStride + kk * 16 + (lane >> 4) * 8);
        }
      }
#pragma unroll
      for (int nb = 0; nb < kBN / 16; ++nb) {
        uint32_t bk[4];
        ldmatrix_x4(bk, ks + (nb * 16 + (lane & 7) + (lane >> 4) * 8) * C::kStride + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int mi = 0; mi < kMT; ++mi) {
          mma_16816(s[mi][2 * nb], qa[mi], bk[0], bk[1]);
          mma_16816(s[mi][2 * nb + 1], qa[mi], bk[2], bk[3]);
        }
      }
    }

    const int key0 = n * kBN;
    const bool diagonal = key0 + kBN - 1 > pos0;
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi) {
      const int qpos_lo = pos0 + wrow + mi * 16 + g, qpos_hi = qpos_lo + 8;
      float mx_lo = m_run[mi][0], mx_hi = m_run[mi][1];
#pragma unroll
      for (int j = 0; j < kBN / 8; ++j) {
        if (diagonal) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = key0 + j * 8 + 2 * t4 + (e & 1);
            if (key > (e < 2 ? qpos_lo : qpos_hi)) s[mi][j][e] = -INFINITY;
          }
        }
        mx_lo = fmaxf(mx_lo, fmaxf(s[mi][j][0], s[mi][j][1]));
        mx_hi = fmaxf(mx_hi, fmaxf(s[mi][j][2], s[mi][j][3]));
      }
#pragma unroll
      for (int off = 1; off <= 2; off <<= 1) {
        mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, off));
        mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, off));
      }
      // Scores and m stay unscaled (scale > 0 keeps the order); the scale folds
      // into one FFMA per element. A row with no visible key yet keeps
      // m = -inf; its base is 0 (p = 0, no NaN).
      const float sc = p.scale_log2;
      const float base_lo = mx_lo == -INFINITY ? 0.0f : mx_lo * sc;
      const float base_hi = mx_hi == -INFINITY ? 0.0f : mx_hi * sc;
      const float alpha_lo = fast_exp2(fmaf(m_run[mi][0], sc, -base_lo));
      const float alpha_hi = fast_exp2(fmaf(m_run[mi][1], sc, -base_hi));
      m_run[mi][0] = mx_lo;
      m_run[mi][1] = mx_hi;
      float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
      for (int j = 0; j < kBN / 8; ++j) {
        s[mi][j][0] = fast_exp2(fmaf(s[mi][j][0], sc, -base_lo));
        s[mi][j][1] = fast_exp2(fmaf(s[mi][j][1], sc, -base_lo));
        s[mi][j][2] = fast_exp2(fmaf(s[mi][j][2], sc, -base_hi));
        s[mi][j][3] = fast_exp2(fmaf(s[mi][j][3], sc, -base_hi));
        sum_lo += s[mi][j][0] + s[mi][j][1];
        sum_hi += s[mi][j][2] + s[mi][j][3];
      }
      l_run[mi][0] = l_run[mi][0] * alpha_lo + sum_lo;
      l_run[mi][1] = l_run[mi][1] * alpha_hi + sum_hi;
#pragma unroll
      for (int j = 0; j < kD / 8; ++j) {
        o[mi][j][0] *= alpha_lo;
        o[mi][j][1] *= alpha_lo;
        o[mi][j][2] *= alpha_hi;
        o[mi][j][3] *= alpha_hi;
      }
    }

#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      uint32_t pa[kMT][4];
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi) {
        pa[mi][0] = pack_bf16x2(s[mi][2 * kk][0], s[mi][2 * kk][1]);
        pa[mi][1] = pack_bf16x2(s[mi][2 * kk][2], s[mi][2 * kk][3]);
        pa[mi][2] = pack_bf16x2(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
        pa[mi][3] = pack_bf16x2(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dn = 0; dn < kD / 16; ++dn) {
        uint32_t bv[4];
        ldmatrix_x4_trans(bv, vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * C::kStride + dn * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int mi = 0; mi < kMT; ++mi) {
          mma_16816(o[mi][2 * dn], pa[mi], bv[0], bv[1]);
          mma_16816(o[mi][2 * dn + 1], pa[mi], bv[2], bv[3]);
        }
      }
    }
    __syncthreads();
  }
  cp_async_wait<0>();

#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
    float l_lo = l_run[mi][0], l_hi = l_run[mi][1];
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      l_lo += __shfl_xor_sync(0xffffffffu, l_lo, off);
      l_hi += __shfl_xor_sync(0xffffffffu, l_hi, off);
    }
    const float inv_lo = l_lo > 0.0f ? 1.0f / l_lo : 0.0f;
    const float inv_hi = l_hi > 0.0f ? 1.0f / l_hi : 0.0f;
    const int r_lo = wrow + mi * 16 + g, r_hi = r_lo + 8;
    bf16* out_lo = p.out + static_cast<int64_t>(q0 + i0 + r_lo) * p.out_ld + static_cast<int64_t>(h) * p.head_dim;
    bf16* out_hi = p.out + static_cast<int64_t>(q0 + i0 + r_hi) * p.out_ld + static_cast<int64_t>(h) * p.head_dim;
#pragma unroll
    for (int j = 0; j < kD / 8; ++j) {
      const int d = j * 8 + 2 * t4;
      if (d < p.head_dim) {
        if (r_lo < nrows)
          *reinterpret_cast<uint32_t*>(out_lo + d) = pack_bf16x2(o[mi][j][0] * inv_lo, o[mi][j][1] * inv_lo);
        if (r_hi < nrows)
          *reinterpret_cast<uint32_t*>(out_hi + d) = pack_bf16x2(o[mi][j][2] * inv_hi, o[mi][j][3] * inv_hi);
      }
    }
  }
}

template <int kD, int kMT>
Status configure_dim() {
  static std::atomic<uint64_t> done{0};
  return ensure_smem_limit(prefill_kernel<kD, kMT>, PrefillCfg<kD, kMT>::kSmemBytes, done);
}

template <int kD, int kMT>
Status launch_dim(const PrefillParams& p, int num_heads, cudaStream_t stream) {
  using C = PrefillCfg<kD, kMT>;
  DS_RETURN_IF_ERROR((configure_dim<kD, kMT>()));
  const int64_t tiles = static_cast<int64_t>(p.num_tokens) / C::kBM + p.num_seqs;
  if (tiles > 65535)
    return Status::Error(StrCat() << "paged_attention: " << p.num_tokens << " query rows in " << p.num_seqs
                                  << " sequences exceed the prefill grid (65535 tiles of " << C::kBM << ")");
  prefill_kernel<kD, kMT><<<dim3(num_heads, static_cast<unsigned>(tiles)), kThreads, C::kSmemBytes, stream>>>(p);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

// 128-row CTAs pay off once the average sequence brings that many rows and
// they still fill about two waves of the GPU (2 CTAs per SM).
template <int kD>
Status launch_rows(const PrefillParams& p, int num_heads, int num_sms, cudaStream_t stream) {
  const int64_t ctas_128 = (static_cast<int64_t>(p.num_tokens) / 128 + p.num_seqs) * num_heads;
  if (p.num_tokens >= 128 * p.num_seqs && ctas_128 >= 4 * static_cast<int64_t>(num_sms))
    return launch_dim<kD, 2>(p, num_heads, stream);
  return launch_dim<kD, 1>(p, num_heads, stream);
}

}  // namespace

Status configure_prefill_kernels() {
  DS_RETURN_IF_ERROR((configure_dim<64, 1>()));
  DS_RETURN_IF_ERROR((configure_dim<64, 2>()));
  DS_RETURN_IF_ERROR((configure_dim<128, 1>()));
  return configure_dim<128, 2>();
}

Status launch_prefill(const AttnLaunch& a, bool skip_single, int num_sms, cudaStream_t stream) {
  if (a.num_seqs <= 0 || a.num_tokens <= 0) return Status::Ok();
  PrefillParams p{};
  set_batch_params(p, a);
  p.skip_single = skip_single;
  if (a.head_dim <= 64) return launch_rows<64>(p, a.num_heads, num_sms, stream);
  if (a.head_dim <= kPrefillMaxDim) return launch_rows<128>(p, a.num_heads, num_sms, stream);
  return Status::Error(StrCat() << "paged_attention: the prefill kernel takes head_dim <= " << kPrefillMaxDim << ", got "
                                << a.head_dim);
}

}  // namespace ds::cuda::attn
