// Python str methods available to templates ('abc'.split(), .startswith(), .format(), ...).
#include <optional>

#include "serve/chat_template/builtins.h"
#include "serve/chat_template/utf8.h"

namespace ds::jinja {

namespace {

const std::string* optional_string(const CallArgs& a, size_t i, std::string_view name) {
  const Value* v = a.get(i, name);
  if (!v || v->is_none()) return nullptr;
  return &arg_string(v, name);
}

// Code point index of a byte offset.
int64_t cp_index(const std::string& s, size_t byte) {
  return utf8_length(std::string_view(s).substr(0, byte));
}

bool affix_matches(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const Value& v) {
    const std::string& a = arg_string(&v, prefix ? "prefix" : "suffix");
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_tuple()) {
    for (const Value& v : affix.items())
      if (one(v)) return true;
    return false;
  }
  return one(affix);
}

// Python str.format with automatic ({}) or manual ({0}) numbering and named fields.
std::string str_format(const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') ++i;
      else fail("Single '}' encountered in format string");
      out.push_back('}');
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) fail("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 0;
    if (size_t bang = field.find('!'); bang != std::string::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 0;
      field.resize(bang);
    }
    if (field.find(':') != std::string::npos) fail("format specifications in str.format are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      if (auto_index >= a.positional.size()) fail("Replacement index " + std::to_string(auto_index) + " out of range");
      v = &a.positional[auto_index++];
    } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
      size_t idx = std::stoul(field);
      if (idx >= a.positional.size()) fail("Replacement index " + field + " out of range");
      v = &a.positional[idx];
    } else {
      for (const auto& [k, kv] : a.keyword)
        if (k == field) v = &kv;
      if (!v) fail("KeyError: " + repr_string(field));
    }
    out += conversion == 'r' ? v->repr() : v->to_str();
  }
  return out;
}

template <typename Pred>
bool all_chars(const std::string& s, Pred p) {
  if (s.empty()) return false;
  for (char32_t cp : utf8_decode(s))
    if (!p(cp)) return false;
  return true;
}

}  // namespace

std::optional<Value> str_method(const Value& self, const std::string& name) {
  using Fn = std::function<Value(CallArgs&)>;
  Fn fn;
  if (name == "split" || name == "rsplit") {
    fn = [self, name](CallArgs& a) {
      const std::string& s = self.str();
      a.check(name, 2, {"sep", "maxsplit"});
      const std::string* sep = optional_string(a, 0, "sep");
      if (sep && sep->empty()) fail("empty separator");
      ValueList out;
      for (auto& part : str_split(s, sep, arg_int(a.get(1, "maxsplit"), "maxsplit", -1), name == "rsplit"))
        out.emplace_back(std::move(part));
      return Value::list(std::move(out));
    };
  } else if (name == "strip" || name == "lstrip" || name == "rstrip") {
    fn = [self, name](CallArgs& a) {
      const std::string& s = self.str();
      a.check(name, 1, {});
      return Value(str_strip(s, optional_string(a, 0, "chars"), name != "rstrip", name != "lstrip"));
    };
  } else if (name == "startswith" || name == "endswith") {
    fn = [self, name](CallArgs& a) {
      const std::string& s = self.str();
      a.check(name, 1, {});
      if (a.positional.empty()) fail(name + "() takes at least 1 argument (0 given)");
      return Value(affix_matches(s, a.positional[0], name == "startswith"));
    };
  } else if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    fn = [self, name](CallArgs& a) {
      const std::string& s = self.str();
      a.check(name, 0, {});
      if (name == "upper") return Value(str_upper(s));
      if (name == "lower") return Value(str_lower(s));
      return Value(name == "title" ? str_title(s) : str_capitalize(s));
    };
  } else if (name == "replace") {
    fn = [self](CallArgs& a) {
      const std::string& s = self.str();
      a.check("replace", 3, {"count"});
      const std::string& from = arg_string(a.get(0, "old"), "old");
      const std::string& to = arg_string(a.get(1, "new"), "new");
      return Value(str_replace(s, from, to, arg_int(a.get(2, "count"), "count", -1)));
    };
  } else if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    fn = [self, name](CallArgs& a) {
      const std::string& s = self.str();
      a.check(name, 1, {});
      const std::string& sub = arg_string(a.get(0, "sub"), "sub");
      if (name == "count") {
        if (sub.empty()) return Value(utf8_length(s) + 1);
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return Value(n);
      }
      size_t p = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
      if (p == std::string::npos) {
        if (name == "index" || name == "rindex") fail("substring not found");
        return Value(int64_t{-1});
      }
      return Value(cp_index(s, p));
    };
  } else if (name == "removeprefix" || name == "removesuffix") {
    fn = [self, name](CallArgs& a) {
      const std::string& s = self.str();
      a.check(name, 1, {});
      const std::string& x = arg_string(a.get(0, "affix"), "affix");
      if (name == "removeprefix") return Value(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
      bool ends = x.size() <= s.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
      return Value(ends ? s.substr(0, s.size() - x.size()) : s);
    };
  } else if (name == "join") {
    fn = [self](CallArgs& a) {
      const std::string& s = self.str();
      a.check("join", 1, {});
      std::string out;
      ValueList items = a.positional.empty() ? ValueList{} : a.positional[0].iterate();
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string())
          fail("sequence item " + std::to_string(i) + ": expected str instance, " + items[i].type_name() + " found");
        if (i) out += s;
        out += items[i].str();
      }
      return Value(std::move(out));
    };
  } else if (name == "splitlines") {
    fn = [self](CallArgs& a) {
      const std::string& s = self.str();
      a.check("splitlines", 1, {"keepends"});
      bool keep = arg_bool(a.get(0, "keepends"), false);
      ValueList out;
      size_t start = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\n' && s[i] != '\r') continue;
        size_t end = i;
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        out.emplace_back(s.substr(start, (keep ? i + 1 : end) - start));
        start = i + 1;
      }
      if (start < s.size()) out.emplace_back(s.substr(start));
      return Value::list(std::move(out));
    };
  } else if (name == "format") {
    fn = [self](CallArgs& a) { return Value(str_format(self.str(), a)); };
  } else if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" ||
             name == "islower" || name == "isupper") {
    fn = [self, name](CallArgs& a) {
      const std::string& s = self.str();
      a.check(name, 0, {});
      if (name == "isdigit") return Value(all_chars(s, is_digit));
      if (name == "isalpha") return Value(all_chars(s, is_alpha));
      if (name == "isalnum") return Value(all_chars(s, [](char32_t c) { return is_alpha(c) || is_digit(c); }));
      if (name == "isspace") return Value(all_chars(s, is_space));
      bool lower = name == "islower";
      bool cased = false;
      for (char32_t cp : utf8_decode(s)) {
        if (to_upper(cp) != cp || to_lower(cp) != cp) {
          cased = true;
          if (lower ? to_lower(cp) != cp : to_upper(cp) != cp) return Value(false);
        }
      }
      return Value(cased);
    };
  } else {
    return std::nullopt;
  }
  return Value::function(name, [fn = std::move(fn)](Interpreter&, CallArgs& a) { return fn(a); });
}

}  // namespace ds::jinja
