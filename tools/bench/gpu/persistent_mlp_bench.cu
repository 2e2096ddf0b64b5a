// ds_persistent_mlp_bench: is one persistent kernel with grid barriers faster than a
// PDL chain of GEMV launches for the batch-1 decode MLP (gate_up + SwiGLU, then down +
// residual), over L layers with distinct weights (> L2)?
//
// chain:      per layer the executor's kernels, gemv-warp-s1 with the SwiGLU epilogue
//             then gemv-warp-s4 with the f32 residual in place, captured in a CUDA graph
//             with programmatic dependent launch (what decode runs today).
// persistent: one cooperative launch for all L layers. Phase A (gate_up + SwiGLU): warp g
//             streams output j = g, g + W, ... (gate row j then up row I + j, x from shared
//             memory) and writes act_l[j]. Phase B (down): block b takes rows b, b + B, ...,
//             its 4 warps a quarter of k each, summed in shared memory, added to the f32
//             residual. Between phases a grid barrier (cooperative groups); before each
//             barrier every warp already issues the first stages of its next phase's weights
//             (cp.async into its shared-memory ring), so the barrier and the ramp overlap
//             weight streaming. act_l is one buffer per layer and read with plain loads: no
//             line of it is in L1 before its phase B (L1 is not coherent within a kernel).
// Prints us per layer for both, GB/s of weights, and the largest difference of the final
// residual between the two (they must agree to bf16 rounding of act).
#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "kernels/cuda/gemm/gather.h"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/gemv_common.cuh"
#include "kernels/cuda/gemm/timing_spin.h"
#include "runtime/common/status.h"
#include "runtime/cuda/cp_async.cuh"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/pdl.h"

