// GEMM-shaped reference kernels: y = x · wᵀ (+ b), w [N, K] as in HF checkpoints.
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

// out[r][n] = sum_k x[r][k] * w[n][k] + bias[n]; bias may be null.
Status linear(const float* x, const void* w, DType w_dtype, const void* bias, DType bias_dtype,
              const LinearParams& p, float* out);

// Logits for selected rows: out[i][v] = x[rows[i]] · w[v], float32 [num_rows, vocab].
// Errors on a row index outside [0, num_tokens).
Status logits(const float* x, int64_t num_tokens, int64_t hidden, const int32_t* rows, int64_t num_rows,
              const void* w, DType w_dtype, int64_t vocab, float* out);

}  // namespace ds::ref
