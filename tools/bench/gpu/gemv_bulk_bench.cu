// ds_gemv_bulk_bench: the bulk-streaming batch-1 GEMV (gemv_bulk.cu) and
// variants of its layout against the production warp / tensor-core GEMVs.
//
// The production bulk kernel has one block per SM that streams a contiguous row
// range through a ring of shared-memory slots filled by 1-D bulk copies; each
// warp issues and consumes its own slots and claims the block's next stage
// (docs/PERF.md, session 14). The variants here change the warps per block, the
// slots per warp, the slot size and whether stages are claimed block-wide or
// taken every W-th, and one or two blocks per SM. (Session 14's first form, one
// producer thread feeding consumer warps that all work on the same stage,
// streamed at 2.1-2.4 TB/s and was dropped.) For each decode shape it times 8
// chained launches (distinct weights, PDL, a spin kernel first) of the production
// path (GemmPath::kGemv), kAuto's choice, the production bulk kernel in kAuto's
// three layouts, and every variant, and checks each against the production output.
#include <cuda_bf16.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/bulk_copy.cuh"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemm_choice.h"
#include "kernels/cuda/gemm/gemv.h"
#include "runtime/common/status.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/pdl.cuh"
#include "tools/bench/gpu/gemv_chain.h"

namespace ds::cuda::bench {
namespace {

using detail::bulk_load_evict_first;
using detail::fence_proxy_async_shared;
using detail::mbar_arrive_expect_tx;
using detail::mbar_init;
using detail::mbar_init_fence;
using detail::mbar_wait;

constexpr size_t kBarBytes = 512;  // up to 63 8-byte barriers, then the ring's claim counter

// Each of the CW warps owns D ring slots and the block's stages i = warp,
// warp + CW, ... (or, DYN, the next unclaimed one); its lane 0 issues the
// bulk copy of its next stage into the slot it has just read (after a
// generic -> async proxy fence), so stages of different warps are in flight and
// consumed concurrently. A stage is one segment of a row (long k: a row is
// spr = ceil(nv / target) segments of up to seg vectors) or j whole rows (k
// short). part[row * spr + piece] holds each warp-reduced piece.
struct RingGeometry {
  int64_t n = 0, k = 0, nv = 0;
  int seg = 0, spr = 0, rows_per_stage = 0;
  int rows_max = 0, blocks = 0;
  static RingGeometry make(int64_t n, int64_t k, int target_vecs, int blocks) {
    RingGeometry g;
    g.n = n, g.k = k, g.nv = k / 8, g.blocks = blocks;
    if (g.nv <= target_vecs) {
      g.spr = 1, g.seg = static_cast<int>(g.nv);
      g.rows_per_stage = std::max<int>(1, static_cast<int>(target_vecs / g.nv));
    } else {
      g.spr = static_cast<int>((g.nv + target_vecs - 1) / target_vecs);
      g.seg = static_cast<int>((g.nv + g.spr - 1) / g.spr);
      g.rows_per_stage = 1;
    }
    g.rows_max = static_cast<int>((n + blocks - 1) / blocks);
    return g;
  }
  __host__ __device__ int64_t slot_vecs() const { return static_cast<int64_t>(seg) * rows_per_stage; }
};

template <int CW, int D>
size_t ring_smem_bytes(const RingGeometry& g) {
  return kBarBytes + g.nv * 16 + static_cast<size_t>(CW) * D * g.slot_vecs() * 16 +
         static_cast<size_t>(g.rows_max) * g.spr * 4;
}

// DYN: a warp takes its next stage from a block-wide counter (atomicAdd in shared
// memory) instead of every CW-th stage, so the block's warps end together.
template <int CW, int D, bool DYN = false>
__global__ void __launch_bounds__(CW * 32) gemv_ring_kernel(const uint4* __restrict__ x,
                                                            const uint4* __restrict__ w,
                                                            __nv_bfloat16* __restrict__ y, RingGeometry g) {
  static_assert(CW * D * 8 + 4 <= kBarBytes, "barrier area");
  extern __shared__ __align__(128) unsigned char smem[];
  uint64_t* full = reinterpret_cast<uint64_t*>(smem);
  uint4* xs = reinterpret_cast<uint4*>(smem + kBarBytes);
  uint4* ring = xs + g.nv;
  const int64_t slot_vecs = g.slot_vecs();
  float* part = reinterpret_cast<float*>(ring + CW * D * slot_vecs);
  pdl_trigger();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t r0 = g.n * blockIdx.x / g.blocks, r1 = g.n * (blockIdx.x + 1) / g.blocks;
  const int64_t rows = r1 - r0;
  const int64_t stages = g.spr > 1 ? rows * g.spr : (rows + g.rows_per_stage - 1) / g.rows_per_stage;
  uint64_t* bars = full + warp * D;
  uint4* slots = ring + static_cast<int64_t>(warp) * D * slot_vecs;
  const uint4* base = w + r0 * g.nv;
  // Stage i: its first vector (relative to base) and its length in vectors.
  auto stage_span = [&](int64_t i, int64_t& off, int64_t& len) {
    if (g.spr > 1) {
      const int64_t row = i / g.spr, piece = i - row * g.spr;
      off = row * g.nv + piece * g.seg;
      len = min(static_cast<int64_t>(g.seg), g.nv - piece * g.seg);
    } else {
      off = i * g.rows_per_stage * g.nv;
      len = min(static_cast<int64_t>(g.rows_per_stage), rows - i * g.rows_per_stage) * g.nv;
    }
  };
  if (lane == 0) {
    for (int d = 0; d < D; ++d) mbar_init(&bars[d], 1);
    mbar_init_fence();
    for (int d = 0; d < D; ++d) {
      const int64_t i = warp + static_cast<int64_t>(d) * CW;
      if (i >= stages) break;
      int64_t off, len;
      stage_span(i, off, len);
      mbar_arrive_expect_tx(&bars[d], static_cast<uint32_t>(len * 16));
      bulk_load_evict_first(slots + d * slot_vecs, base + off, static_cast<uint32_t>(len * 16), &bars[d]);
    }
  }
  __syncwarp();
  pdl_wait();
  for (int64_t v = threadIdx.x; v < g.nv; v += CW * 32) xs[v] = __ldg(x + v);
  if (threadIdx.x == 0) *(reinterpret_cast<unsigned*>(smem + kBarBytes) - 1) = CW * D;
  __syncthreads();
  unsigned* claim = reinterpret_cast<unsigned*>(smem + kBarBytes) - 1;
  int64_t cur[D];
#pragma unroll
  for (int d = 0; d < D; ++d) cur[d] = warp + static_cast<int64_t>(d) * CW;
  uint32_t phase = 0;
  bool any = true;
  while (any) {
    any = false;
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const int64_t i = cur[d];
      if (i >= stages) continue;
      any = true;
      mbar_wait(&bars[d], (phase >> d) & 1u);
      phase ^= 1u << d;
      const uint4* st = slots + d * slot_vecs;
      int64_t off, len;
      stage_span(i, off, len);
      // Pieces of this stage: one row segment, or rows_per_stage whole rows.
      const int64_t pieces = g.spr > 1 ? 1 : len / g.nv;
      const int64_t piece_len = g.spr > 1 ? len : g.nv;
      for (int64_t p = 0; p < pieces; ++p) {
        const uint4* ws = st + p * piece_len;
        const int64_t col0 = g.spr > 1 ? (i % g.spr) * g.seg : 0;
        const uint4* xc = xs + col0;
        float a0 = 0.0f, a1 = 0.0f;
#pragma unroll 4
        for (int64_t v = lane; v < piece_len; v += 32) {
          const uint4 wv = ws[v], xv = xc[v];
          const __nv_bfloat162* wh = reinterpret_cast<const __nv_bfloat162*>(&wv);
          const __nv_bfloat162* xh = reinterpret_cast<const __nv_bfloat162*>(&xv);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float2 wf = __bfloat1622float2(wh[e]), xf = __bfloat1622float2(xh[e]);
            a0 = fmaf(wf.x, xf.x, a0);
            a1 = fmaf(wf.y, xf.y, a1);
          }
        }
        float acc = a0 + a1;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) part[g.spr > 1 ? i : (i * g.rows_per_stage + p)] = acc;  // row * spr + piece
      }
      // Refill this slot with the warp's next stage (the slot is read: every lane is past it).
      __syncwarp();
      int64_t next;
      if constexpr (DYN) {
        unsigned c = 0;
        if (lane == 0) c = atomicAdd(claim, 1u);
        next = __shfl_sync(0xffffffffu, c, 0);
      } else {
        next = i + static_cast<int64_t>(D) * CW;
      }
      if (lane == 0 && next < stages) {
        int64_t noff, nlen;
        stage_span(next, noff, nlen);
        fence_proxy_async_shared();
        mbar_arrive_expect_tx(&bars[d], static_cast<uint32_t>(nlen * 16));
        bulk_load_evict_first(slots + d * slot_vecs, base + noff, static_cast<uint32_t>(nlen * 16), &bars[d]);
      }
      cur[d] = next;
    }
  }
  __syncthreads();
  for (int64_t rl = threadIdx.x; rl < rows; rl += CW * 32) {
    float s = 0.0f;
    for (int p = 0; p < g.spr; ++p) s += part[rl * g.spr + p];
    y[r0 + rl] = __float2bfloat16_rn(s);
  }
}

