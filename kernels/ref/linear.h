// GEMM-shaped reference kernels: y = x · wᵀ (+ b) (+ residual), w [N, K] as in HF checkpoints.
#pragma once

#include <cstdint>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"

namespace ds::ref {

struct LinearParams {
  int64_t rows = 0;   // tokens
  int64_t in = 0;     // K
  int64_t out = 0;    // N
};

// out[r][n] = sum_k x[r][k] * w[n][k] + bias[n] + residual[r][n]; bias and residual may be null.
// residual is [rows, out] float32 and may be `out` itself (in place); x must not alias out.
// The terms are added in that order (the dot product, then bias, then residual), so a
// fused residual gives the same floats as a separate add after the linear.
Status linear(const float* x, const void* w, DType w_dtype, const void* bias, DType bias_dtype,
              const LinearParams& p, float* out, const float* residual = nullptr);

// Logits for selected rows: out[i][v] = x[rows[i]] · w[v], float32 [num_rows, vocab].
// Errors on a row index outside [0, num_tokens).
Status logits(const float* x, int64_t num_tokens, int64_t hidden, const int32_t* rows, int64_t num_rows,
              const void* w, DType w_dtype, int64_t vocab, float* out);

}  // namespace ds::ref
