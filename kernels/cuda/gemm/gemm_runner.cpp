// GemmRunner: cuBLASLt for general shapes, the GEMV kernel (gemv.cu) for small m:
// argument checks, the path (forced or kAuto), and kAuto's timing of the candidates.
//
// kAuto's choice among the GEMV kernels and cuBLASLt is in gemm_choice.cpp, the
// cuBLASLt plans and launch in cublaslt_gemm.cpp.
// The RMSNorm prologue and the SwiGLU epilogue exist on the warp GEMV kernels
// only: with either set, run() never falls back to cuBLASLt (an error instead).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/cublaslt_gemm.h"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemm_choice.h"
#include "kernels/cuda/gemm/gemv.h"
#include "kernels/cuda/gemm/timing_decoys.h"
#include "kernels/cuda/gemm/timing_spin.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/pdl.h"

namespace ds::cuda {
namespace {

// DSRT_GEMM_VERBOSE=1: print every timed kAuto choice to stderr.
bool verbose_choices() {
  static const bool on = [] {
    const char* e = std::getenv("DSRT_GEMM_VERBOSE");
    return e && std::strcmp(e, "0") != 0 && *e;
  }();
  return on;
}

using detail::Choice;
using Key = detail::ProblemKey;

size_t dtype_bytes(DType t) { return t == DType::kF32 ? 4 : 2; }

}  // namespace

struct GemmRunner::Impl {
  std::unique_ptr<detail::CublasLtGemm> lt;
  DeviceBuffer gemv_scratch;  // split-k partials and counters (zeroed once)
  detail::GemvScratch scratch;
  Event start, stop;          // timing of the GEMV-vs-cuBLASLt choice
  DeviceBuffer timing_y;       // y of the timed launches when the residual is in place
  DeviceBuffer timing_norm;    // deferred RMSNorm slot and x' row of the timed launches
  size_t l2_bytes = 0;          // the device's L2 size (timing decoys)

  Status launch(Choice c, const GemmArgs& a, cudaStream_t stream) {
    switch (c) {
      case Choice::kGemvWarp: return detail::launch_gemv(a, scratch, stream, 0, detail::GemvKernel::kWarpRows);
      case Choice::kGemvWarpDeep:
        return detail::launch_gemv(a, scratch, stream, 0, detail::GemvKernel::kWarpRowsDeep);
      case Choice::kGemvAsync: return detail::launch_gemv(a, scratch, stream, 0, detail::GemvKernel::kWarpAsync);
      case Choice::kGemvMma: return detail::launch_gemv(a, scratch, stream, 0, detail::GemvKernel::kMmaTiles);
      case Choice::kGemvWarpS1:
      case Choice::kGemvWarpS2:
      case Choice::kGemvWarpS4:
        return detail::launch_gemv(a, scratch, stream, detail::choice_warp_splits(c), detail::GemvKernel::kWarpRows);
      case Choice::kGemvWarpDeepS2:
      case Choice::kGemvWarpDeepS4:
        return detail::launch_gemv(a, scratch, stream, detail::choice_warp_splits(c),
                                   detail::GemvKernel::kWarpRowsDeep);
      case Choice::kGemvBulkW8:
      case Choice::kGemvBulkW16:
      case Choice::kGemvBulkW16S6: return detail::launch_gemv_bulk(a, detail::bulk_config(c), scratch.num_sms, stream);
      case Choice::kCublasLt: break;
    }
    return lt->run(a, stream);
  }