struct Variant {
  const char* name;
  int threads, blocks_per_sm, target_vecs;
  // Geometry, shared memory and launch of one variant (x, w, y, blocks, smem, stream).
  size_t (*smem)(int64_t n, int64_t k, int target, int blocks);
  cudaError_t (*launch)(const uint4*, const uint4*, __nv_bfloat16*, int64_t n, int64_t k, int target, int blocks,
                        size_t smem, cudaStream_t);
  const void* kernel;
};

template <int CW, int D, bool DYN = false>
size_t ring_smem(int64_t n, int64_t k, int target, int blocks) {
  return ring_smem_bytes<CW, D>(RingGeometry::make(n, k, target, blocks));
}
template <int CW, int D, bool DYN = false>
cudaError_t ring_launch(const uint4* x, const uint4* w, __nv_bfloat16* y, int64_t n, int64_t k, int target,
                        int blocks, size_t smem, cudaStream_t s) {
  return launch_kernel(gemv_ring_kernel<CW, D, DYN>, dim3(blocks), dim3(CW * 32), smem, s, x, w, y,
                       RingGeometry::make(n, k, target, blocks));
}

#define DS_RING_VARIANT(NAME, CW, D, BPS, TV, DYN)                                              \
  Variant {                                                                                     \
    NAME, CW * 32, BPS, TV, ring_smem<CW, D, DYN>, ring_launch<CW, D, DYN>,                     \
        reinterpret_cast<const void*>(gemv_ring_kernel<CW, D, DYN>)                             \
  }

