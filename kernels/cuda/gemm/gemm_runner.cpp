// GemmRunner: cuBLASLt for general shapes, the GEMV kernel (gemv.cu) for small m.
//
// Row-major y[m, n] = x[m, k] · w[n, k]ᵀ is the column-major product
// yᵀ (n x m, ld ldy) = op(A) · B with A = w viewed as a k x n column-major
// matrix (lda = k, transa = T) and B = xᵀ (k x m, ldb = ldx, transb = N).
// CUBLASLT_EPILOGUE_BIAS adds a vector along D's rows (= n): the per-feature bias.
// A residual is C with beta = 1 (C has D's layout; C == D is cuBLASLt's
// in-place case): D = acc + bias + residual in f32, one rounding.
//
// kAuto's choice among the GEMV kernels and cuBLASLt is in gemm_choice.cpp.
// The RMSNorm prologue and the SwiGLU epilogue exist on the warp GEMV kernels
// only: with either set, run() never falls back to cuBLASLt (an error instead).
#include <cublasLt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/gemm/add_residual.h"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemm_choice.h"
#include "kernels/cuda/gemm/gemv.h"
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

Status lt_status(cublasStatus_t s, const char* expr, const char* file, int line) {
  return Status::Error(StrCat() << "cuBLASLt error " << cublasLtGetStatusName(s) << " ("
                                << cublasLtGetStatusString(s) << ") in " << expr << " [" << file << ":"
                                << line << "]");
}

#define DS_LT_RETURN_IF_ERROR(expr)                                                    \
  do {                                                                                 \
    cublasStatus_t _ds_lt_status = (expr);                                             \
    if (_ds_lt_status != CUBLAS_STATUS_SUCCESS)                                        \
      return lt_status(_ds_lt_status, #expr, __FILE__, __LINE__);                     \
  } while (0)

struct HandleDeleter {
  void operator()(cublasLtContext* h) const { cublasLtDestroy(h); }
};
struct DescDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* d) const { cublasLtMatmulDescDestroy(d); }
};
struct LayoutDeleter {
  void operator()(cublasLtMatrixLayoutOpaque_t* l) const { cublasLtMatrixLayoutDestroy(l); }
};
struct PrefDeleter {
  void operator()(cublasLtMatmulPreferenceOpaque_t* p) const { cublasLtMatmulPreferenceDestroy(p); }
};
using HandlePtr = std::unique_ptr<cublasLtContext, HandleDeleter>;
using DescPtr = std::unique_ptr<cublasLtMatmulDescOpaque_t, DescDeleter>;
using LayoutPtr = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LayoutDeleter>;
using PrefPtr = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, PrefDeleter>;

// One cached problem: descriptors and the heuristic's algorithm.
struct Plan {
  DescPtr desc;
  LayoutPtr a, b, d;
  cublasLtMatmulAlgo_t algo;
  bool bias_in_epilogue = false;  // else (bias requested): bias added by a kernel after the matmul
};

using detail::Choice;
using Key = detail::ProblemKey;
using KeyHash = detail::ProblemKeyHash;

cudaDataType_t cuda_type(DType t) { return t == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF; }

// The cuBLASLt plan of a problem: the residual (a runtime beta) and the
// prologue (never on cuBLASLt) do not enter it; the pointers' alignment does.
Key plan_key(const GemmArgs& a) {
  Key key = detail::make_problem_key(a);
  key.residual = key.residual_in_place = false;
  key.norm = 0;
  key.ld_src = 0;
  key.swiglu = false;
  key.ld_swiglu = 0;
  return key;
}

// What only the warp GEMV kernels compute, for error messages ("": neither).
const char* gemv_only_feature(const GemmArgs& a) {
  if (a.swiglu_out != nullptr) return "the SwiGLU epilogue";
  if (a.norm.src != nullptr) return "the RMSNorm prologue";
  return "";
}

size_t dtype_bytes(DType t) { return t == DType::kF32 ? 4 : 2; }

}  // namespace

struct GemmRunner::Impl {
  HandlePtr handle;
  DeviceBuffer workspace;
  DeviceBuffer gemv_scratch;  // split-k partials and counters (zeroed once)
  detail::GemvScratch scratch;
  Event start, stop;          // timing of the GEMV-vs-cuBLASLt choice
  std::mutex mu;
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans;

  DeviceBuffer timing_y;       // y of the timed launches when the residual is in place

