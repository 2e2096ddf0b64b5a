// The rope parameters of a plan's `rope` op (its fused-op attributes, as dscc's
// plan exporter writes a #ds.rope attribute: theta, style, rotary_dim, scaling,
// factor, original_max_position, beta_fast, beta_slow, mscale, mscale_all_dim,
// plus the op's num_heads and head_dim), read the same way by every executor.
#pragma once

#include <string>

#include "kernels/ref/rope.h"
#include "runtime/common/status.h"
#include "runtime/plan/plan_attrs.h"

namespace ds {

// Validated (RopeParams::validate); errors name `context` and the attribute.
Result<ref::RopeParams> rope_params_from_attrs(const PlanAttrs* attrs, const std::string& context);

}  // namespace ds