  // The arguments the candidates are timed with. An in-place residual would be
  // added to y again by every timed launch (the residual stream would be lost):
  // those launches write a runner-owned copy of y's shape instead, at y's
  // alignment modulo 16 (same problem key). Its values are arbitrary.
  // The deferred RMSNorm's slot and x' likewise: a timed producer would add
  // into the pair's slot and a timed reader would reset it (timing happens
  // between the two inside a step), so both use a runner-owned slot and row.
  Result<GemmArgs> timing_args(const GemmArgs& a) {
    GemmArgs t = a;
    if (a.residual != nullptr && a.residual == a.y) {
      const size_t bytes = static_cast<size_t>(a.m * a.ldy) * dtype_bytes(a.out_dtype) + 16;
      if (timing_y.bytes() < bytes) {
        timing_y = DeviceBuffer();
        DS_ASSIGN_OR_RETURN(timing_y, DeviceBuffer::allocate(bytes));
      }
      t.y = static_cast<char*>(timing_y.data()) + reinterpret_cast<uintptr_t>(a.y) % 16;
      t.residual = t.y;
    }
    if (a.norm_out.slot != nullptr || a.norm_in.slot != nullptr) {
      const size_t bytes = sizeof(DeferredNormSlot) + static_cast<size_t>(a.n) * 2 + 16;
      if (timing_norm.bytes() < bytes) {
        timing_norm = DeviceBuffer();
        DS_ASSIGN_OR_RETURN(timing_norm, DeviceBuffer::allocate(bytes));
        DS_CUDA_RETURN_IF_ERROR(cudaMemset(timing_norm.data(), 0, timing_norm.bytes()));
      }
      auto* slot = static_cast<DeferredNormSlot*>(timing_norm.data());
      if (t.norm_out.slot != nullptr) {
        t.norm_out.slot = slot;
        t.norm_out.x = reinterpret_cast<char*>(slot + 1) + reinterpret_cast<uintptr_t>(a.norm_out.x) % 16;
        t.norm_out.ld_x = 0;
      }
      if (t.norm_in.slot != nullptr) t.norm_in.slot = slot;
    }
    return t;
  }

  // The kernel for a GEMV-eligible problem: the process-wide recorded choice;
  // else DSRT_GEMM_KERNEL or the long-k rule; else, outside a graph capture,
  // the fastest candidate measured on the caller's buffers (y is overwritten
  // unless the residual is in place) and recorded; inside a capture
  // static_choice(), recorded as well (nothing is timed), so that every runner
  // of the process keeps using the kernel the captured graph contains.
  Result<Choice> choose(const GemmArgs& a, cudaStream_t stream) {
    int device = 0;
    DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
    const Key key = detail::make_problem_key(a);
    Choice c;
    if (detail::lookup_shared_choice(device, key, &c)) return c;
    if (*detail::gemv_only_feature(a) != 0 && detail::env_forced_kernel(&c) && !detail::choice_can_run(c, a))
      return Status::Error(StrCat() << "gemm: DSRT_GEMM_KERNEL=" << detail::choice_name(c) << " cannot compute "
                                    << detail::gemv_only_feature(a) << " at m=" << a.m
                                    << " (check supports_norm_prologue() / supports_swiglu_epilogue() first)");
    if (detail::forced_choice(a, &c)) return c;
    const std::vector<Choice> rule = detail::layer_rule_candidates(a);
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    DS_CUDA_RETURN_IF_ERROR(cudaStreamIsCapturing(stream, &capture));
    if (capture != cudaStreamCaptureStatusNone)
      return detail::record_shared_choice(device, key, rule.empty() ? detail::static_choice(a) : Choice::kGemvWarp);
    DS_ASSIGN_OR_RETURN(const GemmArgs t, timing_args(a));
    // Timed over decoy copies when the weight fits in L2 (timing_decoys.h).
    DS_ASSIGN_OR_RETURN(detail::TimingDecoys decoys, detail::TimingDecoys::make(a, l2_bytes, stream));
    auto timed = [&](Choice c) {
      GemmArgs ti = t;
      ti.w = decoys.next();
      return launch(c, ti, stream);
    };
    // Three launches back to back (under PDL each overlaps the previous one's
    // tail, as consecutive GEMMs of a decode graph do). On the H200 this
    // ranking matched the whole-layer graph measurements of
    // ds_decode_layer_bench except for long k (layer_rule_candidates); timing
    // behind a latency-bound kernel with L2 flushed instead picked GEMVs that
    // lost 8 us per 32B layer to cuBLASLt. The candidates take turns over
    // kRounds rounds and each is ranked by its median: one sample each let
    // run-to-run noise flip close choices (decode tok/s moved by 4%). A spin
    // kernel ahead of each start event holds the GPU until the host has queued
    // the three launches: without it cuBLASLt's host cost per call was timed
    // too, and the 32B qkv / o projections went to GEMVs 2-3 us slower in the
    // decode graph (ds_decode_layer_bench chain table).
    constexpr int kRounds = 5;
    std::vector<Choice> cands;
    Status first_error;
    for (Choice cand : rule.empty() ? detail::choice_candidates(a) : rule) {
      Status st = timed(cand);  // warm-up; also plans cuBLASLt
      if (st.ok()) {
        cands.push_back(cand);
      } else if (first_error.ok()) {
        first_error = st;
      }
    }
    std::vector<std::vector<float>> samples(cands.size());
    for (int r = 0; r < kRounds; ++r) {
      for (size_t ci = 0; ci < cands.size(); ++ci) {
        DS_RETURN_IF_ERROR(launch_timing_spin(100000, stream));
        DS_RETURN_IF_ERROR(start.record(stream));
        for (int i = 0; i < 3; ++i) DS_RETURN_IF_ERROR(timed(cands[ci]));
        DS_RETURN_IF_ERROR(stop.record(stream));
        DS_RETURN_IF_ERROR(stop.synchronize());
        DS_ASSIGN_OR_RETURN(const float ms, stop.elapsed_ms_since(start));
        samples[ci].push_back(ms);
      }
    }
    Choice best = detail::static_choice(a);
    float best_ms = 0.0f;
    bool have = false;
    for (size_t ci = 0; ci < cands.size(); ++ci) {
      std::vector<float>& v = samples[ci];
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      const float med = v[v.size() / 2];
      if (!have || med < best_ms) {
        best = cands[ci];
        best_ms = med;
        have = true;
      }
    }
    if (have && verbose_choices())
      std::fprintf(stderr, "dsrt gemm: m=%lld n=%lld k=%lld%s%s -> %s (%.2f us per launch, median of %d)\n",
                   static_cast<long long>(a.m), static_cast<long long>(a.n), static_cast<long long>(a.k),
                   a.residual ? " +residual" : "", a.swiglu_out ? " +swiglu" : "", detail::choice_name(best),
                   best_ms * 1e3f / 3.0f, kRounds);
    if (!have) return first_error;
    // Another runner may have recorded the same problem meanwhile: its choice wins.
    return detail::record_shared_choice(device, key, best);
  }