// (Session 14's "dyn 16w d1 6K" is the production layout gemv-bulk-w16-6k now.
// Session 15 also made the 12-warp and the two-blocks-per-SM forms production
// layouts: within noise of w8 / w16 in the chains, and in the 7B decode graph
// (qkv, o) 245.4 vs 251.8 tok/s: removed again.)
const Variant kVariants[] = {
    DS_RING_VARIANT("ring 8w d2 8K", 8, 2, 1, 512, false), DS_RING_VARIANT("dyn 12w d1 8K", 12, 1, 1, 512, true),
    DS_RING_VARIANT("dyn 8w d1 8K b2", 8, 1, 2, 512, true), DS_RING_VARIANT("dyn 16w d2 4K", 16, 2, 1, 256, true),
};
// kAuto's bulk layouts (gemm_choice.h).
const detail::Choice kBulkChoices[] = {detail::Choice::kGemvBulkW8, detail::Choice::kGemvBulkW16,
                                       detail::Choice::kGemvBulkW16S6};

struct Shape {
  std::string name;
  int64_t n, k;
};
const Shape kShapes[] = {
    {"7B qkv", 4608, 3584},       {"7B o", 3584, 3584},       {"7B down", 3584, 18944},
    {"down 27/SM", 3564, 18944},  {"down 28/SM", 3696, 18944},
    {"7B gate_up", 37888, 3584},  {"32B qkv", 7168, 5120},    {"32B o", 5120, 5120},
    {"32B down", 5120, 27648},    {"32B@tp2 qkv", 3584, 5120}, {"32B@tp2 o", 5120, 2560},
    {"32B@tp2 down", 5120, 13824}, {"lm_head 7B", 152064, 3584},
};