namespace ds::cuda::bench {
namespace {

namespace cg = cooperative_groups;

constexpr int kWarps = 4;   // per block
constexpr int kStages = 8;  // cp.async ring stages per warp, 512 bytes each (32 lanes x 16 bytes)

struct MlpParams {
  const uint4* const* w_gu;  // [L] -> bf16 [2I, H]
  const uint4* const* w_d;   // [L] -> bf16 [H, I]
  const uint4* x;            // bf16 [H]
  uint4* const* act;         // [L] -> bf16 [I]
  float* resid;              // f32 [H]
  int layers;
  int nv_h, nv_i;            // H / 8, I / 8 (16-byte vectors)
  int hidden, inter;
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// One warp's stream of `units` units of `vpu` 16-byte vectors each (padded to whole
// stages of 32: a unit never shares a stage with the next one); unit t starts at
// base(t). Stage j of the stream is ring slot j % kStages; (t, s) = (j / spu, j % spu)
// is tracked incrementally (no 64-bit division per stage).
template <class Base>
struct Stream {
  int units;
  int vpu, spu;  // vectors and stages per unit
  Base base;
  __device__ void issue(uint4 (*ring)[32], int lane, int j, int t, int s) const {
    const int v = s * 32 + lane;
    const bool ok = t < units && v < vpu;
    const uint4* src = ok ? base(t) + v : base(0);
    cp_async_16(&ring[j % kStages][lane], src, ok);
    cp_async_commit();
  }
  __device__ void advance(int& t, int& s) const {
    if (++s == spu) {
      s = 0;
      ++t;
    }
  }
  // Issues stages 0 .. kStages - 2 (before a barrier: weights only).
  __device__ void prefetch(uint4 (*ring)[32], int lane) const {
    int t = 0, s = 0;
    for (int j = 0; j < kStages - 1; ++j) {
      issue(ring, lane, j, t, s);
      advance(t, s);
    }
  }
  // The first kStages - 1 stages were issued (prefetch). consume(t, v, w) per vector,
  // end(t) after the last stage of unit t (every lane of the warp).
  template <class Consume, class End>
  __device__ void run(uint4 (*ring)[32], int lane, Consume consume, End end) const {
    if (spu == 0) {
      cp_async_wait<0>();
      return;
    }
    const int n = units * spu;
    int ti = (kStages - 1) / spu, si = (kStages - 1) % spu, t = 0, s = 0;
    for (int j = 0; j < n; ++j) {
      cp_async_wait<kStages - 2>();
      issue(ring, lane, j + kStages - 1, ti, si);
      advance(ti, si);
      const int v = s * 32 + lane;
      if (v < vpu) consume(t, v, ring[j % kStages][lane]);
      if (s == spu - 1) end(t);
      advance(t, s);
    }
    cp_async_wait<0>();
  }
};
template <class Base>
__device__ Stream<Base> make_stream(int units, int vpu, Base base) {
  return Stream<Base>{units, vpu, (vpu + 31) / 32, base};
}

__global__ void __launch_bounds__(kWarps * 32) persistent_mlp_kernel(MlpParams p) {
  extern __shared__ __align__(16) uint4 xs[];  // x, H / 8 vectors
  __shared__ __align__(16) uint4 ring[kWarps][kStages][32];
  __shared__ float red[kWarps];
  cg::grid_group grid = cg::this_grid();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int W = static_cast<int>(gridDim.x) * kWarps;  // warps in the grid
  const int gw = static_cast<int>(blockIdx.x) * kWarps + warp;
  const int B = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
  const int q = (p.nv_i + kWarps - 1) / kWarps;  // phase B: vectors of k per warp
  for (int i = threadIdx.x; i < p.nv_h; i += blockDim.x) xs[i] = p.x[i];
  __syncthreads();

  // Phase B: unit t is row r = b + t B, k quarter `warp`.
  auto phase_b = [&](int l) {
    const uint4* w = p.w_d[l];
    const int H = p.hidden, nvi = p.nv_i, left = nvi - warp * q;
    const int vpu = left < 0 ? 0 : (left < q ? left : q);
    return make_stream(b < H ? (H - b + B - 1) / B : 0, vpu, [=](int t) {
      return w + static_cast<int64_t>(b + t * B) * nvi + warp * q;
    });
  };
  // Phase A: two units per output j = gw + t W: gate row j, then up row I + j.
  auto phase_a = [&](int l) {
    const uint4* w = p.w_gu[l];
    const int I = p.inter, nvh = p.nv_h;
    return make_stream(2 * (gw < I ? (I - gw + W - 1) / W : 0), nvh, [=](int u) {
      const int j = gw + (u >> 1) * W;
      return w + static_cast<int64_t>((u & 1) ? I + j : j) * nvh;
    });
  };

  float acc = 0.0f, gate = 0.0f;
  phase_a(0).prefetch(ring[warp], lane);
  for (int l = 0; l < p.layers; ++l) {
    // Phase A: gate_up + SwiGLU -> act_l (its first stages were issued before the barrier).
    __nv_bfloat16* act = reinterpret_cast<__nv_bfloat16*>(p.act[l]);
    phase_a(l).run(
        ring[warp], lane, [&](int, int v, const uint4& w) { acc = detail::gemv_dot8(w, xs[v], acc); },
        [&](int u) {
          const float s = warp_sum(acc);
          acc = 0.0f;
          if ((u & 1) == 0) {
            gate = s;
            return;
          }
          if (lane == 0) {
            const int j = gw + (u >> 1) * W;
            act[j] = __float2bfloat16_rn(gate / (1.0f + expf(-gate)) * s);
          }
        });
    auto sb = phase_b(l);
    sb.prefetch(ring[warp], lane);  // the down weights stream while the grid meets
    grid.sync();
    // Phase B: down + residual (act_l written by every block in phase A).
    const uint4* a = p.act[l] + warp * q;
    sb.run(
        ring[warp], lane, [&](int, int v, const uint4& w) { acc = detail::gemv_dot8(w, a[v], acc); },
        [&](int t) {
          const float s = warp_sum(acc);
          acc = 0.0f;
          if (lane == 0) red[warp] = s;
          __syncthreads();
          if (threadIdx.x == 0) {
            float sum = 0.0f;
            for (int k = 0; k < kWarps; ++k) sum += red[k];
            const int r = b + t * B;
            p.resid[r] = __ldcg(p.resid + r) + sum;
          }
          __syncthreads();
        });
    if (l + 1 < p.layers) phase_a(l + 1).prefetch(ring[warp], lane);  // across the barrier
    grid.sync();
  }
}

struct Shape {
  const char* name;
  int64_t hidden, inter;
};
const Shape kShapes[] = {{"7B", 3584, 18944}, {"32B", 5120, 27648}};

class MlpBench {
 public:
  Status init(const Shape& s, int layers, cudaStream_t stream) {
    s_ = s;
    layers_ = layers;
    stream_ = stream;
    uint64_t key = 1000;
    for (int l = 0; l < layers; ++l) {
      DeviceBuffer gu, d, act;
      DS_ASSIGN_OR_RETURN(gu, DeviceBuffer::allocate(static_cast<size_t>(2 * s.inter * s.hidden) * 2));
      DS_ASSIGN_OR_RETURN(d, DeviceBuffer::allocate(static_cast<size_t>(s.hidden * s.inter) * 2));
      DS_ASSIGN_OR_RETURN(act, DeviceBuffer::allocate(static_cast<size_t>(s.inter) * 2));
      DS_RETURN_IF_ERROR(fill_dummy(gu.data(), DType::kBF16, 2 * s.inter * s.hidden, key++, 0.02f, stream));
      DS_RETURN_IF_ERROR(fill_dummy(d.data(), DType::kBF16, s.hidden * s.inter, key++, 0.02f, stream));
      w_gu_.push_back(std::move(gu));
      w_d_.push_back(std::move(d));
      act_.push_back(std::move(act));
    }
    DS_ASSIGN_OR_RETURN(x_, DeviceBuffer::allocate(static_cast<size_t>(s.hidden) * 2));
    DS_RETURN_IF_ERROR(fill_dummy(x_.data(), DType::kBF16, s.hidden, 7, 1.0f, stream));
    DS_ASSIGN_OR_RETURN(resid_, DeviceBuffer::allocate(static_cast<size_t>(s.hidden) * 4));
    DS_ASSIGN_OR_RETURN(resid0_, DeviceBuffer::allocate(static_cast<size_t>(s.hidden) * 4));
    DS_RETURN_IF_ERROR(fill_dummy(resid0_.data(), DType::kF32, s.hidden, 8, 1.0f, stream));
    std::vector<const void*> gu_ptrs, d_ptrs;
    std::vector<void*> act_ptrs;
    for (int l = 0; l < layers; ++l) {
      gu_ptrs.push_back(w_gu_[l].data());
      d_ptrs.push_back(w_d_[l].data());
      act_ptrs.push_back(act_[l].data());
    }
    DS_ASSIGN_OR_RETURN(ptrs_, DeviceBuffer::allocate(3 * static_cast<size_t>(layers) * sizeof(void*)));
    std::vector<const void*> all(gu_ptrs);
    all.insert(all.end(), d_ptrs.begin(), d_ptrs.end());
    for (void* a : act_ptrs) all.push_back(a);
    DS_RETURN_IF_ERROR(ptrs_.copy_from_host(all.data(), all.size() * sizeof(void*)));
    DS_ASSIGN_OR_RETURN(scratch_buf_, DeviceBuffer::allocate(detail::gemv_scratch_bytes()));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(scratch_buf_.data(), 0, scratch_buf_.bytes()));
    int dev = 0;
    DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&dev));
    DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, dev));
    scratch_.num_sms = num_sms_;
    scratch_.partials = static_cast<float*>(scratch_buf_.data());
    scratch_.counters = reinterpret_cast<unsigned*>(scratch_.partials + detail::kGemvMaxSplitBlocks * 128);
    DS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    return Status::Ok();
  }

  double weight_bytes_per_layer() const { return 3.0 * s_.hidden * s_.inter * 2; }

  Status reset_resid() {
    DS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(resid_.data(), resid0_.data(), resid_.bytes(), cudaMemcpyDeviceToDevice,
                                            stream_));
    return Status::Ok();
  }

  // The executor's kernels: gemv-warp-s1 + SwiGLU, gemv-warp-s4 + f32 residual in place.
  Status chain() {
    for (int l = 0; l < layers_; ++l) {
      GemmArgs gu;
      gu.m = 1, gu.n = 2 * s_.inter, gu.k = s_.hidden, gu.ldx = s_.hidden, gu.ldy = 2 * s_.inter;
      gu.x = x_.data();
      gu.w = w_gu_[l].data();
      gu.swiglu_out = act_[l].data();
      gu.ld_swiglu = s_.inter;
      DS_RETURN_IF_ERROR(detail::launch_gemv(gu, scratch_, stream_, 1, detail::GemvKernel::kWarpRows));
      GemmArgs d;
      d.m = 1, d.n = s_.hidden, d.k = s_.inter, d.ldx = s_.inter, d.ldy = s_.hidden;
      d.x = act_[l].data();
      d.w = w_d_[l].data();
      d.y = resid_.data();
      d.residual = resid_.data();
      d.out_dtype = DType::kF32;
      DS_RETURN_IF_ERROR(detail::launch_gemv(d, scratch_, stream_, 4, detail::GemvKernel::kWarpRows));
    }
    return Status::Ok();
  }

  // The persistent kernel with blocks_per_sm blocks on every SM (capped by occupancy).
  Status persistent(int blocks_per_sm, int* used_blocks_per_sm) {
    const size_t smem = static_cast<size_t>(s_.hidden) * 2;
    int fit = 0;
    DS_CUDA_RETURN_IF_ERROR(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, persistent_mlp_kernel, kWarps * 32, smem));
    const int per_sm = std::min(blocks_per_sm, fit);
    if (per_sm < 1) return Status::Error("persistent kernel: no block fits on an SM");
    // Every warp of a block needs a non-empty quarter of k in phase B (its end-of-row
    // __syncthreads pair up by count), and x / act are read in 16-byte vectors.
    if (s_.inter % (8 * kWarps) != 0 || s_.hidden % 8 != 0)
      return Status::Error("persistent kernel: intermediate size must be a multiple of 32, hidden of 8");
    *used_blocks_per_sm = per_sm;
    MlpParams p;
    const void* const* all = static_cast<const void* const*>(ptrs_.data());
    p.w_gu = reinterpret_cast<const uint4* const*>(all);
    p.w_d = reinterpret_cast<const uint4* const*>(all + layers_);
    p.act = reinterpret_cast<uint4* const*>(const_cast<void* const*>(all + 2 * layers_));
    p.x = static_cast<const uint4*>(x_.data());
    p.resid = static_cast<float*>(resid_.data());
    p.layers = layers_;
    p.nv_h = static_cast<int>(s_.hidden / 8);
    p.nv_i = static_cast<int>(s_.inter / 8);
    p.hidden = static_cast<int>(s_.hidden);
    p.inter = static_cast<int>(s_.inter);
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(static_cast<unsigned>(per_sm * num_sms_));
    cfg.blockDim = dim3(kWarps * 32);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream_;
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeCooperative;
    attr.val.cooperative = 1;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    DS_CUDA_RETURN_IF_ERROR(cudaLaunchKernelEx(&cfg, persistent_mlp_kernel, p));
    return Status::Ok();
  }

  Result<std::vector<float>> resid() {
    std::vector<float> h(static_cast<size_t>(s_.hidden));
    DS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    DS_RETURN_IF_ERROR(resid_.copy_to_host(h.data(), h.size() * 4));
    return h;
  }

  // Median ms of `reps` timed runs of body (each after a spin kernel that holds the GPU
  // until the launches are queued), as a CUDA graph when graph is set (PDL on).
  Result<double> time(bool graph, int reps, const std::function<Status()>& body) {
    GraphExec exec;
    if (graph) {
      PdlScope pdl(true);
      DS_RETURN_IF_ERROR(body());  // warm-up
      DS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
      DS_ASSIGN_OR_RETURN(exec, capture_graph(stream_, body));
    } else {
      DS_RETURN_IF_ERROR(body());  // warm-up
    }
    DS_ASSIGN_OR_RETURN(Event a, Event::create());
    DS_ASSIGN_OR_RETURN(Event b, Event::create());
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
      DS_RETURN_IF_ERROR(launch_timing_spin(20000, stream_));
      DS_RETURN_IF_ERROR(a.record(stream_));
      if (exec.get()) {
        DS_RETURN_IF_ERROR(exec.launch(stream_));
      } else {
        DS_RETURN_IF_ERROR(body());
      }
      DS_RETURN_IF_ERROR(b.record(stream_));
      DS_RETURN_IF_ERROR(b.synchronize());
      DS_ASSIGN_OR_RETURN(const float t, b.elapsed_ms_since(a));
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

 private:
  Shape s_{};
  int layers_ = 0;
  int num_sms_ = 0;
  cudaStream_t stream_ = nullptr;
  std::vector<DeviceBuffer> w_gu_, w_d_, act_;
  DeviceBuffer x_, resid_, resid0_, ptrs_, scratch_buf_;
  detail::GemvScratch scratch_;
};

