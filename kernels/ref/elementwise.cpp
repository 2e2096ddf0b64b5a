#include "kernels/ref/elementwise.h"

#include <cmath>

namespace ds::ref {

void silu(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void mul(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}

void add(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

Status slice_cols(const float* x, int64_t rows, int64_t cols, int64_t offset, int64_t size, float* out) {
  if (offset < 0 || size <= 0 || offset + size > cols)
    return Status::Error(StrCat() << "slice [" << offset << ", " << offset + size << ") out of range for " << cols
                                  << " columns");
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < size; ++c) out[r * size + c] = x[r * cols + offset + c];
  return Status::Ok();
}

}  // namespace ds::ref