  // Builds descriptors for `key` and asks the heuristic, with the bias fused
  // when `fuse_bias`; returns null (no error) when no algorithm fits.
};

GemmRunner::GemmRunner() : impl_(std::make_unique<Impl>()) {}
GemmRunner::~GemmRunner() = default;

Result<std::unique_ptr<GemmRunner>> GemmRunner::create(size_t workspace_bytes) {
  std::unique_ptr<GemmRunner> runner(new GemmRunner());
  Impl& impl = *runner->impl_;
  DS_ASSIGN_OR_RETURN(impl.lt, detail::CublasLtGemm::create(workspace_bytes));
  DS_ASSIGN_OR_RETURN(impl.gemv_scratch, DeviceBuffer::allocate(detail::gemv_scratch_bytes()));
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(impl.gemv_scratch.data(), 0, impl.gemv_scratch.bytes()));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());  // visible to every stream, blocking or not
  int device = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&impl.scratch.num_sms, cudaDevAttrMultiProcessorCount, device));
  int l2 = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
  impl.l2_bytes = static_cast<size_t>(std::max(l2, 0));
  impl.scratch.partials = static_cast<float*>(impl.gemv_scratch.data());
  impl.scratch.counters = reinterpret_cast<unsigned*>(impl.scratch.partials + detail::kGemvMaxSplitBlocks * 128);
  DS_ASSIGN_OR_RETURN(impl.start, Event::create());
  DS_ASSIGN_OR_RETURN(impl.stop, Event::create());
  return runner;
}

size_t GemmRunner::workspace_bytes() const { return impl_->lt->workspace_bytes(); }

