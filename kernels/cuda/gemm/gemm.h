// Dense GEMMs of the decoder: y[M,N] = x[M,K] · w[N,K]ᵀ (+ bias[N]) (+ residual[M,N]),
// all row-major as in HF checkpoints (w is [out_features, in_features]).
// Epilogue order: acc (+ bias) (+ residual) in f32, then one rounding to out_dtype.
// At decode (m <= kNormPrologueMaxM) the GEMV kernels can also compute the
// RMSNorm that produces x themselves (NormPrologue): x is then not read.
// At decode (m <= kGemvWarpMaxM, gemv.h: 4) the warp GEMV kernels can also
// finish the MLP's gate_up projection with SwiGLU (GemmArgs::swiglu_out).
//
// GemmRunner owns a cuBLASLt handle and workspace and caches the heuristic's
// algorithm per (M, N, K, out dtype, bias) so that steady-state launches do no
// host-side search (CUDA-graph capture safe after the first call per shape).
// Small M (decode at low batch) goes to a hand-written GEMV-class kernel that
// streams w once with 16-byte loads; it must reach >= 90% of the device's
// copy bandwidth on the 7B/32B layer shapes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"

namespace ds::cuda {

// Which kernel computes a GEMM. kAuto: the GEMV kernel for m <= kGemvMaxM when
// its layout conditions hold (k % 8 == 0, ldx % 8 == 0, x and w 16-byte aligned),
// cuBLASLt otherwise. The forced paths exist for tests and the ceilings bench;
// kGemv on arguments it cannot handle is an error.
enum class GemmPath { kAuto, kCublasLt, kGemv };

// Largest m for which kAuto considers the GEMV kernels (then timed against
// cuBLASLt per problem, see prepare(args, stream)): one n8 MMA fragment.
constexpr int64_t kGemvMaxM = 8;

// Largest m for which the warp GEMV kernels compute the RMSNorm prologue.
constexpr int64_t kNormPrologueMaxM = 2;

// x[i, j] = src[i, j] * rsqrt(mean_j(src[i, :]^2) + eps) * gamma[j], computed in
// f32 inside the GEMV (decode only, see GemmRunner::supports_norm_prologue).
struct NormPrologue {
  const void* src = nullptr;  // [m, k] f32 or bf16, row stride ld_src elements (0: k); null: no prologue
  DType src_dtype = DType::kF32;
  int64_t ld_src = 0;
  const void* gamma = nullptr;  // bf16 [k]
  float eps = 1e-6f;
};

// Deferred RMSNorm (batch-1 decode, warp GEMV kernels only): the RMSNorm
// x = h * rsqrt(mean(h^2) + eps) * gamma between a linear P that writes h and a
// linear L that reads x is not launched. P (DeferredNormOut) also writes
// x' = bf16(h * gamma) where x lives and adds the squares of its stored h into
// a DeferredNormSlot; L (DeferredNormIn) reads x' as its x and scales each dot
// by rsqrt(sum / k + eps) before its bias. P's sums go to 32 double partials
// (output column % 32) with atomics, which L's warps add in a fixed order: the
// f32 scale is the same in every run unless the double sums' last bits straddle
// an f32 rounding boundary. The caller zeroes the slot before P (one memset
// for all of a step's slots: a reset by L's blocks themselves, one arrival
// atomic per block on one counter, cost 6% of 7B decode on the H200).
struct DeferredNormSlot {
  double ss[32];
};
constexpr int64_t kDeferredNormMaxM = 1;
struct DeferredNormOut {
  DeferredNormSlot* slot = nullptr;  // null: off
  void* x = nullptr;                 // bf16 [m, n] (row stride ld_x; 0: n): bf16(y * gamma), y as stored
  int64_t ld_x = 0;
  const void* gamma = nullptr;       // bf16 [n]
};
struct DeferredNormIn {
  DeferredNormSlot* slot = nullptr;  // null: off
  float eps = 1e-6f;
};

struct GemmArgs {
  const void* x = nullptr;     // [m, k] bf16, row stride ldx elements
  const void* w = nullptr;     // [n, k] bf16, contiguous
  const void* bias = nullptr;  // [n] bf16 or null
  void* y = nullptr;           // [m, n] out_dtype (bf16 or f32), row stride ldy elements
  int64_t m = 0, n = 0, k = 0;
  int64_t ldx = 0;             // 0: k
  int64_t ldy = 0;             // 0: n
  DType out_dtype = DType::kBF16;
  // y = x·wᵀ + bias + residual. residual: [m, n] of out_dtype, row stride ldy; equal to y (in
  // place) or not overlapping it.
  const void* residual = nullptr;
  // Decode prologue (GEMV path only): when norm.src != nullptr, x is NOT read (it may be null).
  NormPrologue norm;
  // SwiGLU epilogue (warp GEMV kernels only): w is [2I, k] (gate rows [0, I), up rows [I, 2I)),
  // n = 2I; the kernel writes swiglu_out[i, j] = bf16(silu(g) * u) with g = x·w[j] (+ bias[j]),
  // u = x·w[I + j] (+ bias[I + j]) in f32 (silu(v) = v / (1 + exp(-v)), as dscc's generated
  // silu), for j < I, row stride ld_swiglu (0: I); y is not written (may be null). No residual
  // and no RMSNorm prologue with it; out_dtype must be bf16; swiglu_out must not overlap x.
  void* swiglu_out = nullptr;
  int64_t ld_swiglu = 0;
  // Warp-row and tensor-core GEMV kernels only (cuBLASLt, gemv-async and the
  // SwiGLU epilogue kernels ignore it): each warp first issues one bulk L2
  // prefetch of its whole weight slice, before its PDL wait
  // (runtime/cuda/l2_prefetch.cuh). A hint: same results. The executor sets it,
  // opt-in, on linears whose output goes to an all-reduce (CudaExecutor::Impl::mark_weight_prefetch).
  bool prefetch_weights = false;
  // Deferred RMSNorm (see DeferredNormSlot; m <= kDeferredNormMaxM, the warp
  // GEMV kernels: kAuto times only those). norm_out: this linear is P (out
  // dtype f32 or bf16, no SwiGLU epilogue); norm_in: this linear is L (x is
  // read, no RMSNorm prologue). Check supports_deferred_norm() first.
  DeferredNormOut norm_out;
  DeferredNormIn norm_in;
};

class GemmRunner {
 public:
  // workspace_bytes: cuBLASLt workspace (device memory owned by the runner).
  static Result<std::unique_ptr<GemmRunner>> create(size_t workspace_bytes = 32u << 20);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // Checks the arguments (null pointers, sizes, dtypes, 16-byte alignment where
  // the fast paths need it) and launches on `stream`. Never synchronizes, except
  // the first kAuto run of a GEMV-sized problem outside a capture (see prepare).
  // With norm.src set only the GEMV kernels that compute the prologue are used
  // (kAuto times only those; kCublasLt, or a DSRT_GEMM_KERNEL that cannot run
  // it, is an error): check supports_norm_prologue() first.
  Status run(const GemmArgs& args, cudaStream_t stream);
  Status run(const GemmArgs& args, cudaStream_t stream, GemmPath path);

