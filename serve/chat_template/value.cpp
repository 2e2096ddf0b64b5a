#include "serve/chat_template/value.h"

#include <cmath>

#include "serve/chat_template/utf8.h"

namespace ds::jinja {

void fail(const std::string& message) { throw Error(message); }

// JSON nesting deeper than this is rejected (json.loads-level inputs never come close).
constexpr int kMaxJsonDepth = 512;

Value::Value(std::string s) : v_(std::make_shared<const std::string>(std::move(s))) {}

Value Value::undefined(std::string message) {
  Value v;
  v.v_ = std::make_shared<const UndefinedInfo>(UndefinedInfo{std::move(message)});
  return v;
}

Value Value::list(ValueList items, bool tuple) {
  Value v;
  v.v_ = std::make_shared<const ValueList>(std::move(items));
  v.tuple_ = tuple;
  return v;
}

Value Value::dict(std::shared_ptr<Dict> d) {
  Value v;
  v.v_ = DictPtr(std::move(d));
  return v;
}

Value Value::ns(std::shared_ptr<Namespace> n) {
  Value v;
  v.v_ = std::move(n);
  return v;
}

Value Value::function(std::string name, NativeFn fn, std::shared_ptr<const Dict> attrs,
                       std::string display) {
  Value v;
  v.v_ = std::make_shared<const Function>(
      Function{std::move(name), std::move(fn), std::move(attrs), std::move(display)});
  return v;
}

template <typename Json>
static Value from_json_at(const Json& j, int depth) {
  if (depth > kMaxJsonDepth) fail("context JSON is nested too deeply");
  switch (j.type()) {
    case Json::value_t::null: return Value::none();
    case Json::value_t::boolean: return Value(j.template get<bool>());
    case Json::value_t::number_integer: return Value(j.template get<int64_t>());
    case Json::value_t::number_unsigned: {
      uint64_t u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case Json::value_t::number_float: return Value(j.template get<double>());
    case Json::value_t::string: return Value(j.template get<std::string>());
    case Json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_at(e, depth + 1));
      return Value::list(std::move(items));
    }
    case Json::value_t::object: {
      auto d = std::make_shared<Dict>();
      d->entries.reserve(j.size());
      for (const auto& [k, e] : j.items()) d->entries.emplace_back(Value(k), from_json_at(e, depth + 1));
      return Value::dict(std::move(d));
    }
    default:
      fail("context JSON holds an unsupported value (binary or discarded)");
  }
}

Value Value::from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 0); }
Value Value::from_json(const nlohmann::json& j) { return from_json_at(j, 0); }

Value::Kind Value::kind() const { return static_cast<Kind>(v_.index()); }

double Value::to_double() const {
  if (is_float()) return as_float();
  return static_cast<double>(to_int());
}

const std::string& Value::undefined_message() const {
  static const std::string kGeneric = "value is undefined";
  const auto& info = std::get<std::shared_ptr<const UndefinedInfo>>(v_);
  return info ? info->message : kGeneric;
}

const Value& Value::require_defined() const {
  if (is_undefined()) fail(undefined_message());
  return *this;
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::kUndefined: case Kind::kNone: return false;
    case Kind::kBool: return as_bool();
    case Kind::kInt: return as_int() != 0;
    case Kind::kFloat: return as_float() != 0.0;
    case Kind::kString: return !str().empty();
    case Kind::kList: return !items().empty();
    case Kind::kDict: return !map().entries.empty();
    case Kind::kNamespace: case Kind::kFunction: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return is_tuple() ? "tuple" : "list";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "Namespace";
    case Kind::kFunction: return "function";
  }
  return "object";
}

bool Value::equals(const Value& o) const {
  if (is_number() && o.is_number()) {
    if (is_float() || o.is_float()) return to_double() == o.to_double();
    return to_int() == o.to_int();
  }
  if (kind() != o.kind()) return false;
  switch (kind()) {
    case Kind::kUndefined: case Kind::kNone: return true;
    case Kind::kString: return str() == o.str();
    case Kind::kList: {
      if (is_tuple() != o.is_tuple() || items().size() != o.items().size()) return false;
      for (size_t i = 0; i < items().size(); ++i)
        if (!items()[i].equals(o.items()[i])) return false;
      return true;
    }
    case Kind::kDict: {
      if (map().entries.size() != o.map().entries.size()) return false;
      for (const auto& [k, v] : map().entries) {
        const Value* ov = o.map().find(k);
        if (!ov || !v.equals(*ov)) return false;
      }
      return true;
    }
    case Kind::kNamespace: return &ns_ref() == &o.ns_ref();
    case Kind::kFunction: return &fn() == &o.fn();
    default: return false;
  }
}

