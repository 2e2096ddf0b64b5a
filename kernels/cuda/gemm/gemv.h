// Internal launchers of ds_cuda_gemm (not part of the executor contract): the
// small-M GEMV kernel and the bias epilogue used when cuBLASLt has no fused
// bias for the requested output type. Arguments are validated by GemmRunner.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "kernels/cuda/gemm/gemm.h"
#include "runtime/common/status.h"

namespace ds::cuda::detail {

// Empty when the GEMV kernel can compute `a` (1 <= m <= kGemvMaxM, k % 8 == 0,
// ldx % 8 == 0, x and w 16-byte aligned); otherwise the reason it cannot.
std::string gemv_unsupported_reason(const GemmArgs& a);

// y = x · wᵀ (+ bias) with the GEMV kernel; `a` is complete (ldx/ldy resolved)
// and gemv_unsupported_reason(a) is empty.
Status launch_gemv(const GemmArgs& a, cudaStream_t stream);

// y[r, c] += bias[c] for r < m, c < n; y f32 with row stride ldy, bias bf16.
Status launch_add_bias_f32(float* y, const void* bias, int64_t m, int64_t n, int64_t ldy, cudaStream_t stream);

}  // namespace ds::cuda::detail
