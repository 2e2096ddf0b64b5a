// GemmRunner: cuBLASLt for general shapes, the GEMV kernel (gemv.cu) for small m.
//
// Row-major y[m, n] = x[m, k] · w[n, k]ᵀ is the column-major product
// yᵀ (n x m, ld ldy) = op(A) · B with A = w viewed as a k x n column-major
// matrix (lda = k, transa = T) and B = xᵀ (k x m, ldb = ldx, transb = N).
// CUBLASLT_EPILOGUE_BIAS adds a vector along D's rows (= n): the per-feature bias.
#include <cublasLt.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemv.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/pdl.h"

namespace ds::cuda {
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

struct Key {
  int64_t m, n, k, ldx, ldy;
  DType out;
  bool bias;
  uint32_t align;  // smallest 16/8/4/2-byte alignment of the pointers
  bool operator==(const Key& o) const {
    return m == o.m && n == o.n && k == o.k && ldx == o.ldx && ldy == o.ldy && out == o.out && bias == o.bias &&
           align == o.align;
  }
};
struct KeyHash {
  size_t operator()(const Key& key) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(static_cast<uint64_t>(key.m));
    mix(static_cast<uint64_t>(key.n));
    mix(static_cast<uint64_t>(key.k));
    mix(static_cast<uint64_t>(key.ldx));
    mix(static_cast<uint64_t>(key.ldy));
    mix(static_cast<uint64_t>(key.out) << 2 | (key.bias ? 1 : 0));
    mix(key.align);
    return static_cast<size_t>(h);
  }
};

uint32_t pointer_alignment(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  for (uint32_t a = 16; a > 2; a /= 2)
    if (v % a == 0) return a;
  return 2;
}

cudaDataType_t cuda_type(DType t) { return t == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF; }

Key make_key(const GemmArgs& a) {
  uint32_t align = std::min({pointer_alignment(a.x), pointer_alignment(a.w), pointer_alignment(a.y)});
  if (a.bias != nullptr) align = std::min(align, pointer_alignment(a.bias));
  return Key{a.m, a.n, a.k, a.ldx, a.ldy, a.out_dtype, a.bias != nullptr, align};
}

// The kernel kAuto uses for a GEMV-eligible problem.
enum class Choice : uint8_t { kCublasLt, kGemvWarp, kGemvWarpDeep, kGemvAsync, kGemvMma };

const char* choice_name(Choice c) {
  switch (c) {
    case Choice::kCublasLt: return "cublaslt";
    case Choice::kGemvWarp: return "gemv-warp";
    case Choice::kGemvWarpDeep: return "gemv-warp-deep";
    case Choice::kGemvAsync: return "gemv-async";
    case Choice::kGemvMma: break;
  }
  return "gemv-mma";
}

// DSRT_GEMM_KERNEL=<choice name> (benchmarks, A/B runs): kAuto uses that kernel
// for every GEMV-eligible problem it can run instead of timing the candidates.
bool forced_choice(const GemmArgs& a, Choice* out) {
  static const char* env = std::getenv("DSRT_GEMM_KERNEL");
  if (env == nullptr || *env == 0) return false;
  for (Choice c : {Choice::kCublasLt, Choice::kGemvWarp, Choice::kGemvWarpDeep, Choice::kGemvAsync, Choice::kGemvMma}) {
    if (std::strcmp(env, choice_name(c)) != 0) continue;
    const bool warp = c == Choice::kGemvWarp || c == Choice::kGemvAsync;
    const bool deep = c == Choice::kGemvWarpDeep;
    if ((warp && a.m > detail::kGemvWarpMaxM) || (deep && a.m != 1)) return false;
    *out = c;
    return true;
  }
  return false;
}

// Long-k problems at m <= 2 (the MLP down projection, k >= 4n) take the warp
// GEMV while PDL is on, without timing: alone or back to back cuBLASLt is as
// fast or faster (H200: 7B down 39 vs 42 us), but inside a decode layer the
// GEMV streams its first weights while the SiLU*mul kernel before it runs and
// the whole layer was faster with it (ds_decode_layer_bench, H200, PDL: 7B
// 152.4 vs 160.9 us, 32B 281.5 vs 292.5 us per layer).
bool layer_rule_choice(const GemmArgs& a, Choice* out) {
  // The process-wide PDL setting (DSRT_PDL, device), not a thread's PdlScope:
  // every runner of the process must pick the same kernel (bit-identical results).
  if (a.m > 2 || a.k < 4 * a.n) return false;  // measured at m = 1; the warp kernel's x reads grow with m
  if (detail::pdl_env_off() || !detail::pdl_device_ok()) return false;
  *out = Choice::kGemvWarp;
  return true;
}