  Status launch(Choice c, const GemmArgs& a, cudaStream_t stream) {
    switch (c) {
      case Choice::kGemvWarp: return detail::launch_gemv(a, scratch, stream, 0, detail::GemvKernel::kWarpRows);
      case Choice::kGemvWarpDeep:
        return detail::launch_gemv(a, scratch, stream, 0, detail::GemvKernel::kWarpRowsDeep);
      case Choice::kGemvAsync: return detail::launch_gemv(a, scratch, stream, 0, detail::GemvKernel::kWarpAsync);
      case Choice::kGemvMma: return detail::launch_gemv(a, scratch, stream, 0, detail::GemvKernel::kMmaTiles);
      case Choice::kCublasLt: break;
    }
    return run_cublaslt(a, stream);
  }

  // The arguments the candidates are timed with. An in-place residual would be
  // added to y again by every timed launch (the residual stream would be lost):
  // those launches write a runner-owned copy of y's shape instead, at y's
  // alignment modulo 16 (same problem key). Its values are arbitrary.
  Result<GemmArgs> timing_args(const GemmArgs& a) {
    if (a.residual == nullptr || a.residual != a.y) return a;
    const size_t bytes = static_cast<size_t>(a.m * a.ldy) * dtype_bytes(a.out_dtype) + 16;
    if (timing_y.bytes() < bytes) {
      timing_y = DeviceBuffer();
      DS_ASSIGN_OR_RETURN(timing_y, DeviceBuffer::allocate(bytes));
    }
    GemmArgs t = a;
    t.y = static_cast<char*>(timing_y.data()) + reinterpret_cast<uintptr_t>(a.y) % 16;
    t.residual = t.y;
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
    if (*gemv_only_feature(a) != 0 && detail::env_forced_kernel(&c) && !detail::choice_can_run(c, a))
      return Status::Error(StrCat() << "gemm: DSRT_GEMM_KERNEL=" << detail::choice_name(c) << " cannot compute "
                                    << gemv_only_feature(a) << " at m=" << a.m
                                    << " (check supports_norm_prologue() / supports_swiglu_epilogue() first)");
    if (detail::forced_choice(a, &c)) return c;
    if (detail::layer_rule_choice(a, &c)) return c;
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    DS_CUDA_RETURN_IF_ERROR(cudaStreamIsCapturing(stream, &capture));
    if (capture != cudaStreamCaptureStatusNone)
      return detail::record_shared_choice(device, key, detail::static_choice(a));
    DS_ASSIGN_OR_RETURN(const GemmArgs t, timing_args(a));
    // Three launches back to back (under PDL each overlaps the previous one's
    // tail, as consecutive GEMMs of a decode graph do). On the H200 this
    // ranking matched the whole-layer graph measurements of
    // ds_decode_layer_bench except for long k (layer_rule_choice); timing
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
    for (Choice cand : detail::choice_candidates(a)) {
      Status st = launch(cand, t, stream);  // warm-up; also plans cuBLASLt
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
        DS_CUDA_RETURN_IF_ERROR(cudaEventRecord(start.get(), stream));
        for (int i = 0; i < 3; ++i) DS_RETURN_IF_ERROR(launch(cands[ci], t, stream));
        DS_CUDA_RETURN_IF_ERROR(cudaEventRecord(stop.get(), stream));
        DS_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(stop.get()));
        float ms = 0.0f;
        DS_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, start.get(), stop.get()));
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
  Result<std::unique_ptr<Plan>> try_plan(const Key& key, bool fuse_bias) {
    auto plan = std::make_unique<Plan>();
    cublasLtMatmulDesc_t desc = nullptr;
    DS_LT_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    plan->desc.reset(desc);
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    DS_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    DS_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    if (fuse_bias) {
      const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
      const int32_t bias_type = CUDA_R_16BF;
      DS_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
      DS_LT_RETURN_IF_ERROR(
          cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
      // The heuristic reads the bias pointer's alignment: give it one of `key.align`.
      const void* probe = static_cast<const char*>(workspace_probe()) + (key.align % 16);
      DS_LT_RETURN_IF_ERROR(
          cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &probe, sizeof(probe)));
    }
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    DS_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, key.k, key.n, key.k));
    plan->a.reset(a);
    DS_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, key.k, key.m, key.ldx));
    plan->b.reset(b);
    DS_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&d, cuda_type(key.out), key.n, key.m, key.ldy));
    plan->d.reset(d);

    cublasLtMatmulPreference_t pref = nullptr;
    DS_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref));
    PrefPtr pref_owner(pref);
    const uint64_t ws = workspace.bytes();
    DS_LT_RETURN_IF_ERROR(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      DS_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(pref, attr, &key.align, sizeof(key.align)));

    cublasLtMatmulHeuristicResult_t result;
    std::memset(&result, 0, sizeof(result));
    int returned = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(handle.get(), desc, a, b, d, d, pref, 1, &result, &returned);
    // No algorithm: also how cuBLASLt 13 refuses a bf16 bias with an f32 output
    // (CUBLAS_STATUS_INVALID_VALUE, seen on an H200); the caller then falls back
    // to the plain matmul plus the bias kernel.
    if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && returned == 0) ||
        (fuse_bias && st == CUBLAS_STATUS_INVALID_VALUE))
      return std::unique_ptr<Plan>();
    DS_LT_RETURN_IF_ERROR(st);
    plan->algo = result.algo;
    plan->bias_in_epilogue = fuse_bias;
    return plan;
  }

  const void* workspace_probe() const {
    alignas(256) static const char kHostProbe[256] = {};
    return workspace.data() != nullptr ? workspace.data() : kHostProbe;
  }

  // The cached plan for `key`, created on first use.
  Result<Plan*> plan_for(const Key& key) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = plans.find(key);
    if (it != plans.end()) return it->second.get();
    std::unique_ptr<Plan> plan;
    if (key.bias) {
      // cuBLASLt may lack a bf16 bias for an f32 output: then plain matmul + bias kernel.
      DS_ASSIGN_OR_RETURN(plan, try_plan(key, /*fuse_bias=*/true));
    }
    if (!plan) {
      DS_ASSIGN_OR_RETURN(plan, try_plan(key, /*fuse_bias=*/false));
    }
    if (!plan)
      return Status::Error(StrCat() << "cuBLASLt has no algorithm for m=" << key.m << " n=" << key.n << " k=" << key.k
                                    << " out=" << dtype_name(key.out) << " ldx=" << key.ldx << " ldy=" << key.ldy
                                    << " alignment=" << key.align);
    Plan* raw = plan.get();
    plans.emplace(key, std::move(plan));
    return raw;
  }

  // cuBLASLt with the bias in its epilogue when it has one for this output
  // type, and the residual as C with beta = 1 (in place when it is y). Should
  // an algorithm refuse beta != 0, an out-of-place residual is added by
  // add_residual after a beta = 0 product (an in-place one cannot: y is C).
  Status run_cublaslt(const GemmArgs& a, cudaStream_t stream) {
    if (*gemv_only_feature(a) != 0)
      return Status::Error(StrCat() << "gemm: cuBLASLt cannot compute " << gemv_only_feature(a));
    DS_ASSIGN_OR_RETURN(Plan * plan, plan_for(plan_key(a)));
    if (plan->bias_in_epilogue)
      DS_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan->desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                           &a.bias, sizeof(a.bias)));
    const float alpha = 1.0f, one = 1.0f, zero = 0.0f;
    const bool fuse_residual = a.residual != nullptr;
    const void* c = fuse_residual ? a.residual : a.y;
    cublasStatus_t st = cublasLtMatmul(handle.get(), plan->desc.get(), &alpha, a.w, plan->a.get(), a.x,
                                       plan->b.get(), fuse_residual ? &one : &zero, c, plan->d.get(), a.y,
                                       plan->d.get(), &plan->algo, workspace.data(), workspace.bytes(), stream);
    bool residual_pending = false;
    if (st == CUBLAS_STATUS_NOT_SUPPORTED && fuse_residual && a.residual != a.y) {
      st = cublasLtMatmul(handle.get(), plan->desc.get(), &alpha, a.w, plan->a.get(), a.x, plan->b.get(), &zero, a.y,
                          plan->d.get(), a.y, plan->d.get(), &plan->algo, workspace.data(), workspace.bytes(),
                          stream);
      residual_pending = true;
    }
    if (st != CUBLAS_STATUS_SUCCESS) return lt_status(st, "cublasLtMatmul", __FILE__, __LINE__);
    if (a.bias != nullptr && !plan->bias_in_epilogue) {
      if (a.out_dtype != DType::kF32)
        return Status::Error("internal: cuBLASLt bias epilogue unavailable for a bf16 output");
      DS_RETURN_IF_ERROR(detail::launch_add_bias_f32(static_cast<float*>(a.y), a.bias, a.m, a.n, a.ldy, stream));
    }
    if (residual_pending) DS_RETURN_IF_ERROR(add_residual(a.y, a.residual, a.out_dtype, a.m, a.n, a.ldy, stream));
    return Status::Ok();
  }
};

