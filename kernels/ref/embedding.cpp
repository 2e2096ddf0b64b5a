// embedding and rms_norm.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ref/convert.h"
#include "kernels/ref/elementwise.h"

namespace ds::ref {

Status embedding(const int32_t* ids, int64_t num_tokens, const void* table, DType table_dtype, int64_t vocab,
                 int64_t hidden, float* out) {
  DS_RETURN_IF_ERROR(check_float_dtype(table_dtype, "embedding table"));
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (ids[t] < 0 || ids[t] >= vocab)
      return Status::Error(StrCat() << "token id " << ids[t] << " at position " << t << " is outside the vocabulary [0, "
                                    << vocab << ")");
    load_row(table, table_dtype, static_cast<int64_t>(ids[t]) * hidden, hidden, out + t * hidden);
  }
  return Status::Ok();
}

Status embedding_vocab_parallel(const int32_t* ids, int64_t num_tokens, const void* table, DType table_dtype,
                                int64_t vocab_start, int64_t rows, int64_t total_vocab, int64_t hidden, float* out) {
  DS_RETURN_IF_ERROR(check_float_dtype(table_dtype, "embedding table"));
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (ids[t] < 0 || ids[t] >= total_vocab)
      return Status::Error(StrCat() << "token id " << ids[t] << " at position " << t << " is outside the vocabulary [0, "
                                    << total_vocab << ")");
    const int64_t local = static_cast<int64_t>(ids[t]) - vocab_start;
    if (local >= 0 && local < rows)
      load_row(table, table_dtype, local * hidden, hidden, out + t * hidden);
    else
      std::fill(out + t * hidden, out + (t + 1) * hidden, 0.0f);
  }
  return Status::Ok();
}

Status rms_norm(const float* x, int64_t rows, int64_t hidden, const void* w, DType w_dtype, double eps, float* out) {
  DS_RETURN_IF_ERROR(check_float_dtype(w_dtype, "rms_norm weight"));
  if (hidden <= 0) return Status::Error("rms_norm: hidden size must be positive");
  std::vector<float> wf(static_cast<size_t>(hidden));
  load_row(w, w_dtype, 0, hidden, wf.data());
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * hidden;
    float ss = dot(xr, xr, hidden);
    // HF: variance in float32, then x * rsqrt(variance + eps), then weight * x.
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(hidden) + static_cast<float>(eps));
    float* o = out + r * hidden;
    for (int64_t i = 0; i < hidden; ++i) o[i] = wf[i] * (xr[i] * inv);
  }
  return Status::Ok();
}

}  // namespace ds::ref
