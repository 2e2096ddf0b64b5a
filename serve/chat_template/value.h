// Values of the Jinja interpreter, with Python semantics: None, bool, int, float, str, list,
// tuple, dict (insertion ordered), namespace (mutable), callables, and Jinja's Undefined.
//
// Inside the interpreter errors travel as `jinja::Error` exceptions (the evaluator is deeply
// recursive and every operation can fail on template input); ChatTemplate::parse/render catch
// them at the API boundary and return a Status, so no exception leaves the library.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace ds::jinja {

// A template error (syntax, type, undefined, raise_exception, ...). `what()` is the message.
// `located` is set once the message carries its template position (or must stay verbatim, as
// raise_exception's does), so outer statements do not prefix it again.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, bool located = false)
      : std::runtime_error(message), located_(located) {}
  bool located() const { return located_; }

 private:
  bool located_;
};

[[noreturn]] void fail(const std::string& message);

class Value;
class Interpreter;
using ValueList = std::vector<Value>;
struct Dict;
struct Namespace;
struct Function;

// Why a value is undefined; the message is what using it reports.
struct UndefinedInfo {
  std::string message;  // "'foo' is undefined", "'dict object' has no attribute 'x'", ...
};

// Positional and keyword arguments of a call.
struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // Looks up argument `index` / `name` (a keyword wins over nothing; both is an error).
  const Value* get(size_t index, std::string_view name) const;
  // Fails when there are more than `max_positional` positional arguments or unknown keywords.
  void check(std::string_view callee, size_t max_positional,
             std::initializer_list<std::string_view> keywords) const;
};

using NativeFn = std::function<Value(Interpreter&, CallArgs&)>;

struct Function {
  std::string name;
  NativeFn fn;
  // Attributes of callable objects (Jinja's `loop`); null for plain functions.
  std::shared_ptr<const Dict> attrs;
  // str() of the object; empty means "<function name>".
  std::string display;
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction
  };

  Value() : v_(std::shared_ptr<const UndefinedInfo>()) {}
  static Value undefined(std::string message);
  static Value none() { return Value(Tag::kNone); }
  Value(bool b) : v_(b) {}                      // NOLINT(implicit)
  Value(int64_t i) : v_(i) {}                   // NOLINT(implicit)
  Value(int i) : v_(static_cast<int64_t>(i)) {}  // NOLINT(implicit)
  Value(double d) : v_(d) {}                    // NOLINT(implicit)
  Value(std::string s);                         // NOLINT(implicit)
  Value(std::string_view s) : Value(std::string(s)) {}  // NOLINT(implicit)
  Value(const char* s) : Value(std::string(s)) {}        // NOLINT(implicit)
  static Value list(ValueList items, bool tuple = false);
  static Value dict(std::shared_ptr<Dict> d);
  static Value ns(std::shared_ptr<Namespace> n);
  static Value function(std::string name, NativeFn fn, std::shared_ptr<const Dict> attrs = nullptr,
                        std::string display = "");

  // Converts JSON (objects keep their key order when `ordered_json` is used).
  static Value from_json(const nlohmann::ordered_json& j);
  static Value from_json(const nlohmann::json& j);

  Kind kind() const;
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_tuple() const { return is_list() && tuple_; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_namespace() const { return kind() == Kind::kNamespace; }
  bool is_function() const { return kind() == Kind::kFunction; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  // Numeric value of bool/int/float as double.
  double to_double() const;
  // Integer value of bool/int (DS_CHECK'd by callers through is_int()/is_bool()).
  int64_t to_int() const { return is_bool() ? (as_bool() ? 1 : 0) : as_int(); }
  const std::string& str() const { return *std::get<StrPtr>(v_); }
  const ValueList& items() const { return *std::get<ListPtr>(v_); }
  const Dict& map() const { return *std::get<DictPtr>(v_); }
  Namespace& ns_ref() const { return *std::get<NsPtr>(v_); }
  const Function& fn() const { return *std::get<FnPtr>(v_); }
  const std::string& undefined_message() const;

  // Python's bool(); Undefined is falsy.
  bool truthy() const;
  // Jinja's type name in messages: "str", "int", "list", "dict object", ...
  std::string type_name() const;
  // Python str() / repr().
  std::string to_str() const;
  std::string repr() const;
  // Python ==, with int/float/bool numeric equality and element-wise containers.
  bool equals(const Value& other) const;
  // Python `is`: the same object for str / list / dict / namespace / function, equal value for
  // None, bools and numbers.
  bool identical(const Value& other) const;
  // Python <: numbers, strings and sequences; other pairs fail with a TypeError.
  bool less(const Value& other) const;
  // Fails with the undefined message when undefined (for operations Jinja's Undefined rejects).
  const Value& require_defined() const;

  // Elements when iterating: list items, dict keys, string characters; Undefined is empty.
  ValueList iterate() const;
  // Python len() for str (code points), list, dict, namespace; Undefined is 0.
  int64_t length() const;

 private:
  enum class Tag { kNone };
  using StrPtr = std::shared_ptr<const std::string>;
  using ListPtr = std::shared_ptr<const ValueList>;
  using DictPtr = std::shared_ptr<const Dict>;
  using NsPtr = std::shared_ptr<Namespace>;
  using FnPtr = std::shared_ptr<const Function>;
  explicit Value(Tag) : v_(nullptr) {}

  std::variant<std::shared_ptr<const UndefinedInfo>, std::nullptr_t, bool, int64_t, double,
               StrPtr, ListPtr, DictPtr, NsPtr, FnPtr>
      v_;
  bool tuple_ = false;
};

// An insertion-ordered dict. Keys are hashable values (str, int, float, bool, None, tuple).
struct Dict {
  std::vector<std::pair<Value, Value>> entries;

  const Value* find(const Value& key) const;
  const Value* find_key(std::string_view key) const;
  void set(Value key, Value value);
};

// namespace(): the one mutable object templates have (attribute assignment with set).
struct Namespace {
  Dict attrs;
};

// Formatting helpers (value_format.cpp).
std::string format_float(double d);            // Python repr(float)
std::string repr_string(std::string_view s);   // Python repr(str)
struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // json.dumps(indent=...): None, or the per-level string
  std::string item_separator = ", ";   // callers pass "," when indent is set and none was given
  std::string key_separator = ": ";
  bool sort_keys = false;
};
// Python json.dumps with the given options.
std::string to_json(const Value& v, const JsonOptions& options);

}  // namespace ds::jinja
