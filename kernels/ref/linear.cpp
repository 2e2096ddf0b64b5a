#include "kernels/ref/linear.h"

#include <algorithm>
#include <vector>

#include "kernels/ref/convert.h"
#include "kernels/ref/parallel.h"

namespace ds::ref {

Status linear(const float* x, const void* w, DType w_dtype, const void* bias, DType bias_dtype,
              const LinearParams& p, float* out, const float* residual) {
  DS_RETURN_IF_ERROR(check_float_dtype(w_dtype, "linear weight"));
  if (bias) DS_RETURN_IF_ERROR(check_float_dtype(bias_dtype, "linear bias"));
  if (p.rows < 0 || p.in <= 0 || p.out <= 0)
    return Status::Error(StrCat() << "linear: invalid sizes rows=" << p.rows << " in=" << p.in << " out=" << p.out);
  std::vector<float> b(static_cast<size_t>(p.out), 0.0f);
  if (bias) load_row(bias, bias_dtype, 0, p.out, b.data());
  // Convert each weight row once and use it for every token row; output
  // columns are split across threads.
  parallel_for(p.out, p.in * std::max<int64_t>(p.rows, 1), [&](int64_t begin, int64_t end) {
    std::vector<float> wrow(static_cast<size_t>(p.in));
    for (int64_t n = begin; n < end; ++n) {
      load_row(w, w_dtype, n * p.in, p.in, wrow.data());
      if (residual) {
        // Reads residual[r][n] before writing out[r][n]: in place is fine.
        for (int64_t r = 0; r < p.rows; ++r)
          out[r * p.out + n] = (dot(x + r * p.in, wrow.data(), p.in) + b[n]) + residual[r * p.out + n];
      } else {
        for (int64_t r = 0; r < p.rows; ++r) out[r * p.out + n] = dot(x + r * p.in, wrow.data(), p.in) + b[n];
      }
    }
  });
  return Status::Ok();
}

Status logits(const float* x, int64_t num_tokens, int64_t hidden, const int32_t* rows, int64_t num_rows,
              const void* w, DType w_dtype, int64_t vocab, float* out) {
  std::vector<float> gathered(static_cast<size_t>(num_rows * hidden));
  for (int64_t i = 0; i < num_rows; ++i) {
    if (rows[i] < 0 || rows[i] >= num_tokens)
      return Status::Error(StrCat() << "logit row " << i << " selects token " << rows[i] << ", outside [0, "
                                    << num_tokens << ")");
    std::copy(x + rows[i] * hidden, x + (rows[i] + 1) * hidden, gathered.begin() + i * hidden);
  }
  return linear(gathered.data(), w, w_dtype, nullptr, DType::kF32, LinearParams{num_rows, hidden, vocab}, out);
}

}  // namespace ds::ref