// Used without a measurement (first use inside a graph capture). From the
// H200 report of ds_cuda_gemm_tests: the warp kernel beats cuBLASLt at m <= 2
// on many-row shapes (gate_up, lm_head: 4.2-4.6 vs 3.9-4.4 TB/s) and on small
// ones (launch-bound); cuBLASLt wins on few-row long-k shapes and at m >= 4.
Choice static_choice(const GemmArgs& a) {
  if (a.m <= 2 && (a.n >= 16384 || a.n * a.k <= (int64_t{16} << 20))) return Choice::kGemvWarp;
  return Choice::kCublasLt;
}

// The timed GEMV-vs-cuBLASLt choices, shared by every runner of the process
// (keyed by device and problem): two executors of one process (e.g. a CUDA-graph
// and an eager one, or a re-created executor) then run the same kernel for the
// same problem, so their results are bit-identical, and each problem is timed once.
struct ChoiceKey {
  int device;
  Key key;
  bool operator==(const ChoiceKey& o) const { return device == o.device && key == o.key; }
};
struct ChoiceKeyHash {
  size_t operator()(const ChoiceKey& k) const { return KeyHash()(k.key) ^ (static_cast<size_t>(k.device) * 0x9E3779B97F4A7C15ull); }
};
struct SharedChoices {
  std::mutex mu;
  std::unordered_map<ChoiceKey, Choice, ChoiceKeyHash> map;
};
SharedChoices& shared_choices() {
  static SharedChoices* c = new SharedChoices();  // never destroyed: runners may outlive static teardown order
  return *c;
}

Result<ChoiceKey> choice_key(const GemmArgs& a) {
  int device = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  return ChoiceKey{device, make_key(a)};
}

}  // namespace

struct GemmRunner::Impl {
  HandlePtr handle;
  DeviceBuffer workspace;
  DeviceBuffer gemv_scratch;  // split-k partials and counters (zeroed once)
  detail::GemvScratch scratch;
  Event start, stop;          // timing of the GEMV-vs-cuBLASLt choice
  std::mutex mu;
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans;

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