bool Value::identical(const Value& o) const {
  if (kind() != o.kind()) return false;
  switch (kind()) {
    case Kind::kString: return std::get<StrPtr>(v_) == std::get<StrPtr>(o.v_);
    case Kind::kList: return std::get<ListPtr>(v_) == std::get<ListPtr>(o.v_);
    case Kind::kDict: return std::get<DictPtr>(v_) == std::get<DictPtr>(o.v_);
    case Kind::kNamespace: return std::get<NsPtr>(v_) == std::get<NsPtr>(o.v_);
    case Kind::kFunction: return std::get<FnPtr>(v_) == std::get<FnPtr>(o.v_);
    default: return equals(o);
  }
}

bool Value::less(const Value& o) const {
  if (is_number() && o.is_number()) {
    if (is_float() || o.is_float()) return to_double() < o.to_double();
    return to_int() < o.to_int();
  }
  if (is_string() && o.is_string()) return str() < o.str();  // UTF-8 order = code point order
  if (is_list() && o.is_list() && is_tuple() == o.is_tuple()) {
    const ValueList& a = items();
    const ValueList& b = o.items();
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      if (!a[i].equals(b[i])) return a[i].less(b[i]);
    }
    return a.size() < b.size();
  }
  if (is_undefined()) require_defined();
  if (o.is_undefined()) o.require_defined();
  fail("'<' not supported between instances of '" + type_name() + "' and '" + o.type_name() + "'");
}

ValueList Value::iterate() const {
  switch (kind()) {
    case Kind::kUndefined: return {};
    case Kind::kList: return items();
    case Kind::kDict: {
      ValueList keys;
      for (const auto& e : map().entries) keys.push_back(e.first);
      return keys;
    }
    case Kind::kString: {
      ValueList chars;
      for (char32_t cp : utf8_decode(str())) {
        std::string c;
        utf8_append(c, cp);
        chars.emplace_back(std::move(c));
      }
      return chars;
    }
    default:
      fail("'" + type_name() + "' object is not iterable");
  }
}

int64_t Value::length() const {
  switch (kind()) {
    case Kind::kUndefined: return 0;
    case Kind::kString: return utf8_length(str());
    case Kind::kList: return static_cast<int64_t>(items().size());
    case Kind::kDict: return static_cast<int64_t>(map().entries.size());
    default:
      fail("object of type '" + type_name() + "' has no len()");
  }
}

const Value* Dict::find(const Value& key) const {
  for (const auto& e : entries)
    if (e.first.equals(key)) return &e.second;
  return nullptr;
}

const Value* Dict::find_key(std::string_view key) const {
  for (const auto& e : entries)
    if (e.first.is_string() && e.first.str() == key) return &e.second;
  return nullptr;
}

void Dict::set(Value key, Value value) {
  for (auto& e : entries) {
    if (e.first.equals(key)) {
      e.second = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

const Value* CallArgs::get(size_t index, std::string_view name) const {
  const Value* kw = nullptr;
  for (const auto& [k, v] : keyword)
    if (k == name) kw = &v;
  if (index < positional.size()) {
    if (kw) fail("got multiple values for argument '" + std::string(name) + "'");
    return &positional[index];
  }
  return kw;
}

void CallArgs::check(std::string_view callee, size_t max_positional,
                     std::initializer_list<std::string_view> keywords) const {
  if (positional.size() > max_positional) {
    fail(std::string(callee) + "() takes at most " + std::to_string(max_positional) +
         " positional arguments (" + std::to_string(positional.size()) + " given)");
  }
  for (const auto& kw : keyword) {
    bool known = false;
    for (std::string_view k : keywords) known = known || k == kw.first;
    if (!known) fail(std::string(callee) + "() got an unexpected keyword argument '" + kw.first + "'");
  }
}

}  // namespace ds::jinja
