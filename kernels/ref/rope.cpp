#include "kernels/ref/rope.h"

#include <algorithm>
#include <cmath>

namespace ds::ref {

Status RopeParams::validate() const {
  if (num_heads <= 0 || head_dim <= 0)
    return Status::Error(StrCat() << "rope: num_heads " << num_heads << " and head_dim " << head_dim << " must be positive");
  if (rotary_dim <= 0 || rotary_dim > head_dim || rotary_dim % 2 != 0)
    return Status::Error(StrCat() << "rope: rotary_dim " << rotary_dim << " must be even and in (0, head_dim=" << head_dim << "]");
  if (!(theta > 0)) return Status::Error(StrCat() << "rope: theta " << theta << " must be positive");
  if (scaling != RopeScaling::kNone && !(factor > 0))
    return Status::Error(StrCat() << "rope: scaling factor " << factor << " must be positive");
  if (scaling == RopeScaling::kYarn && original_max_position <= 0)
    return Status::Error("rope: yarn scaling needs original_max_position > 0");
  return Status::Ok();
}

namespace {

// YaRN helpers, as in transformers' _compute_yarn_parameters.
double yarn_get_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

double yarn_correction_dim(double num_rotations, double dim, double base, double max_pos) {
  return (dim * std::log(max_pos / (num_rotations * 2.0 * M_PI))) / (2.0 * std::log(base));
}

}  // namespace

Result<RopeTables> rope_tables(const RopeParams& p) {
  DS_RETURN_IF_ERROR(p.validate());
  RopeTables t;
  const int64_t half = p.rotary_dim / 2;
  const float dim = static_cast<float>(p.rotary_dim);
  const float base = static_cast<float>(p.theta);
  std::vector<float> pos_freqs(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    pos_freqs[i] = std::pow(base, static_cast<float>(2 * i) / dim);  // float32 like torch
  t.inv_freq.resize(static_cast<size_t>(half));
  switch (p.scaling) {
    case RopeScaling::kNone:
      for (int64_t i = 0; i < half; ++i) t.inv_freq[i] = 1.0f / pos_freqs[i];
      break;
    case RopeScaling::kLinear:
      for (int64_t i = 0; i < half; ++i) t.inv_freq[i] = (1.0f / pos_freqs[i]) / static_cast<float>(p.factor);
      break;
    case RopeScaling::kYarn: {
      const double factor = p.factor;
      if (p.mscale != 0 && p.mscale_all_dim != 0)
        t.attention_factor = static_cast<float>(yarn_get_mscale(factor, p.mscale) / yarn_get_mscale(factor, p.mscale_all_dim));
      else
        t.attention_factor = static_cast<float>(yarn_get_mscale(factor, 1.0));
      const double max_pos = static_cast<double>(p.original_max_position);
      double low = std::floor(yarn_correction_dim(p.beta_fast, dim, p.theta, max_pos));
      double high = std::ceil(yarn_correction_dim(p.beta_slow, dim, p.theta, max_pos));
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim) - 1.0);
      if (low == high) high += 0.001;
      for (int64_t i = 0; i < half; ++i) {
        const float extrapolation = 1.0f / pos_freqs[i];
        const float interpolation = 1.0f / (static_cast<float>(factor) * pos_freqs[i]);
        float ramp = (static_cast<float>(i) - static_cast<float>(low)) / static_cast<float>(high - low);
        ramp = std::clamp(ramp, 0.0f, 1.0f);
        const float extrapolation_factor = 1.0f - ramp;
        t.inv_freq[i] = interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
      }
      break;
    }
  }
  return t;
}

Status rope(const float* x, const int32_t* positions, int64_t num_tokens, const RopeParams& p, const RopeTables& tables,
            float* out) {
  const int64_t half = p.rotary_dim / 2;
  if (static_cast<int64_t>(tables.inv_freq.size()) != half)
    return Status::Error("rope: tables do not match rotary_dim");
  std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
  const int64_t width = p.num_heads * p.head_dim;
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (positions[t] < 0)
      return Status::Error(StrCat() << "rope: negative position " << positions[t] << " at token " << t);
    const float pos = static_cast<float>(positions[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float f = pos * tables.inv_freq[i];
      cs[i] = std::cos(f) * tables.attention_factor;
      sn[i] = std::sin(f) * tables.attention_factor;
    }
    for (int64_t h = 0; h < p.num_heads; ++h) {
      const float* xi = x + t * width + h * p.head_dim;
      float* o = out + t * width + h * p.head_dim;
      float tmp[2];
      for (int64_t i = 0; i < half; ++i) {
        const int64_t a = p.style == RopeStyle::kNeox ? i : 2 * i;
        const int64_t b = p.style == RopeStyle::kNeox ? i + half : 2 * i + 1;
        tmp[0] = xi[a] * cs[i] - xi[b] * sn[i];
        tmp[1] = xi[b] * cs[i] + xi[a] * sn[i];
        o[a] = tmp[0];
        o[b] = tmp[1];
      }
      for (int64_t d = p.rotary_dim; d < p.head_dim; ++d) o[d] = xi[d];
    }
  }
  return Status::Ok();
}

}  // namespace ds::ref
