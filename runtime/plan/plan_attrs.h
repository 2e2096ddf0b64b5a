// Typed access to plan `Attr` lists (kernel and fused-op attributes). Errors name
// the attribute and the owner (`context`, e.g. "kernel 'layer0.attn' (rope)").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/common/status.h"
#include "runtime/plan/plan_generated.h"

namespace ds {

using PlanAttrs = flatbuffers::Vector<flatbuffers::Offset<plan::Attr>>;

const plan::Attr* find_attr(const PlanAttrs* attrs, const std::string& key);

Result<int64_t> attr_int(const PlanAttrs* attrs, const std::string& key, const std::string& context);
Result<double> attr_float(const PlanAttrs* attrs, const std::string& key, const std::string& context);
Result<std::string> attr_string(const PlanAttrs* attrs, const std::string& key, const std::string& context);

// Same, with a default when the key is absent (a present key of the wrong type is an error).
Result<int64_t> attr_int_or(const PlanAttrs* attrs, const std::string& key, int64_t dflt,
                            const std::string& context);
Result<double> attr_float_or(const PlanAttrs* attrs, const std::string& key, double dflt,
                             const std::string& context);
Result<std::string> attr_string_or(const PlanAttrs* attrs, const std::string& key, const std::string& dflt,
                                   const std::string& context);

// "key=value, ..." for dsrt inspect.
std::string format_attrs(const PlanAttrs* attrs);

}  // namespace ds