Status run(int reps, const std::vector<Shape>& shapes) {
  int device = 0, sms = 0, smem_optin = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  // Buffers for the largest shape: 152064 x 3584 elements, n up to 152064.
  DS_ASSIGN_OR_RETURN(ChainBench cb, ChainBench::create(152064ull * 3584, 152064));
  const Stream& stream = cb.stream;
  DeviceBuffer &x = cb.x, &y = cb.y, &y_ref = cb.y_ref;
  GemmRunner* runner = cb.runner.get();
  auto weight = [&](const Shape& s, int i) { return cb.weight(s.n, s.k, i); };
  auto chain_us = [&](const std::function<Status(int)>& launch) { return cb.chain_us(reps, launch); };
  std::printf("us per launch, 8 chained launches (PDL), GB/s of weights in ( ); production = GemmPath::kGemv\n");
  std::printf("%-14s %16s %16s", "shape", "production", "kAuto");
  for (detail::Choice c : kBulkChoices) std::printf(" %19s", detail::choice_name(c));
  for (const Variant& v : kVariants) std::printf(" %16s", v.name);
  std::printf("   worst rel diff\n");
  for (const Shape& s : shapes) {
    if (s.n * s.k > 152064ll * 3584 || s.n > 152064 || s.k > 27648 || s.k % 8 != 0)
      return Status::Error(StrCat() << "shape " << s.name
                                    << ": at most 152064 x 3584 elements, n <= 152064, k <= 27648, k % 8 == 0");
    const double mb = static_cast<double>(s.n * s.k * 2) / 1e3;  // kB -> GB/s with us
    auto production = [&](int i, void* out) {
      return runner->run(cb.gemv_args(s.n, s.k, i, out), stream.get(), GemmPath::kGemv);
    };
    DS_RETURN_IF_ERROR(production(0, y_ref.data()));
    DS_ASSIGN_OR_RETURN(const double prod_us, chain_us([&](int i) { return production(i, y.data()); }));
    auto chosen = [&](int i) { return runner->run(cb.gemv_args(s.n, s.k, i, y.data()), stream.get(), GemmPath::kAuto); };
    DS_ASSIGN_OR_RETURN(const double auto_us, chain_us(chosen));
    std::printf("%-14s %8.2f (%5.0f) %8.2f (%5.0f)", s.name.c_str(), prod_us, mb / prod_us, auto_us, mb / auto_us);
    std::vector<__nv_bfloat16> ref(s.n), got(s.n);
    DS_RETURN_IF_ERROR(stream.synchronize());
    DS_RETURN_IF_ERROR(y_ref.copy_to_host(ref.data(), s.n * 2));
    double worst = 0.0;
    auto check = [&]() -> Status {
      DS_RETURN_IF_ERROR(stream.synchronize());
      DS_RETURN_IF_ERROR(y.copy_to_host(got.data(), s.n * 2));
      for (int64_t i = 0; i < s.n; ++i) {
        const double r = __bfloat162float(ref[i]), gv = __bfloat162float(got[i]);
        worst = std::max(worst, std::fabs(r - gv) / std::max(1.0, std::fabs(r)));
      }
      return Status::Ok();
    };
    for (detail::Choice c : kBulkChoices) {  // the production bulk kernel
      auto bulk = [&](int i) {
        return detail::launch_gemv_bulk(cb.gemv_args(s.n, s.k, i, y.data()), detail::bulk_config(c), sms, stream.get());
      };
      DS_RETURN_IF_ERROR(bulk(0));
      DS_RETURN_IF_ERROR(check());
      DS_ASSIGN_OR_RETURN(const double us, chain_us(bulk));
      std::printf("    %8.2f (%5.0f)", us, mb / us);
    }
    for (const Variant& v : kVariants) {
      const int blocks = sms * v.blocks_per_sm;
      const size_t smem = v.smem(s.n, s.k, v.target_vecs, blocks);
      if (smem > static_cast<size_t>(smem_optin) / v.blocks_per_sm) {
        std::printf(" %16s", "(smem)");
        continue;
      }
      DS_CUDA_RETURN_IF_ERROR(
          cudaFuncSetAttribute(v.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
      auto launch = [&](int i) -> Status {
        DS_CUDA_RETURN_IF_ERROR(v.launch(static_cast<const uint4*>(x.data()),
                                         reinterpret_cast<const uint4*>(weight(s, i)),
                                         static_cast<__nv_bfloat16*>(y.data()), s.n, s.k, v.target_vecs, blocks, smem,
                                         stream.get()));
        return Status::Ok();
      };
      DS_RETURN_IF_ERROR(launch(0));
      DS_RETURN_IF_ERROR(check());
      DS_ASSIGN_OR_RETURN(const double us, chain_us(launch));
      std::printf(" %8.2f (%5.0f)", us, mb / us);
    }
    std::printf("   %.2e\n", worst);
    std::fflush(stdout);
  }
  return Status::Ok();
}

}  // namespace
}  // namespace ds::cuda::bench

int main(int argc, char** argv) {
  CLI::App app{"ds_gemv_bulk_bench: batch-1 GEMV streaming its weights with bulk copies vs the production GEMV"};
  int reps = 20;
  app.add_option("--reps", reps, "timed runs per measurement (median)")->check(CLI::Range(3, 1000));
  std::vector<std::string> only;
  app.add_option("--shapes", only, "NxK weight shapes to time instead of the decode shapes (e.g. 7168x9472)")
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  std::vector<ds::cuda::bench::Shape> shapes(std::begin(ds::cuda::bench::kShapes), std::end(ds::cuda::bench::kShapes));
  if (!only.empty()) {
    shapes.clear();
    for (const std::string& t : only) {
      long long n = 0, k = 0;
      char extra = 0;
      if (std::sscanf(t.c_str(), "%lldx%lld%c", &n, &k, &extra) != 2 || n <= 0 || k <= 0) {
        std::fprintf(stderr, "ds_gemv_bulk_bench: --shapes: '%s' is not NxK\n", t.c_str());
        return 1;
      }
      shapes.push_back({t, n, k});
    }
  }
  const ds::Status st = ds::cuda::bench::run(reps, shapes);
  if (!st.ok()) {
    std::fprintf(stderr, "ds_gemv_bulk_bench: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
