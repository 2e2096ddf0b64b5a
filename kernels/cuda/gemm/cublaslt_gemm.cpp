// CublasLtGemm (cublaslt_gemm.h).
//
// Row-major y[m, n] = x[m, k] · w[n, k]ᵀ is the column-major product
// yᵀ (n x m, ld ldy) = op(A) · B with A = w viewed as a k x n column-major
// matrix (lda = k, transa = T) and B = xᵀ (k x m, ldb = ldx, transb = N).
// CUBLASLT_EPILOGUE_BIAS adds a vector along D's rows (= n): the per-feature bias.
// A residual is C with beta = 1 (C has D's layout; C == D is cuBLASLt's
// in-place case): D = acc + bias + residual in f32, one rounding.
#include "kernels/cuda/gemm/cublaslt_gemm.h"

#include <cublasLt.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "kernels/cuda/gemm/add_residual.h"
#include "kernels/cuda/gemm/gemv.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda::detail {
namespace {

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

using Key = ProblemKey;
using KeyHash = ProblemKeyHash;

cudaDataType_t cuda_type(DType t) { return t == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF; }

}  // namespace

ProblemKey cublaslt_plan_key(const GemmArgs& a) {
  ProblemKey key = make_problem_key(a);
  key.residual = key.residual_in_place = false;
  key.norm = 0;
  key.ld_src = 0;
  key.swiglu = false;
  key.ld_swiglu = 0;
  return key;
}

const char* gemv_only_feature(const GemmArgs& a) {
  if (a.swiglu_out != nullptr) return "the SwiGLU epilogue";
  if (a.norm.src != nullptr) return "the RMSNorm prologue";
  if (a.norm_out.slot != nullptr || a.norm_out.x != nullptr || a.norm_in.slot != nullptr) return "the deferred RMSNorm";
  return "";
}

struct CublasLtGemm::Impl {
  HandlePtr handle;
  DeviceBuffer workspace;
  std::mutex mu;
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans;

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
    DS_ASSIGN_OR_RETURN(Plan * plan, plan_for(cublaslt_plan_key(a)));
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
      DS_RETURN_IF_ERROR(launch_add_bias_f32(static_cast<float*>(a.y), a.bias, a.m, a.n, a.ldy, stream));
    }
    if (residual_pending) DS_RETURN_IF_ERROR(add_residual(a.y, a.residual, a.out_dtype, a.m, a.n, a.ldy, stream));
    return Status::Ok();
  }
};

CublasLtGemm::CublasLtGemm() : impl_(std::make_unique<Impl>()) {}
CublasLtGemm::~CublasLtGemm() = default;

Result<std::unique_ptr<CublasLtGemm>> CublasLtGemm::create(size_t workspace_bytes) {
  std::unique_ptr<CublasLtGemm> g(new CublasLtGemm());
  cublasLtHandle_t h = nullptr;
  DS_LT_RETURN_IF_ERROR(cublasLtCreate(&h));
  g->impl_->handle.reset(h);
  if (workspace_bytes > 0) {
    DS_ASSIGN_OR_RETURN(g->impl_->workspace, DeviceBuffer::allocate(workspace_bytes));
  }
  return g;
}

size_t CublasLtGemm::workspace_bytes() const { return impl_->workspace.bytes(); }

Status CublasLtGemm::run(const GemmArgs& a, cudaStream_t stream) { return impl_->run_cublaslt(a, stream); }

Status CublasLtGemm::prepare(const ProblemKey& key) { return impl_->plan_for(key).status(); }

}  // namespace ds::cuda::detail
