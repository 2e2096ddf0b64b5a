// Jinja tests: `x is defined`, `x is string`, `x is equalto 3`, ...
#include <unordered_map>

#include "serve/chat_template/builtins.h"
#include "serve/chat_template/interpreter.h"
#include "serve/chat_template/utf8.h"

namespace ds::jinja {
namespace {

using TestFn = bool (*)(const Value& v, const CallArgs& a);

const Value& operand(const CallArgs& a, std::string_view test) {
  if (a.positional.empty()) fail("test '" + std::string(test) + "' needs an argument");
  return a.positional[0];
}

bool compare(BinaryOp op, const Value& v, const CallArgs& a) {
  return binary_op(op, v, operand(a, "comparison")).truthy();
}

const std::unordered_map<std::string_view, TestFn>& registry() {
  static const std::unordered_map<std::string_view, TestFn> kTests = {
      {"defined", [](const Value& v, const CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, const CallArgs&) { return v.is_undefined(); }},
      {"none", [](const Value& v, const CallArgs&) { return v.is_none(); }},
      {"boolean", [](const Value& v, const CallArgs&) { return v.is_bool(); }},
      {"true", [](const Value& v, const CallArgs&) { return v.is_bool() && v.as_bool(); }},
      {"false", [](const Value& v, const CallArgs&) { return v.is_bool() && !v.as_bool(); }},
      {"integer", [](const Value& v, const CallArgs&) { return v.is_int(); }},
      {"float", [](const Value& v, const CallArgs&) { return v.is_float(); }},
      {"number", [](const Value& v, const CallArgs&) { return v.is_number(); }},
      {"string", [](const Value& v, const CallArgs&) { return v.is_string(); }},
      {"mapping", [](const Value& v, const CallArgs&) { return v.is_dict(); }},
      {"iterable", [](const Value& v, const CallArgs&) {
         return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
       }},
      {"sequence", [](const Value& v, const CallArgs&) {
         return v.is_string() || v.is_list() || v.is_dict();
       }},
      {"callable", [](const Value& v, const CallArgs&) { return v.is_function(); }},
      {"sameas", [](const Value& v, const CallArgs& a) { return v.identical(operand(a, "sameas")); }},
      {"escaped", [](const Value&, const CallArgs&) { return false; }},
      {"lower", [](const Value& v, const CallArgs&) { return v.is_string() && str_lower(v.str()) == v.str(); }},
      {"upper", [](const Value& v, const CallArgs&) { return v.is_string() && str_upper(v.str()) == v.str(); }},
      {"odd", [](const Value& v, const CallArgs&) {
         if (!v.is_int() && !v.is_bool()) fail("test 'odd' needs an integer");
         return v.to_int() % 2 != 0;
       }},
      {"even", [](const Value& v, const CallArgs&) {
         if (!v.is_int() && !v.is_bool()) fail("test 'even' needs an integer");
         return v.to_int() % 2 == 0;
       }},
      {"divisibleby", [](const Value& v, const CallArgs& a) {
         Value r = binary_op(BinaryOp::kMod, v, operand(a, "divisibleby"));
         return r.equals(Value(0));
       }},
      {"in", [](const Value& v, const CallArgs& a) { return contains(operand(a, "in"), v); }},
      {"eq", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kEq, v, a); }},
      {"equalto", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kEq, v, a); }},
      {"==", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kEq, v, a); }},
      {"ne", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kNe, v, a); }},
      {"!=", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kNe, v, a); }},
      {"lt", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kLt, v, a); }},
      {"lessthan", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kLt, v, a); }},
      {"<", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kLt, v, a); }},
      {"le", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kLe, v, a); }},
      {"<=", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kLe, v, a); }},
      {"gt", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kGt, v, a); }},
      {"greaterthan", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kGt, v, a); }},
      {">", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kGt, v, a); }},
      {"ge", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kGe, v, a); }},
      {">=", [](const Value& v, const CallArgs& a) { return compare(BinaryOp::kGe, v, a); }},
      {"filter", [](const Value& v, const CallArgs&) { return v.is_string() && has_filter(v.str()); }},
      {"test", [](const Value& v, const CallArgs&) { return v.is_string() && has_test(v.str()); }},
  };
  return kTests;
}

}  // namespace

bool has_test(std::string_view name) { return registry().count(name) > 0; }

bool apply_test(Interpreter&, const std::string& name, const Value& input, CallArgs& args) {
  auto it = registry().find(name);
  if (it == registry().end()) fail("no test named '" + name + "'");
  return it->second(input, args);
}

}  // namespace ds::jinja
