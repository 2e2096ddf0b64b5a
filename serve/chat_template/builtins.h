// Built-in behaviour of values: operators, attribute / item access and methods (operators.cpp,
// methods.cpp), Jinja filters (filters.cpp, filters_seq.cpp), tests (predicates.cpp) and the
// globals Hugging Face provides (globals.cpp).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "serve/chat_template/ast.h"
#include "serve/chat_template/value.h"

namespace ds::jinja {

class Interpreter;

// Operators.
Value binary_op(BinaryOp op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);
Value negate(const Value& v, bool minus);

// `obj.name`: attribute first (methods), then item. Missing gives an Undefined; accessing an
// attribute of an Undefined fails, as in Jinja.
// With `item_fallback` false only real attributes count (the `attr` filter).
Value get_attr(const Value& obj, const std::string& name, bool item_fallback = true);
// `obj[key]`: item first, then attribute for string keys.
Value get_item(const Value& obj, const Value& key);
// Python slicing of str / list / tuple; null bounds are omitted ones.
Value slice(const Value& obj, const Value* start, const Value* stop, const Value* step);

// Filters: `input | name(args)`. The table is filled by filters.cpp and filters_seq.cpp.
using FilterFn = std::function<Value(Interpreter&, const Value& input, CallArgs& args)>;
using FilterRegistry = std::unordered_map<std::string, FilterFn>;
FilterRegistry& filter_registry();
void add_sequence_filters(FilterRegistry& r);
bool has_filter(std::string_view name);
Value apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);

// Tests: `input is name(args)`.
bool has_test(std::string_view name);
bool apply_test(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);

// range, namespace, dict, joiner, cycler, raise_exception, strftime_now.
void add_globals(std::unordered_map<std::string, Value>& globals);

// Helpers shared by the built-ins.
int64_t arg_int(const Value* v, std::string_view what, int64_t fallback);
bool arg_bool(const Value* v, bool fallback);
const std::string& arg_string(const Value* v, std::string_view what);
// tojson as Hugging Face defines it: json.dumps(x, ensure_ascii=False, indent=None,
// separators=None, sort_keys=False).
std::string tojson(const Value& v, const CallArgs& args);
// Python "%" formatting of a string (used by the `%` operator and the format filter).
std::string percent_format(const std::string& fmt, const Value& args);

}  // namespace ds::jinja
