// Global functions: Jinja's range, namespace, dict, joiner, cycler, and the ones Hugging Face adds for
// chat templates: raise_exception(message) and strftime_now(format).
#include <ctime>

#include "serve/chat_template/builtins.h"
#include "serve/chat_template/interpreter.h"

namespace ds::jinja {

// Jinja's sandbox refuses larger ranges (MAX_RANGE).
constexpr int64_t kMaxRange = 100000;

static Value range_fn(Interpreter&, CallArgs& a) {
  a.check("range", 3, {});
  if (a.positional.empty()) fail("range expected at least 1 argument, got 0");
  int64_t start = 0, stop = 0, step = 1;
  if (a.positional.size() == 1) {
    stop = arg_int(&a.positional[0], "stop", 0);
  } else {
    start = arg_int(&a.positional[0], "start", 0);
    stop = arg_int(&a.positional[1], "stop", 0);
    if (a.positional.size() == 3) step = arg_int(&a.positional[2], "step", 1);
  }
  if (step == 0) fail("range() arg 3 must not be zero");
  // Count without overflow: ceil((stop - start) / step) when positive.
  __int128 span = static_cast<__int128>(stop) - start;
  __int128 n = 0;
  if ((step > 0 && span > 0) || (step < 0 && span < 0)) n = (span + step + (step > 0 ? -1 : 1)) / step;
  if (n > kMaxRange) fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  ValueList out;
  for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) out.emplace_back(start + i * step);
  return Value::list(std::move(out));
}

static Value namespace_fn(Interpreter& in, CallArgs& a) {
  auto ns = std::make_shared<Namespace>();
  for (const Value& p : a.positional) {
    if (!p.is_dict()) fail("namespace() positional arguments must be mappings");
    for (const auto& [k, v] : p.map().entries) ns->attrs.set(k, v);
  }
  for (const auto& [k, v] : a.keyword) ns->attrs.set(Value(k), v);
  in.track(ns);
  return Value::ns(std::move(ns));
}

static Value dict_fn(Interpreter&, CallArgs& a) {
  if (a.positional.size() > 1) fail("dict expected at most 1 argument, got " + std::to_string(a.positional.size()));
  auto d = std::make_shared<Dict>();
  if (!a.positional.empty()) {
    const Value& src = a.positional[0];
    if (src.is_dict()) {
      d->entries = src.map().entries;
    } else {
      for (const Value& pair : src.iterate()) {
        ValueList kv = pair.iterate();
        if (kv.size() != 2) fail("dictionary update sequence element has length " + std::to_string(kv.size()) + "; 2 is required");
        d->set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : a.keyword) d->set(Value(k), v);
  return Value::dict(std::move(d));
}

static Value raise_exception_fn(Interpreter&, CallArgs& a) {
  a.check("raise_exception", 1, {"message"});
  const Value* m = a.get(0, "message");
  // The template's own message is the error, verbatim.
  throw Error(m ? m->to_str() : std::string("raise_exception called"), true);
}

static Value strftime_now_fn(Interpreter&, CallArgs& a) {
  a.check("strftime_now", 1, {"format"});
  const std::string& fmt = arg_string(a.get(0, "format"), "format");
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  if (fmt.empty()) return Value("");
  std::string buf(fmt.size() * 8 + 64, '\0');
  size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &local);
  if (n == 0) fail("strftime_now: format produced no output or is too long");
  buf.resize(n);
  return Value(std::move(buf));
}

static Value joiner_fn(Interpreter&, CallArgs& a) {
  a.check("joiner", 1, {"sep"});
  const Value* sep = a.get(0, "sep");
  std::string s = sep ? sep->to_str() : ", ";
  auto used = std::make_shared<bool>(false);
  return Value::function("joiner", [s, used](Interpreter&, CallArgs&) {
    if (!*used) {
      *used = true;
      return Value("");
    }
    return Value(s);
  });
}

// cycler(a, b, ...): an object with next(), reset() and `current`.
static Value cycler_fn(Interpreter&, CallArgs& a) {
  if (a.positional.empty()) fail("at least one item has to be provided");
  if (!a.keyword.empty()) fail("cycler() takes no keyword arguments");
  auto items = std::make_shared<const ValueList>(a.positional);
  auto pos = std::make_shared<size_t>(0);
  auto attrs = std::make_shared<Dict>();
  // The methods update `current` in the attribute table that holds them (weakly, no cycle).
  std::weak_ptr<Dict> table = attrs;
  auto set_current = [items, pos, table] {
    if (auto d = table.lock()) d->entries[0].second = (*items)[*pos];
  };
  attrs->entries.emplace_back(Value("current"), items->front());
  attrs->entries.emplace_back(Value("next"), Value::function("next", [items, pos, set_current](Interpreter&, CallArgs&) {
    Value rv = (*items)[*pos];
    *pos = (*pos + 1) % items->size();
    set_current();
    return rv;
  }));
  attrs->entries.emplace_back(Value("reset"), Value::function("reset", [pos, set_current](Interpreter&, CallArgs&) {
    *pos = 0;
    set_current();
    return Value::none();
  }));
  return Value::function(
      "cycler", [](Interpreter&, CallArgs&) -> Value { fail("'Cycler' object is not callable"); },
      std::move(attrs), "<jinja2.utils.Cycler object>");
}

void add_globals(std::unordered_map<std::string, Value>& g) {
  g["range"] = Value::function("range", range_fn);
  g["namespace"] = Value::function("namespace", namespace_fn);
  g["dict"] = Value::function("dict", dict_fn);
  g["joiner"] = Value::function("joiner", joiner_fn);
  g["cycler"] = Value::function("cycler", cycler_fn);
  g["raise_exception"] = Value::function("raise_exception", raise_exception_fn);
  g["strftime_now"] = Value::function("strftime_now", strftime_now_fn);
}

}  // namespace ds::jinja
