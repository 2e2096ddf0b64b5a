// Jinja filters on sequences and mappings: join, first, last, list, items, map, select*,
// reject*, sort, unique, reverse, min, max, sum, dictsort.
#include <algorithm>

#include "serve/chat_template/builtins.h"
#include "serve/chat_template/interpreter.h"
#include "serve/chat_template/utf8.h"

namespace ds::jinja {
namespace {

// Jinja's make_attrgetter: "a.b.0" looks up items (then attributes) part by part.
Value get_path(const Value& item, const Value& attribute) {
  if (!attribute.is_string()) return get_item(item, attribute);
  static const std::string kDot = ".";
  Value cur = item;
  for (const std::string& part : str_split(attribute.str(), &kDot, -1, false)) {
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = get_item(cur, numeric ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
  }
  return cur;
}

// Sort / compare key: strings are lowercased unless case_sensitive.
Value sort_key(const Value& v, const Value* attribute, bool case_sensitive) {
  Value k = attribute ? get_path(v, *attribute) : v;
  if (!case_sensitive && k.is_string()) return Value(str_lower(k.str()));
  return k;
}

ValueList sorted(const ValueList& items, const Value* attribute, bool case_sensitive, bool reverse) {
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& v : items) keyed.emplace_back(sort_key(v, attribute, case_sensitive), v);
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& a, const auto& b) {
    return reverse ? b.first.less(a.first) : a.first.less(b.first);
  });
  ValueList out;
  for (auto& [k, v] : keyed) out.push_back(std::move(v));
  return out;
}

const Value* attribute_arg(const CallArgs& a, size_t index) {
  const Value* v = a.get(index, "attribute");
  return v && !v->is_none() ? v : nullptr;
}

