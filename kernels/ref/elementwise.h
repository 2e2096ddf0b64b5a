// Row-wise and elementwise reference kernels on float32 activations.
#pragma once

#include <cstdint>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"

namespace ds::ref {

// out = x * sigmoid(x), n elements.
void silu(const float* x, int64_t n, float* out);
// out = a * b, n elements.
void mul(const float* a, const float* b, int64_t n, float* out);
// out = a + b, n elements.
void add(const float* a, const float* b, int64_t n, float* out);

// Columns [offset, offset + size) of a [rows, cols] matrix -> [rows, size].
Status slice_cols(const float* x, int64_t rows, int64_t cols, int64_t offset, int64_t size, float* out);

// out[t] = table[ids[t]] (table [vocab, hidden] in `table_dtype`), to float32.
// Errors on an id outside [0, vocab).
Status embedding(const int32_t* ids, int64_t num_tokens, const void* table, DType table_dtype, int64_t vocab,
                 int64_t hidden, float* out);

// Vocab-parallel embedding (tensor parallelism): `table` holds rows for ids
// [vocab_start, vocab_start + rows); other ids give a zero row. Ids outside
// [0, total_vocab) are an error.
Status embedding_vocab_parallel(const int32_t* ids, int64_t num_tokens, const void* table, DType table_dtype,
                                int64_t vocab_start, int64_t rows, int64_t total_vocab, int64_t hidden, float* out);

// out = x * rsqrt(mean(x^2) + eps) * w per row; w [hidden] in `w_dtype`.
Status rms_norm(const float* x, int64_t rows, int64_t hidden, const void* w, DType w_dtype, double eps, float* out);

}  // namespace ds::ref
