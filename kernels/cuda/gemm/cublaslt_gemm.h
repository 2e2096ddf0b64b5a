// Internal to ds_cuda_gemm: the cuBLASLt side of GemmRunner (gemm.h). One
// handle and workspace; per problem (cublaslt_plan_key) the matmul descriptor,
// the layouts and the heuristic's algorithm, created once and cached. The bias
// goes in cuBLASLt's epilogue where it has one for the output type (else a
// kernel adds it after the product); the residual is C with beta = 1.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemm_choice.h"
#include "runtime/common/status.h"

namespace ds::cuda::detail {

// The key of a problem's cuBLASLt plan: its ProblemKey without what cuBLASLt
// takes at run time (the residual is a beta) or never computes (the RMSNorm
// prologue, the SwiGLU epilogue); the pointers' alignment stays in it.
ProblemKey cublaslt_plan_key(const GemmArgs& a);

// What only the warp GEMV kernels compute ("the SwiGLU epilogue", "the RMSNorm
// prologue"), for error messages; "" when neither is asked for.
const char* gemv_only_feature(const GemmArgs& a);

class CublasLtGemm {
 public:
  static Result<std::unique_ptr<CublasLtGemm>> create(size_t workspace_bytes);
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  size_t workspace_bytes() const;
  // y = x w^T (+ bias) (+ residual) on `stream`, a: validated with ldx/ldy resolved.
  // An error for what only the GEMV kernels compute.
  Status run(const GemmArgs& a, cudaStream_t stream);
  // Creates the plan of `key` now (not a stream operation: safe before a capture).
  Status prepare(const ProblemKey& key);

 private:
  CublasLtGemm();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds::cuda::detail
