#include "runtime/plan/plan_attrs.h"

#include <cmath>
#include <sstream>

namespace ds {

const plan::Attr* find_attr(const PlanAttrs* attrs, const std::string& key) {
  if (!attrs) return nullptr;
  for (const plan::Attr* a : *attrs) {
    if (a && a->key() && a->key()->str() == key) return a;
  }
  return nullptr;
}

namespace {

Status missing(const std::string& key, const std::string& context) {
  return Status::Error(StrCat() << context << ": missing attribute '" << key << "'");
}
Status wrong_type(const std::string& key, const char* want, const std::string& context) {
  return Status::Error(StrCat() << context << ": attribute '" << key << "' must be " << want);
}

}  // namespace

Result<int64_t> attr_int_or(const PlanAttrs* attrs, const std::string& key, int64_t dflt,
                            const std::string& context) {
  const plan::Attr* a = find_attr(attrs, key);
  if (!a) return dflt;
  if (a->type() != plan::AttrType::int_) return wrong_type(key, "an integer", context);
  return a->i();
}

Result<double> attr_float_or(const PlanAttrs* attrs, const std::string& key, double dflt,
                             const std::string& context) {
  const plan::Attr* a = find_attr(attrs, key);
  if (!a) return dflt;
  if (a->type() == plan::AttrType::float_) return a->f();
  if (a->type() == plan::AttrType::int_) return static_cast<double>(a->i());
  return wrong_type(key, "a number", context);
}

Result<std::string> attr_string_or(const PlanAttrs* attrs, const std::string& key, const std::string& dflt,
                                   const std::string& context) {
  const plan::Attr* a = find_attr(attrs, key);
  if (!a) return dflt;
  if (a->type() != plan::AttrType::string_) return wrong_type(key, "a string", context);
  return a->s() ? a->s()->str() : std::string();
}

Result<int64_t> attr_int(const PlanAttrs* attrs, const std::string& key, const std::string& context) {
  if (!find_attr(attrs, key)) return missing(key, context);
  return attr_int_or(attrs, key, 0, context);
}

Result<double> attr_float(const PlanAttrs* attrs, const std::string& key, const std::string& context) {
  if (!find_attr(attrs, key)) return missing(key, context);
  return attr_float_or(attrs, key, 0, context);
}

Result<std::string> attr_string(const PlanAttrs* attrs, const std::string& key, const std::string& context) {
  if (!find_attr(attrs, key)) return missing(key, context);
  return attr_string_or(attrs, key, "", context);
}

std::string format_attrs(const PlanAttrs* attrs) {
  std::ostringstream os;
  if (!attrs) return "";
  bool first = true;
  for (const plan::Attr* a : *attrs) {
    if (!a) continue;
    if (!first) os << ", ";
    first = false;
    os << (a->key() ? a->key()->str() : "?") << "=";
    switch (a->type()) {
      case plan::AttrType::int_: os << a->i(); break;
      case plan::AttrType::float_: os << a->f(); break;
      case plan::AttrType::string_: os << '"' << (a->s() ? a->s()->str() : "") << '"'; break;
      case plan::AttrType::ints: {
        os << "[";
        if (a->ints())
          for (size_t i = 0; i < a->ints()->size(); ++i) os << (i ? "," : "") << a->ints()->Get(i);
        os << "]";
        break;
      }
      case plan::AttrType::floats: {
        os << "[";
        if (a->floats())
          for (size_t i = 0; i < a->floats()->size(); ++i) os << (i ? "," : "") << a->floats()->Get(i);
        os << "]";
        break;
      }
    }
  }
  return os.str();
}

}  // namespace ds