static Status check_args(GemmArgs& a, bool need_pointers = true) {
  if (a.m < 0 || a.n <= 0 || a.k <= 0)
    return Status::Error(StrCat() << "gemm: bad shape m=" << a.m << " n=" << a.n << " k=" << a.k
                                  << " (m >= 0, n > 0, k > 0)");
  if (a.out_dtype != DType::kBF16 && a.out_dtype != DType::kF32)
    return Status::Error(StrCat() << "gemm: output dtype " << dtype_name(a.out_dtype) << " is not bf16 or f32");
  const bool norm = a.norm.src != nullptr;
  const bool swiglu = a.swiglu_out != nullptr;
  if (a.ldx == 0) a.ldx = a.k;
  if (a.ldy == 0) a.ldy = a.n;
  if (a.ldx < a.k && !norm) return Status::Error(StrCat() << "gemm: ldx = " << a.ldx << " is smaller than k = " << a.k);
  if (a.ldy < a.n) return Status::Error(StrCat() << "gemm: ldy = " << a.ldy << " is smaller than n = " << a.n);
  if (need_pointers && a.m > 0 && ((a.x == nullptr && !norm) || a.w == nullptr || (a.y == nullptr && !swiglu)))
    return Status::Error(norm     ? "gemm: w and y must be non-null"
                         : swiglu ? "gemm: x and w must be non-null"
                                  : "gemm: x, w and y must be non-null");
  if (norm && a.norm.gamma == nullptr) return Status::Error("gemm: norm.src is set but norm.gamma is null");
  auto misaligned = [](const void* p, uintptr_t bytes) { return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) != 0; };
  const uintptr_t out_bytes = a.out_dtype == DType::kF32 ? 4 : 2;
  if (misaligned(a.x, 2) || misaligned(a.w, 2) || misaligned(a.bias, 2) || misaligned(a.y, out_bytes) ||
      misaligned(a.residual, out_bytes) || misaligned(a.swiglu_out, 2))
    return Status::Error("gemm: a pointer is not aligned to its element size");
  if (a.residual != nullptr && a.residual != a.y && a.y != nullptr && a.m > 0) {
    const uintptr_t r0 = reinterpret_cast<uintptr_t>(a.residual), y0 = reinterpret_cast<uintptr_t>(a.y);
    const uintptr_t span = static_cast<uintptr_t>((a.m - 1) * a.ldy + a.n) * out_bytes;
    if (r0 < y0 + span && y0 < r0 + span)
      return Status::Error("gemm: residual overlaps y without being y (in place needs residual == y)");
  }
  return Status::Ok();
}

bool GemmRunner::supports_norm_prologue(const GemmArgs& args) const {
  GemmArgs a = args;
  if (a.ldy == 0) a.ldy = a.n;
  if (a.m < 1 || a.n <= 0 || a.k <= 0 || a.ldy < a.n) return false;
  if (a.out_dtype != DType::kBF16 && a.out_dtype != DType::kF32) return false;
  if (!detail::norm_prologue_unsupported_reason(a).empty()) return false;
  // A DSRT_GEMM_KERNEL that cannot run the prologue (cublaslt, gemv-mma, or
  // gemv-warp-deep at m = 2): the caller runs the RMSNorm itself and x is read.
  detail::Choice forced;
  if (detail::env_forced_kernel(&forced) && !detail::choice_can_run(forced, a.m, /*norm=*/true)) return false;
  return true;
}

bool GemmRunner::supports_swiglu_epilogue(const GemmArgs& args) const {
  GemmArgs a = args;
  if (a.ldx == 0) a.ldx = a.k;
  if (a.m < 1 || a.n <= 0 || a.k <= 0 || a.ldx < a.k) return false;
  if ((reinterpret_cast<uintptr_t>(a.swiglu_out) & 1u) != 0) return false;
  const bool norm = a.norm.src != nullptr;
  if (norm) {
    // With the RMSNorm prologue only the bulk GEMV computes it (kAuto times its layouts).
    if (!detail::gemv_bulk_candidates_on() || !detail::gemv_bulk_unsupported_reason(a).empty()) return false;
  } else if (!detail::swiglu_unsupported_reason(a).empty()) {
    return false;
  }
  // A DSRT_GEMM_KERNEL without the epilogue (cublaslt, gemv-mma, gemv-warp-deep
  // at m > 1): the caller launches the SiLU*mul group and y is written.
  detail::Choice forced;
  if (detail::env_forced_kernel(&forced) && !detail::choice_can_run(forced, a.m, norm, /*swiglu=*/true))
    return false;
  return true;
}

bool GemmRunner::supports_deferred_norm(const GemmArgs& args) const {
  GemmArgs a = args;
  if (a.ldx == 0) a.ldx = a.k;
  if (a.ldy == 0) a.ldy = a.n;
  if (a.m < 1 || a.n <= 0 || a.k <= 0 || a.ldx < a.k || a.ldy < a.n) return false;
  if (a.out_dtype != DType::kBF16 && a.out_dtype != DType::kF32) return false;
  if (a.norm_out.slot == nullptr && a.norm_in.slot == nullptr) return false;
  if (!detail::gemv_unsupported_reason(a).empty()) return false;
  detail::Choice forced;
  if (detail::env_forced_kernel(&forced) && !detail::choice_can_run(forced, a.m, a.norm.src != nullptr,
                                                                    a.swiglu_out != nullptr, /*deferred=*/true))
    return false;
  return true;
}