Status run_shape(const Shape& s, int layers, int reps, const std::vector<int>& blocks_per_sm) {
  cudaStream_t stream = nullptr;
  DS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  struct StreamGuard {
    cudaStream_t s;
    ~StreamGuard() { cudaStreamDestroy(s); }
  } guard{stream};
  MlpBench b;
  DS_RETURN_IF_ERROR(b.init(s, layers, stream));
  const double gb = b.weight_bytes_per_layer() / 1e9;
  std::printf("== %s MLP: %d layers, %.1f MB of weights per layer\n", s.name, layers, gb * 1e3);
  // Reference result: one chain pass from the initial residual.
  DS_RETURN_IF_ERROR(b.reset_resid());
  DS_RETURN_IF_ERROR(b.chain());
  DS_ASSIGN_OR_RETURN(const std::vector<float> ref, b.resid());
  DS_ASSIGN_OR_RETURN(const double chain_ms, b.time(true, reps, [&] { return b.chain(); }));
  const double chain_us = chain_ms * 1e3 / layers;
  std::printf("%-24s %10.2f us/layer %8.1f GB/s\n", "chain (PDL graph)", chain_us, gb / (chain_us * 1e-6));
  for (int bps : blocks_per_sm) {
    int used = 0;
    DS_RETURN_IF_ERROR(b.reset_resid());
    Status st = b.persistent(bps, &used);
    if (!st.ok()) {
      std::printf("persistent %d/SM: error: %s\n", bps, st.message().c_str());
      continue;
    }
    DS_ASSIGN_OR_RETURN(const std::vector<float> got, b.resid());
    double max_diff = 0.0, max_ref = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(got[i] - ref[i])));
      max_ref = std::max(max_ref, static_cast<double>(std::fabs(ref[i])));
    }
    DS_ASSIGN_OR_RETURN(const double ms, b.time(false, reps, [&] { return b.persistent(bps, &used); }));
    const double us = ms * 1e3 / layers;
    std::printf("persistent %d blocks/SM     %10.2f us/layer %8.1f GB/s   max |diff| vs chain %.3e (max |resid| %.3e)\n",
                used, us, gb / (us * 1e-6), max_diff, max_ref);
  }
  return Status::Ok();
}

}  // namespace
}  // namespace ds::cuda::bench

int main(int argc, char** argv) {
  CLI::App app{"ds_persistent_mlp_bench: batch-1 decode MLP, PDL chain vs one persistent cooperative kernel"};
  std::string which = "all";
  int layers = 16, reps = 20;
  std::vector<int> blocks_per_sm = {5, 6, 7};
  app.add_option("--model", which, "7B, 32B or all")->check(CLI::IsMember({"7B", "32B", "all"}));
  app.add_option("--layers", layers, "layers (distinct weights)")->check(CLI::Range(1, 64));
  app.add_option("--reps", reps, "timed runs (median)")->check(CLI::Range(3, 1000));
  app.add_option("--blocks-per-sm", blocks_per_sm, "persistent grid sizes to try")->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  for (const auto& s : ds::cuda::bench::kShapes) {
    if (which != "all" && which != s.name) continue;
    const ds::Status st = ds::cuda::bench::run_shape(s, layers, reps, blocks_per_sm);
    if (!st.ok()) {
      std::fprintf(stderr, "ds_persistent_mlp_bench: %s: %s\n", s.name, st.message().c_str());
      return 1;
    }
  }
  return 0;
}