  // The fastest kernel for a GEMV-eligible problem, measured once per key on
  // the caller's buffers (y is overwritten) and cached. Inside a graph capture
  // an unmeasured key gets static_choice() instead (nothing is timed or cached).
  Result<Choice> choose(const GemmArgs& a, cudaStream_t stream) {
    DS_ASSIGN_OR_RETURN(const ChoiceKey key, choice_key(a));
    SharedChoices& shared = shared_choices();
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      auto it = shared.map.find(key);
      if (it != shared.map.end()) return it->second;
    }
    if (Choice forced; forced_choice(a, &forced)) return forced;
    if (Choice rule; layer_rule_choice(a, &rule)) return rule;
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    DS_CUDA_RETURN_IF_ERROR(cudaStreamIsCapturing(stream, &capture));
    if (capture != cudaStreamCaptureStatusNone) return static_choice(a);
    std::vector<Choice> candidates = {Choice::kCublasLt, Choice::kGemvMma};
    if (a.m <= detail::kGemvWarpMaxM) candidates.push_back(Choice::kGemvWarp);
    if (a.m <= detail::kGemvWarpMaxM) candidates.push_back(Choice::kGemvAsync);
    if (a.m == 1) candidates.push_back(Choice::kGemvWarpDeep);
    // Three launches back to back (under PDL each overlaps the previous one's
    // tail, as consecutive GEMMs of a decode graph do). On the H200 this
    // ranking matched the whole-layer graph measurements of
    // ds_decode_layer_bench except for long k (layer_rule_choice); timing
    // behind a latency-bound kernel with L2 flushed instead picked GEMVs that
    // lost 8 us per 32B layer to cuBLASLt.
    Choice best = static_choice(a);
    float best_ms = 0.0f;
    bool have = false;
    Status first_error;
    for (Choice c : candidates) {
      Status st = launch(c, a, stream);  // warm-up; also plans cuBLASLt
      if (!st.ok()) {
        if (first_error.ok()) first_error = st;
        continue;
      }
      DS_CUDA_RETURN_IF_ERROR(cudaEventRecord(start.get(), stream));
      for (int i = 0; i < 3; ++i) DS_RETURN_IF_ERROR(launch(c, a, stream));
      DS_CUDA_RETURN_IF_ERROR(cudaEventRecord(stop.get(), stream));
      DS_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(stop.get()));
      float ms = 0.0f;
      DS_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, start.get(), stop.get()));
      if (!have || ms < best_ms) {
        best = c;
        best_ms = ms;
        have = true;
      }
    }
    if (!have) return first_error;
    std::lock_guard<std::mutex> lock(shared.mu);
    // Another runner may have timed the same problem meanwhile: its choice wins.
    return shared.map.emplace(key, best).first->second;
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

  Status run_cublaslt(const GemmArgs& a, cudaStream_t stream) {
    DS_ASSIGN_OR_RETURN(Plan * plan, plan_for(make_key(a)));
    if (plan->bias_in_epilogue)
      DS_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan->desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                           &a.bias, sizeof(a.bias)));
    const float alpha = 1.0f, beta = 0.0f;
    DS_LT_RETURN_IF_ERROR(cublasLtMatmul(handle.get(), plan->desc.get(), &alpha, a.w, plan->a.get(), a.x,
                                         plan->b.get(), &beta, a.y, plan->d.get(), a.y, plan->d.get(), &plan->algo,
                                         workspace.data(), workspace.bytes(), stream));
    if (a.bias != nullptr && !plan->bias_in_epilogue) {
      if (a.out_dtype != DType::kF32)
        return Status::Error("internal: cuBLASLt bias epilogue unavailable for a bf16 output");
      DS_RETURN_IF_ERROR(detail::launch_add_bias_f32(static_cast<float*>(a.y), a.bias, a.m, a.n, a.ldy, stream));
    }
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
  if (a.ldx == 0) a.ldx = a.k;
  if (a.ldy == 0) a.ldy = a.n;
  if (a.ldx < a.k) return Status::Error(StrCat() << "gemm: ldx = " << a.ldx << " is smaller than k = " << a.k);
  if (a.ldy < a.n) return Status::Error(StrCat() << "gemm: ldy = " << a.ldy << " is smaller than n = " << a.n);
  if (need_pointers && a.m > 0 && (a.x == nullptr || a.w == nullptr || a.y == nullptr))
    return Status::Error("gemm: x, w and y must be non-null");
  auto odd = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 1u) != 0; };
  if (odd(a.x) || odd(a.w) || odd(a.bias) || (a.out_dtype == DType::kF32 && (reinterpret_cast<uintptr_t>(a.y) & 3u)) ||
      odd(a.y))
    return Status::Error("gemm: a pointer is not aligned to its element size");
  return Status::Ok();
}

Status GemmRunner::run(const GemmArgs& args, cudaStream_t stream) { return run(args, stream, GemmPath::kAuto); }

Status GemmRunner::run(const GemmArgs& args, cudaStream_t stream, GemmPath path) {
  GemmArgs a = args;
  DS_RETURN_IF_ERROR(check_args(a));
  if (a.m == 0) return Status::Ok();
  const std::string gemv_reason = detail::gemv_unsupported_reason(a);
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
  if (detail::gemv_unsupported_reason(a).empty()) return impl_->choose(a, stream).status();
  return impl_->plan_for(make_key(a)).status();
}

std::string GemmRunner::chosen_kernel(const GemmArgs& args) const {
  GemmArgs a = args;
  if (!check_args(a).ok()) return "invalid";
  if (!detail::gemv_unsupported_reason(a).empty()) return "cublaslt";
  if (Choice forced; forced_choice(a, &forced)) return std::string(choice_name(forced)) + " (DSRT_GEMM_KERNEL)";
  if (Choice rule; layer_rule_choice(a, &rule)) return std::string(choice_name(rule)) + " (long k, PDL)";
  auto key = choice_key(a);
  if (!key.ok()) return "unknown device";
  SharedChoices& shared = shared_choices();
  std::lock_guard<std::mutex> lock(shared.mu);
  auto it = shared.map.find(*key);
  return it == shared.map.end() ? std::string("unmeasured (") + choice_name(static_choice(a)) + ")"
                                : choice_name(it->second);
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
  const Key key{m, n, k, a.ldx, a.ldy, out_dtype, has_bias, 16};
  return impl_->plan_for(key).status();
}

}  // namespace ds::cuda
