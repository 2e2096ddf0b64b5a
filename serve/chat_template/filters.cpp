// Jinja filters on scalars and strings, the filter registry and argument helpers.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "serve/chat_template/builtins.h"
#include "serve/chat_template/interpreter.h"
#include "serve/chat_template/utf8.h"

namespace ds::jinja {

int64_t arg_int(const Value* v, std::string_view what, int64_t fallback) {
  if (!v || v->is_none()) return fallback;
  if (!v->is_int() && !v->is_bool()) fail("'" + std::string(what) + "' must be an integer, not " + v->type_name());
  return v->to_int();
}

bool arg_bool(const Value* v, bool fallback) { return v ? v->truthy() : fallback; }

const std::string& arg_string(const Value* v, std::string_view what) {
  if (!v) fail("missing argument '" + std::string(what) + "'");
  if (!v->is_string()) fail("'" + std::string(what) + "' must be a string, not " + v->type_name());
  return v->str();
}

std::string tojson(const Value& v, const CallArgs& a) {
  a.check("tojson", 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = arg_bool(a.get(0, "ensure_ascii"), false);
  const Value* indent = a.get(1, "indent");
  if (indent && !indent->is_none()) {
    if (indent->is_string()) o.indent = indent->str();
    else o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, arg_int(indent, "indent", 0))), ' ');
    o.item_separator = ",";
  }
  const Value* seps = a.get(2, "separators");
  if (seps && !seps->is_none()) {
    if (!seps->is_list() || seps->items().size() != 2) fail("separators must be a pair of strings");
    o.item_separator = arg_string(&seps->items()[0], "item separator");
    o.key_separator = arg_string(&seps->items()[1], "key separator");
  }
  o.sort_keys = arg_bool(a.get(3, "sort_keys"), false);
  return to_json(v, o);
}

namespace {

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// Jinja's title: capitalizes each word, words starting after whitespace or -({[<.
std::string jinja_title(const std::string& s) {
  std::string out;
  bool word_start = true;
  for (char32_t cp : utf8_decode(s)) {
    bool sep = is_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
    utf8_append(out, sep ? cp : word_start ? to_upper(cp) : to_lower(cp));
    word_start = sep;
  }
  return out;
}

std::string indent(const std::string& input, const Value* width, bool first, bool blank) {
  std::string pad = width && width->is_string() ? width->str()
                                                : std::string(static_cast<size_t>(std::max<int64_t>(0, arg_int(width, "width", 4))), ' ');
  std::string s = input + "\n";
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\n' && s[i] != '\r') continue;
    lines.push_back(s.substr(start, i - start));
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
    start = i + 1;
  }
  std::string rv;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) rv += "\n";
    if (i && (blank || !lines[i].empty())) rv += pad;
    rv += lines[i];
  }
  return first ? pad + rv : rv;
}

std::optional<int64_t> parse_int(std::string s, int base) {
  s = str_strip(s, nullptr, true, true);
  std::string digits;
  for (char c : s)
    if (c != '_') digits.push_back(c);
  if (digits.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(digits.c_str(), &end, base);
  if (errno != 0 || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(v);
}

std::optional<double> parse_float(const std::string& in) {
  std::string s = str_strip(in, nullptr, true, true);
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (*end != '\0') return std::nullopt;
  return d;
}

double round_to(double v, int64_t precision) {
  char buf[512];
  if (precision < 0 || precision > 300) return v;
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), v);
  return std::strtod(buf, nullptr);
}

// Python str.center(width).
std::string center(const std::string& s, int64_t width) {
  int64_t len = utf8_length(s);
  if (width <= len) return s;
  int64_t marg = width - len;
  int64_t left = marg / 2 + (marg & width & 1);
  return std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(marg - left), ' ');
}