Status GemmRunner::run(const GemmArgs& args, cudaStream_t stream) { return run(args, stream, GemmPath::kAuto); }

Status GemmRunner::run(const GemmArgs& args, cudaStream_t stream, GemmPath path) {
  GemmArgs a = args;
  DS_RETURN_IF_ERROR(check_args(a));
  if (a.m == 0) return Status::Ok();
  const std::string gemv_reason = detail::gemv_unsupported_reason(a);
  if (const char* only = detail::gemv_only_feature(a); *only != 0) {
    if (path == GemmPath::kCublasLt) return Status::Error(StrCat() << "gemm: cuBLASLt cannot compute " << only);
    if (!gemv_reason.empty())
      return Status::Error(StrCat() << "gemm: no GEMV kernel can compute " << only << " here: " << gemv_reason);
  }
  if (path == GemmPath::kGemv && !gemv_reason.empty())
    return Status::Error(StrCat() << "gemm: the GEMV path cannot run this problem: " << gemv_reason);
  if (path == GemmPath::kGemv) return detail::launch_gemv(a, impl_->scratch, stream);
  if (path == GemmPath::kAuto && gemv_reason.empty()) {
    DS_ASSIGN_OR_RETURN(Choice c, impl_->choose(a, stream));
    return impl_->launch(c, a, stream);
  }
  return impl_->lt->run(a, stream);
}

Status GemmRunner::prepare(const GemmArgs& args, cudaStream_t stream) {
  GemmArgs a = args;
  DS_RETURN_IF_ERROR(check_args(a));
  if (a.m == 0) return Status::Ok();
  const std::string gemv_reason = detail::gemv_unsupported_reason(a);
  if (gemv_reason.empty()) return impl_->choose(a, stream).status();
  if (const char* only = detail::gemv_only_feature(a); *only != 0)
    return Status::Error(StrCat() << "gemm: no GEMV kernel can compute " << only << " here: " << gemv_reason);
  return impl_->lt->prepare(detail::cublaslt_plan_key(a));
}

std::string GemmRunner::chosen_kernel(const GemmArgs& args) const {
  GemmArgs a = args;
  if (!check_args(a).ok()) return "invalid";
  const std::string gemv_reason = detail::gemv_unsupported_reason(a);
  if (!gemv_reason.empty()) return *detail::gemv_only_feature(a) != 0 ? "unsupported (" + gemv_reason + ")" : "cublaslt";
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return "unknown device";
  }
  Choice c;
  if (detail::lookup_shared_choice(device, detail::make_problem_key(a), &c)) return detail::choice_name(c);
  if (*detail::gemv_only_feature(a) != 0 && detail::env_forced_kernel(&c) && !detail::choice_can_run(c, a))
    return std::string("unsupported (DSRT_GEMM_KERNEL=") + detail::choice_name(c) + " has no " +
           (detail::gemv_only_feature(a) + 4) + ")";
  if (detail::forced_choice(a, &c)) return std::string(detail::choice_name(c)) + " (DSRT_GEMM_KERNEL)";
  if (!detail::layer_rule_candidates(a).empty()) return "unmeasured (gemv-warp, long k, PDL)";
  return std::string("unmeasured (") + detail::choice_name(detail::static_choice(a)) + ")";
}

Status GemmRunner::prepare(int64_t m, int64_t n, int64_t k, DType out_dtype, bool has_bias) {
  GemmArgs a;
  a.m = m;
  a.n = n;
  a.k = k;
  a.out_dtype = out_dtype;
  DS_RETURN_IF_ERROR(check_args(a, /*need_pointers=*/false));
  if (m == 0) return Status::Ok();
  // cuBLASLt is a candidate for every shape (the GEMV choice is timed at the
  // first run outside a capture, or by prepare(args, stream)).
  Key key;
  key.m = m;
  key.n = n;
  key.k = k;
  key.ldx = a.ldx;
  key.ldy = a.ldy;
  key.out = out_dtype;
  key.bias = has_bias;
  key.align = 16;
  return impl_->lt->prepare(key);
}

}  // namespace ds::cuda