GemmRunner::GemmRunner() : impl_(std::make_unique<Impl>()) {}
GemmRunner::~GemmRunner() = default;

Result<std::unique_ptr<GemmRunner>> GemmRunner::create(size_t workspace_bytes) {
  std::unique_ptr<GemmRunner> runner(new GemmRunner());
  cublasLtHandle_t h = nullptr;
  DS_LT_RETURN_IF_ERROR(cublasLtCreate(&h));
  runner->impl_->handle.reset(h);
  Impl& impl = *runner->impl_;
  if (workspace_bytes > 0) {
    DS_ASSIGN_OR_RETURN(impl.workspace, DeviceBuffer::allocate(workspace_bytes));
  }
  DS_ASSIGN_OR_RETURN(impl.gemv_scratch, DeviceBuffer::allocate(detail::gemv_scratch_bytes()));
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(impl.gemv_scratch.data(), 0, impl.gemv_scratch.bytes()));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());  // visible to every stream, blocking or not
  int device = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&impl.scratch.num_sms, cudaDevAttrMultiProcessorCount, device));
  impl.scratch.partials = static_cast<float*>(impl.gemv_scratch.data());
  impl.scratch.counters = reinterpret_cast<unsigned*>(impl.scratch.partials + detail::kGemvMaxSplitBlocks * 128);
  DS_ASSIGN_OR_RETURN(impl.start, Event::create());
  DS_ASSIGN_OR_RETURN(impl.stop, Event::create());
  return runner;
}

