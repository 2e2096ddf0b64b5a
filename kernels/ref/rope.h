// Rotary position embedding, computed the way HF transformers does (float32
// inv_freq, cos/sin scaled by the YaRN attention factor).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/common/status.h"

namespace ds::ref {

enum class RopeStyle { kNeox, kInterleaved };
enum class RopeScaling { kNone, kLinear, kYarn };

struct RopeParams {
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t rotary_dim = 0;          // even, <= head_dim; dims beyond it pass through
  double theta = 10000.0;
  RopeStyle style = RopeStyle::kNeox;
  RopeScaling scaling = RopeScaling::kNone;
  double factor = 1.0;
  int64_t original_max_position = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;

  Status validate() const;
};

struct RopeTables {
  std::vector<float> inv_freq;     // rotary_dim / 2
  float attention_factor = 1.0f;   // multiplies cos and sin (YaRN)
};

// inv_freq and attention factor for the given parameters (validated).
Result<RopeTables> rope_tables(const RopeParams& p);

// x, out: [num_tokens, num_heads * head_dim]. Errors on a negative position.
Status rope(const float* x, const int32_t* positions, int64_t num_tokens, const RopeParams& p, const RopeTables& tables,
            float* out);

}  // namespace ds::ref