  // Whether run(args) can compute args.norm's RMSNorm prologue (norm.src and
  // norm.gamma may still be null here: only the shape, strides, dtypes and the
  // alignment of the pointers that are set are checked). True iff
  // 1 <= m <= kNormPrologueMaxM, k % 8 == 0, w (and src/gamma, when set) 16-byte
  // aligned, ld_src a multiple of 16 bytes, src f32 or bf16 and not overlapping y, and DSRT_GEMM_KERNEL
  // does not force a kernel without the prologue. Cheap: no launch.
  bool supports_norm_prologue(const GemmArgs& args) const;

  // Whether run(args) can compute the SwiGLU epilogue (args.swiglu_out; it and
  // y may be null here: only shapes, strides, dtypes and the alignment of the
  // pointers that are set are checked). True iff 1 <= m <= 4 (kGemvWarpMaxM),
  // n even, k % 8 == 0, ldx % 8 == 0, x and w 16-byte aligned, out_dtype bf16,
  // ld_swiglu (0: n / 2) >= n / 2, no residual, no norm prologue, swiglu_out
  // not overlapping x, and DSRT_GEMM_KERNEL does not force a kernel without
  // the epilogue. A warp of the warp kernels streams gate row j and up row
  // I + j (k split over 1, 2 or 4 warps per pair). Cheap: no launch.
  bool supports_swiglu_epilogue(const GemmArgs& args) const;

  // Whether run(args) can compute args.norm_out / args.norm_in (the deferred
  // RMSNorm; false when neither slot is set): m <= kDeferredNormMaxM,
  // the GEMV conditions (gemv_unsupported_reason), no RMSNorm prologue with
  // norm_in, no SwiGLU epilogue with norm_out, out dtype f32 or bf16, and
  // DSRT_GEMM_KERNEL does not force a kernel without it. Cheap: no launch.
  bool supports_deferred_norm(const GemmArgs& args) const;

  // Runs the heuristic for a shape ahead of time (before graph capture).
  Status prepare(int64_t m, int64_t n, int64_t k, DType out_dtype, bool has_bias);

  // For m <= kGemvMaxM, kAuto picks between the GEMV kernels and cuBLASLt by
  // timing them once per problem (shape, strides, dtype, bias, residual,
  // prologue, alignment) on the real buffers, at the first run() outside a
  // graph capture or here (outside a capture; synchronizes the stream; y, or
  // swiglu_out, is overwritten unless the residual is in place, where y is preserved). The
  // choice is process-wide per (device, problem): every GemmRunner of the
  // process uses it. An unmeasured problem met inside a capture uses a fixed
  // rule, and that choice is recorded as the problem's choice too.
  Status prepare(const GemmArgs& args, cudaStream_t stream);
  // The kernel kAuto uses for `args` ("cublaslt", "gemv-warp", "gemv-mma", ...,
  // or "unmeasured (...)"), for logs and tests. The environment variable
  // DSRT_GEMM_KERNEL=<one of these names> forces kAuto's choice for every
  // GEMV-sized problem that kernel can run (benchmarks and A/B runs).
  std::string chosen_kernel(const GemmArgs& args) const;

  size_t workspace_bytes() const;

 private:
  GemmRunner();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds::cuda