// Jinja's truncate (leeway defaults to 5, as the environment policy does).
std::string truncate(const std::string& s, CallArgs& a) {
  a.check("truncate", 4, {"length", "killwords", "end", "leeway"});
  int64_t length = arg_int(a.get(0, "length"), "length", 255);
  bool killwords = arg_bool(a.get(1, "killwords"), false);
  const Value* end_arg = a.get(2, "end");
  std::string end = end_arg ? arg_string(end_arg, "end") : "...";
  int64_t leeway = arg_int(a.get(3, "leeway"), "leeway", 5);
  std::vector<char32_t> cps = utf8_decode(s);
  int64_t end_len = utf8_length(end);
  if (length < end_len) fail("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
  if (leeway < 0) fail("expected leeway >= 0, got " + std::to_string(leeway));
  if (static_cast<int64_t>(cps.size()) <= length + leeway) return s;
  cps.resize(static_cast<size_t>(length - end_len));
  std::string head = utf8_encode(cps);
  if (killwords) return head + end;
  size_t space = head.rfind(' ');
  return (space == std::string::npos ? head : head.substr(0, space)) + end;
}

size_t word_count(const std::string& s) {
  size_t n = 0;
  bool in_word = false;
  for (char32_t cp : utf8_decode(s)) {
    bool w = is_alpha(cp) || is_digit(cp) || cp == '_';
    if (w && !in_word) ++n;
    in_word = w;
  }
  return n;
}

Value round_filter(const Value& v, CallArgs& a) {
  a.check("round", 2, {"precision", "method"});
  v.require_defined();
  if (!v.is_number()) fail("round() needs a number, not " + v.type_name());
  int64_t precision = arg_int(a.get(0, "precision"), "precision", 0);
  const Value* m = a.get(1, "method");
  std::string method = m ? arg_string(m, "method") : "common";
  if (method == "common") {
    if (!v.is_float()) return Value(v.to_int());
    return Value(round_to(v.as_float(), precision));
  }
  if (method != "ceil" && method != "floor") fail("method must be common, ceil or floor");
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = v.to_double() * scale;
  return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value to_int(const Value& v, CallArgs& a) {
  a.check("int", 2, {"default", "base"});
  const Value* d = a.get(0, "default");
  Value fallback = d ? *d : Value(0);
  int base = static_cast<int>(arg_int(a.get(1, "base"), "base", 10));
  if (v.is_int() || v.is_bool()) return Value(v.to_int());
  if (v.is_float()) {
    if (!std::isfinite(v.as_float())) return fallback;
    return Value(static_cast<int64_t>(v.as_float()));
  }
  if (v.is_string()) {
    if (auto i = parse_int(v.str(), base)) return Value(*i);
    if (auto f = parse_float(v.str()); f && std::isfinite(*f)) return Value(static_cast<int64_t>(*f));
  }
  return fallback;
}

Value to_float(const Value& v, CallArgs& a) {
  a.check("float", 1, {"default"});
  const Value* d = a.get(0, "default");
  Value fallback = d ? *d : Value(0.0);
  if (v.is_number()) return Value(v.to_double());
  if (v.is_string()) {
    if (auto f = parse_float(v.str())) return Value(*f);
  }
  return fallback;
}

}  // namespace

FilterRegistry& filter_registry() {
  static FilterRegistry registry = [] {
    FilterRegistry r;
    auto text = [](std::string (*f)(std::string_view)) {
      return [f](Interpreter&, const Value& v, CallArgs& a) {
        a.check("filter", 0, {});
        return Value(f(v.to_str()));
      };
    };
    r["upper"] = text(str_upper);
    r["lower"] = text(str_lower);
    r["capitalize"] = text(str_capitalize);
    r["title"] = [](Interpreter&, const Value& v, CallArgs&) { return Value(jinja_title(v.to_str())); };
    r["trim"] = [](Interpreter&, const Value& v, CallArgs& a) {
      a.check("trim", 1, {"chars"});
      const Value* chars = a.get(0, "chars");
      const std::string* c = chars && !chars->is_none() ? &arg_string(chars, "chars") : nullptr;
      return Value(str_strip(v.to_str(), c, true, true));
    };
    r["replace"] = [](Interpreter&, const Value& v, CallArgs& a) {
      a.check("replace", 3, {"old", "new", "count"});
      return Value(str_replace(v.to_str(), arg_string(a.get(0, "old"), "old"),
                               arg_string(a.get(1, "new"), "new"), arg_int(a.get(2, "count"), "count", -1)));
    };
    r["indent"] = [](Interpreter&, const Value& v, CallArgs& a) {
      a.check("indent", 3, {"width", "first", "blank"});
      return Value(indent(v.to_str(), a.get(0, "width"), arg_bool(a.get(1, "first"), false),
                          arg_bool(a.get(2, "blank"), false)));
    };
    r["string"] = [](Interpreter&, const Value& v, CallArgs&) { return Value(v.to_str()); };
    r["safe"] = [](Interpreter&, const Value& v, CallArgs&) { return v; };
    r["escape"] = [](Interpreter&, const Value& v, CallArgs&) { return Value(html_escape(v.to_str())); };
    r["e"] = r["escape"];
    r["int"] = [](Interpreter&, const Value& v, CallArgs& a) { return to_int(v, a); };
    r["float"] = [](Interpreter&, const Value& v, CallArgs& a) { return to_float(v, a); };
    r["round"] = [](Interpreter&, const Value& v, CallArgs& a) { return round_filter(v, a); };
    r["abs"] = [](Interpreter&, const Value& v, CallArgs&) {
      v.require_defined();
      if (!v.is_number()) fail("bad operand type for abs(): '" + v.type_name() + "'");
      if (v.is_float()) return Value(std::fabs(v.as_float()));
      return v.to_int() < 0 ? negate(v, true) : Value(v.to_int());
    };
    r["length"] = [](Interpreter&, const Value& v, CallArgs&) { return Value(v.length()); };
    r["count"] = r["length"];
    r["default"] = [](Interpreter&, const Value& v, CallArgs& a) {
      a.check("default", 2, {"default_value", "boolean"});
      const Value* d = a.get(0, "default_value");
      bool boolean = arg_bool(a.get(1, "boolean"), false);
      if (v.is_undefined() || (boolean && !v.truthy())) return d ? *d : Value("");
      return v;
    };
    r["d"] = r["default"];
    r["tojson"] = [](Interpreter&, const Value& v, CallArgs& a) { return Value(tojson(v, a)); };
    r["format"] = [](Interpreter&, const Value& v, CallArgs& a) {
      if (!a.positional.empty() && !a.keyword.empty()) fail("can't handle positional and keyword arguments at the same time");
      if (a.keyword.empty()) return Value(percent_format(v.to_str(), Value::list(a.positional, true)));
      auto d = std::make_shared<Dict>();
      for (auto& [k, x] : a.keyword) d->set(Value(k), x);
      return Value(percent_format(v.to_str(), Value::dict(std::move(d))));
    };
    r["center"] = [](Interpreter&, const Value& v, CallArgs& a) {
      a.check("center", 1, {"width"});
      return Value(center(v.to_str(), arg_int(a.get(0, "width"), "width", 80)));
    };
    r["truncate"] = [](Interpreter&, const Value& v, CallArgs& a) { return Value(truncate(v.to_str(), a)); };
    r["wordcount"] = [](Interpreter&, const Value& v, CallArgs&) {
      return Value(static_cast<int64_t>(word_count(v.to_str())));
    };
    r["attr"] = [](Interpreter&, const Value& v, CallArgs& a) {
      a.check("attr", 1, {"name"});
      return get_attr(v, arg_string(a.get(0, "name"), "name"), false);
    };
    add_sequence_filters(r);
    return r;
  }();
  return registry;
}

bool has_filter(std::string_view name) { return filter_registry().count(std::string(name)) > 0; }

Value apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args) {
  auto& r = filter_registry();
  auto it = r.find(name);
  if (it == r.end()) fail("no filter named '" + name + "'");
  return it->second(in, input, args);
}

}  // namespace ds::jinja