Value aggregate(const Value& v, CallArgs& a, bool want_max) {
  a.check(want_max ? "max" : "min", 2, {"case_sensitive", "attribute"});
  ValueList items = v.iterate();
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const Value* attribute = attribute_arg(a, 1);
  bool cs = arg_bool(a.get(0, "case_sensitive"), false);
  size_t best = 0;
  Value best_key = sort_key(items[0], attribute, cs);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = sort_key(items[i], attribute, cs);
    if (want_max ? best_key.less(k) : k.less(best_key)) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

// select / reject / selectattr / rejectattr.
Value select(Interpreter& in, const Value& v, CallArgs& a, bool by_attr, bool keep) {
  size_t first = 0;
  const Value* attribute = nullptr;
  if (by_attr) {
    if (a.positional.empty()) fail("selectattr/rejectattr need an attribute");
    attribute = &a.positional[0];
    first = 1;
  }
  std::string test;
  if (a.positional.size() > first) test = arg_string(&a.positional[first], "test name");
  if (!test.empty() && !has_test(test)) fail("no test named '" + test + "'");
  CallArgs test_args;
  for (size_t i = first + 1; i < a.positional.size(); ++i) test_args.positional.push_back(a.positional[i]);
  test_args.keyword = a.keyword;
  ValueList out;
  for (const Value& item : v.iterate()) {
    Value x = attribute ? get_path(item, *attribute) : item;
    bool r = test.empty() ? x.truthy() : apply_test(in, test, x, test_args);
    if (r == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value map_filter(Interpreter& in, const Value& v, CallArgs& a) {
  ValueList out;
  const Value* attribute = nullptr;
  const Value* dflt = nullptr;
  for (const auto& [k, x] : a.keyword) {
    if (k == "attribute") attribute = &x;
    else if (k == "default") dflt = &x;
  }
  if (attribute) {
    for (const Value& item : v.iterate()) {
      Value r = get_path(item, *attribute);
      out.push_back(r.is_undefined() && dflt ? *dflt : r);
    }
    return Value::list(std::move(out));
  }
  if (a.positional.empty()) fail("map requires a filter name or attribute=");
  const std::string& filter = arg_string(&a.positional[0], "filter name");
  if (!has_filter(filter)) fail("no filter named '" + filter + "'");
  for (const Value& item : v.iterate()) {
    CallArgs fa;
    fa.positional.assign(a.positional.begin() + 1, a.positional.end());
    fa.keyword = a.keyword;
    out.push_back(apply_filter(in, filter, item, fa));
  }
  return Value::list(std::move(out));
}

}  // namespace

void add_sequence_filters(FilterRegistry& r) {
  r["join"] = [](Interpreter&, const Value& v, CallArgs& a) {
    a.check("join", 2, {"d", "attribute"});
    const Value* sep = a.get(0, "d");
    std::string d = sep ? sep->to_str() : "";
    const Value* attribute = attribute_arg(a, 1);
    std::string out;
    bool first = true;
    for (const Value& item : v.iterate()) {
      if (!first) out += d;
      first = false;
      out += (attribute ? get_path(item, *attribute) : item).to_str();
    }
    return Value(std::move(out));
  };
  r["first"] = [](Interpreter&, const Value& v, CallArgs&) {
    ValueList items = v.iterate();
    return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
  };
  r["last"] = [](Interpreter&, const Value& v, CallArgs&) {
    ValueList items = v.iterate();
    return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
  };
  r["list"] = [](Interpreter&, const Value& v, CallArgs&) { return Value::list(v.iterate()); };
  r["items"] = [](Interpreter&, const Value& v, CallArgs&) {
    if (v.is_undefined()) return Value::list({});
    if (!v.is_dict()) fail("Can only get item pairs from a mapping.");
    ValueList out;
    for (const auto& [k, x] : v.map().entries) out.push_back(Value::list({k, x}, true));
    return Value::list(std::move(out));
  };
  r["reverse"] = [](Interpreter&, const Value& v, CallArgs&) {
    if (v.is_string()) {
      std::vector<char32_t> cps = utf8_decode(v.str());
      std::reverse(cps.begin(), cps.end());
      return Value(utf8_encode(cps));
    }
    ValueList items = v.iterate();
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  };
  r["sort"] = [](Interpreter&, const Value& v, CallArgs& a) {
    a.check("sort", 3, {"reverse", "case_sensitive", "attribute"});
    return Value::list(sorted(v.iterate(), attribute_arg(a, 2), arg_bool(a.get(1, "case_sensitive"), false),
                              arg_bool(a.get(0, "reverse"), false)));
  };
  r["unique"] = [](Interpreter&, const Value& v, CallArgs& a) {
    a.check("unique", 2, {"case_sensitive", "attribute"});
    const Value* attribute = attribute_arg(a, 1);
    bool cs = arg_bool(a.get(0, "case_sensitive"), false);
    ValueList out, seen;
    for (const Value& item : v.iterate()) {
      Value k = sort_key(item, attribute, cs);
      if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return s.equals(k); })) continue;
      seen.push_back(std::move(k));
      out.push_back(item);
    }
    return Value::list(std::move(out));
  };
  r["min"] = [](Interpreter&, const Value& v, CallArgs& a) { return aggregate(v, a, false); };
  r["max"] = [](Interpreter&, const Value& v, CallArgs& a) { return aggregate(v, a, true); };
  r["sum"] = [](Interpreter&, const Value& v, CallArgs& a) {
    a.check("sum", 2, {"attribute", "start"});
    const Value* attribute = attribute_arg(a, 0);
    const Value* start = a.get(1, "start");
    Value total = start ? *start : Value(0);
    for (const Value& item : v.iterate())
      total = binary_op(BinaryOp::kAdd, total, attribute ? get_path(item, *attribute) : item);
    return total;
  };
  r["dictsort"] = [](Interpreter&, const Value& v, CallArgs& a) {
    a.check("dictsort", 3, {"case_sensitive", "by", "reverse"});
    if (!v.is_dict()) fail("dictsort needs a mapping, not " + v.type_name());
    const Value* by = a.get(1, "by");
    std::string what = by ? arg_string(by, "by") : "key";
    if (what != "key" && what != "value") fail("You can only sort by either 'key' or 'value'");
    Value index(what == "key" ? 0 : 1);
    ValueList pairs;
    for (const auto& [k, x] : v.map().entries) pairs.push_back(Value::list({k, x}, true));
    return Value::list(sorted(pairs, &index, arg_bool(a.get(0, "case_sensitive"), false),
                              arg_bool(a.get(2, "reverse"), false)));
  };
  r["batch"] = [](Interpreter&, const Value& v, CallArgs& a) {
    a.check("batch", 2, {"linecount", "fill_with"});
    int64_t count = arg_int(a.get(0, "linecount"), "linecount", 0);
    if (count <= 0) fail("batch needs a positive linecount");
    const Value* fill = a.get(1, "fill_with");
    ValueList rows, row;
    for (const Value& item : v.iterate()) {
      if (static_cast<int64_t>(row.size()) == count) {
        rows.push_back(Value::list(std::move(row)));
        row.clear();
      }
      row.push_back(item);
    }
    if (!row.empty()) {
      while (fill && !fill->is_none() && static_cast<int64_t>(row.size()) < count) row.push_back(*fill);
      rows.push_back(Value::list(std::move(row)));
    }
    return Value::list(std::move(rows));
  };
  r["map"] = map_filter;
  r["select"] = [](Interpreter& in, const Value& v, CallArgs& a) { return select(in, v, a, false, true); };
  r["reject"] = [](Interpreter& in, const Value& v, CallArgs& a) { return select(in, v, a, false, false); };
  r["selectattr"] = [](Interpreter& in, const Value& v, CallArgs& a) { return select(in, v, a, true, true); };
  r["rejectattr"] = [](Interpreter& in, const Value& v, CallArgs& a) { return select(in, v, a, true, false); };
}

}  // namespace ds::jinja
