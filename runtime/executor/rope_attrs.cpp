#include "runtime/executor/rope_attrs.h"

namespace ds {

Result<ref::RopeParams> rope_params_from_attrs(const PlanAttrs* attrs, const std::string& ctx) {
  ref::RopeParams r;
  DS_ASSIGN_OR_RETURN(r.num_heads, attr_int(attrs, "num_heads", ctx));
  DS_ASSIGN_OR_RETURN(r.head_dim, attr_int(attrs, "head_dim", ctx));
  DS_ASSIGN_OR_RETURN(r.rotary_dim, attr_int_or(attrs, "rotary_dim", r.head_dim, ctx));
  DS_ASSIGN_OR_RETURN(r.theta, attr_float(attrs, "theta", ctx));
  DS_ASSIGN_OR_RETURN(std::string style, attr_string_or(attrs, "style", "neox", ctx));
  if (style == "neox") {
    r.style = ref::RopeStyle::kNeox;
  } else if (style == "interleaved") {
    r.style = ref::RopeStyle::kInterleaved;
  } else {
    return Status::Error(ctx + ": unknown rope style '" + style + "'");
  }
  DS_ASSIGN_OR_RETURN(std::string scaling, attr_string_or(attrs, "scaling", "none", ctx));
  if (scaling == "none" || scaling.empty()) {
    r.scaling = ref::RopeScaling::kNone;
  } else if (scaling == "linear") {
    r.scaling = ref::RopeScaling::kLinear;
  } else if (scaling == "yarn") {
    r.scaling = ref::RopeScaling::kYarn;
  } else {
    return Status::Error(ctx + ": unknown rope scaling '" + scaling + "'");
  }
  DS_ASSIGN_OR_RETURN(r.factor, attr_float_or(attrs, "factor", 1.0, ctx));
  DS_ASSIGN_OR_RETURN(r.original_max_position, attr_int_or(attrs, "original_max_position", 0, ctx));
  DS_ASSIGN_OR_RETURN(r.beta_fast, attr_float_or(attrs, "beta_fast", 32.0, ctx));
  DS_ASSIGN_OR_RETURN(r.beta_slow, attr_float_or(attrs, "beta_slow", 1.0, ctx));
  DS_ASSIGN_OR_RETURN(r.mscale, attr_float_or(attrs, "mscale", 1.0, ctx));
  DS_ASSIGN_OR_RETURN(r.mscale_all_dim, attr_float_or(attrs, "mscale_all_dim", 0.0, ctx));
  const Status v = r.validate();
  if (!v.ok()) return Status::Error(ctx + ": " + v.message());
  return r;
}

}  // namespace ds