size_t GemmRunner::workspace_bytes() const { return impl_->workspace.bytes(); }

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
  if (!detail::swiglu_unsupported_reason(a).empty()) return false;
  // A DSRT_GEMM_KERNEL without the epilogue (cublaslt, gemv-mma, gemv-warp-deep
  // at m > 1): the caller launches the SiLU*mul group and y is written.
  detail::Choice forced;
  if (detail::env_forced_kernel(&forced) && !detail::choice_can_run(forced, a.m, false, /*swiglu=*/true))
    return false;
  return true;
}

Status GemmRunner::run(const GemmArgs& args, cudaStream_t stream) { return run(args, stream, GemmPath::kAuto); }

Status GemmRunner::run(const GemmArgs& args, cudaStream_t stream, GemmPath path) {
  GemmArgs a = args;
  DS_RETURN_IF_ERROR(check_args(a));
  if (a.m == 0) return Status::Ok();
  const std::string gemv_reason = detail::gemv_unsupported_reason(a);
  if (const char* only = gemv_only_feature(a); *only != 0) {
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
  return impl_->run_cublaslt(a, stream);
}

Status GemmRunner::prepare(const GemmArgs& args, cudaStream_t stream) {
  GemmArgs a = args;
  DS_RETURN_IF_ERROR(check_args(a));
  if (a.m == 0) return Status::Ok();
  const std::string gemv_reason = detail::gemv_unsupported_reason(a);
  if (gemv_reason.empty()) return impl_->choose(a, stream).status();
  if (const char* only = gemv_only_feature(a); *only != 0)
    return Status::Error(StrCat() << "gemm: no GEMV kernel can compute " << only << " here: " << gemv_reason);
  return impl_->plan_for(plan_key(a)).status();
}

std::string GemmRunner::chosen_kernel(const GemmArgs& args) const {
  GemmArgs a = args;
  if (!check_args(a).ok()) return "invalid";
  const std::string gemv_reason = detail::gemv_unsupported_reason(a);
  if (!gemv_reason.empty()) return *gemv_only_feature(a) != 0 ? "unsupported (" + gemv_reason + ")" : "cublaslt";
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return "unknown device";
  }
  Choice c;
  if (detail::lookup_shared_choice(device, detail::make_problem_key(a), &c)) return detail::choice_name(c);
  if (*gemv_only_feature(a) != 0 && detail::env_forced_kernel(&c) && !detail::choice_can_run(c, a))
    return std::string("unsupported (DSRT_GEMM_KERNEL=") + detail::choice_name(c) + " has no " +
           (gemv_only_feature(a) + 4) + ")";
  if (detail::forced_choice(a, &c)) return std::string(detail::choice_name(c)) + " (DSRT_GEMM_KERNEL)";
  if (detail::layer_rule_choice(a, &c)) return std::string(detail::choice_name(c)) + " (long k, PDL)";
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
  return impl_->plan_for(key).status();
}

}  // namespace ds::cuda
