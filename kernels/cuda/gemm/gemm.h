// Dense GEMMs of the decoder: y[M,N] = x[M,K] · w[N,K]ᵀ (+ bias[N]), all
// row-major as in HF checkpoints (w is [out_features, in_features]).
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

struct GemmArgs {
  const void* x = nullptr;     // [m, k] bf16, row stride ldx elements
  const void* w = nullptr;     // [n, k] bf16, contiguous
  const void* bias = nullptr;  // [n] bf16 or null
  void* y = nullptr;           // [m, n] out_dtype (bf16 or f32), row stride ldy elements
  int64_t m = 0, n = 0, k = 0;
  int64_t ldx = 0;             // 0: k
  int64_t ldy = 0;             // 0: n
  DType out_dtype = DType::kBF16;
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
  Status run(const GemmArgs& args, cudaStream_t stream);
  Status run(const GemmArgs& args, cudaStream_t stream, GemmPath path);

  // Runs the heuristic for a shape ahead of time (before graph capture).
  Status prepare(int64_t m, int64_t n, int64_t k, DType out_dtype, bool has_bias);

  // For m <= kGemvMaxM, kAuto picks between the GEMV kernels and cuBLASLt by
  // timing them once per problem (shape, strides, dtype, bias, alignment) on
  // the real buffers, at the first run() outside a graph capture or here
  // (outside a capture; synchronizes the stream; y is overwritten). An
  // unmeasured problem met inside a capture uses a fixed rule.
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
