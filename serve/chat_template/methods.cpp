// Attribute and item access, slicing, and the methods of str, dict and list that templates
// call. Mutating methods are refused the way Jinja's ImmutableSandboxedEnvironment refuses them.
#include <algorithm>
#include <optional>

#include "serve/chat_template/builtins.h"
#include "serve/chat_template/utf8.h"

namespace ds::jinja {

// Bound method `self.name` of a string, or nullopt (str_methods.cpp).
std::optional<Value> str_method(const Value& self, const std::string& name);

static std::string object_type(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_namespace()) return "jinja2.utils.Namespace object";
  return v.type_name() + " object";
}

static Value no_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(repr_string(object_type(obj)) + " has no attribute " + repr_string(name));
}

static Value no_element(const Value& obj, const Value& key) {
  return Value::undefined(object_type(obj) + " has no element " + key.repr());
}

static Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined("access to attribute " + repr_string(name) + " of " +
                          repr_string(obj.type_name()) + " object is unsafe.");
}

static Value bound_method(const std::string& name, std::function<Value(CallArgs&)> fn) {
  return Value::function(name, [fn = std::move(fn)](Interpreter&, CallArgs& a) { return fn(a); });
}

static std::optional<Value> dict_method(const Value& self, const std::string& name) {
  if (name == "items" || name == "keys" || name == "values") {
    return bound_method(name, [self, name](CallArgs& a) {
      a.check(name, 0, {});
      ValueList out;
      for (const auto& [k, v] : self.map().entries) {
        if (name == "items") out.push_back(Value::list({k, v}, true));
        else out.push_back(name == "keys" ? k : v);
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "get") {
    return bound_method(name, [self](CallArgs& a) {
      a.check("get", 2, {});
      if (a.positional.empty()) fail("get expected at least 1 argument, got 0");
      const Value* v = self.map().find(a.positional[0]);
      if (v) return *v;
      return a.positional.size() > 1 ? a.positional[1] : Value::none();
    });
  }
  if (name == "copy") return bound_method(name, [self](CallArgs&) { return self; });
  if (name == "pop" || name == "popitem" || name == "setdefault" || name == "update" || name == "clear")
    return unsafe(self, name);
  return std::nullopt;
}

static std::optional<Value> list_method(const Value& self, const std::string& name) {
  if (name == "index" || name == "count") {
    return bound_method(name, [self, name](CallArgs& a) {
      a.check(name, 1, {});
      if (a.positional.empty()) fail(name + "() takes exactly one argument (0 given)");
      int64_t n = 0;
      for (size_t i = 0; i < self.items().size(); ++i) {
        if (!self.items()[i].equals(a.positional[0])) continue;
        if (name == "index") return Value(static_cast<int64_t>(i));
        ++n;
      }
      if (name == "index") fail(a.positional[0].repr() + " is not in list");
      return Value(n);
    });
  }
  if (name == "copy" && !self.is_tuple()) return bound_method(name, [self](CallArgs&) { return self; });
  if (!self.is_tuple() && (name == "append" || name == "extend" || name == "insert" || name == "pop" ||
                           name == "remove" || name == "reverse" || name == "sort" || name == "clear"))
    return unsafe(self, name);
  return std::nullopt;
}

Value get_attr(const Value& obj, const std::string& name, bool item_fallback) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      obj.require_defined();
      break;
    case Value::Kind::kString:
      if (auto m = str_method(obj, name)) return *m;
      break;
    case Value::Kind::kDict:
      if (auto m = dict_method(obj, name)) return *m;
      if (!item_fallback) break;
      if (const Value* v = obj.map().find_key(name)) return *v;
      break;
    case Value::Kind::kList:
      if (auto m = list_method(obj, name)) return *m;
      break;
    case Value::Kind::kNamespace:
      if (const Value* v = obj.ns_ref().attrs.find_key(name)) return *v;
      break;
    case Value::Kind::kFunction:
      if (obj.fn().attrs)
        if (const Value* v = obj.fn().attrs->find_key(name)) return *v;
      break;
    default:
      break;
  }
  return no_attribute(obj, name);
}

static int64_t normalize_index(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

Value get_item(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      obj.require_defined();
      break;
    case Value::Kind::kDict:
      if (const Value* v = obj.map().find(key)) return *v;
      break;
    case Value::Kind::kList:
    case Value::Kind::kString:
      if (key.is_int() || key.is_bool()) {
        const bool is_str = obj.is_string();
        std::vector<char32_t> cps;
        if (is_str) cps = utf8_decode(obj.str());
        int64_t n = is_str ? static_cast<int64_t>(cps.size()) : static_cast<int64_t>(obj.items().size());
        int64_t i = normalize_index(key.to_int(), n);
        if (i < 0 || i >= n) return no_element(obj, key);
        if (!is_str) return obj.items()[static_cast<size_t>(i)];
        std::string c;
        utf8_append(c, cps[static_cast<size_t>(i)]);
        return Value(std::move(c));
      }
      break;
    default:
      break;
  }
  // Jinja falls back to the attribute for string keys (and reports a missing attribute).
  if (key.is_string()) return get_attr(obj, key.str());
  return no_element(obj, key);
}

// Python's slice.indices(): clamps start/stop for `len` and a non-zero step.
static void slice_indices(int64_t len, const Value* start, const Value* stop, const Value* step,
                          int64_t* b, int64_t* e, int64_t* s) {
  auto as_index = [](const Value* v) {
    if (!v->is_int() && !v->is_bool()) fail("slice indices must be integers or None");
    return v->to_int();
  };
  *s = step ? as_index(step) : 1;
  if (*s == 0) fail("slice step cannot be zero");
  auto clamp = [&](const Value* v, int64_t dflt) {
    if (!v) return dflt;
    int64_t i = as_index(v);
    if (i < 0) i += len;
    if (*s > 0) return std::clamp<int64_t>(i, 0, len);
    return std::clamp<int64_t>(i, -1, len - 1);
  };
  *b = clamp(start, *s > 0 ? 0 : len - 1);
  *e = clamp(stop, *s > 0 ? len : -1);
}

Value slice(const Value& obj, const Value* start, const Value* stop, const Value* step) {
  obj.require_defined();
  if (!obj.is_string() && !obj.is_list()) fail("'" + obj.type_name() + "' object is not subscriptable");
  std::vector<char32_t> cps;
  if (obj.is_string()) cps = utf8_decode(obj.str());
  int64_t len = obj.is_string() ? static_cast<int64_t>(cps.size()) : static_cast<int64_t>(obj.items().size());
  int64_t b, e, s;
  slice_indices(len, start, stop, step, &b, &e, &s);
  std::vector<size_t> picks;
  for (int64_t i = b; s > 0 ? i < e : i > e; i += s) picks.push_back(static_cast<size_t>(i));
  if (obj.is_string()) {
    std::string out;
    for (size_t i : picks) utf8_append(out, cps[i]);
    return Value(std::move(out));
  }
  ValueList out;
  for (size_t i : picks) out.push_back(obj.items()[i]);
  return Value::list(std::move(out), obj.is_tuple());
}

}  // namespace ds::jinja
