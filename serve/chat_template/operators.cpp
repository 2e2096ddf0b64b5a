// Python semantics of the binary and unary operators, membership and "%" formatting.
#include <cmath>
#include <cstdio>

#include "serve/chat_template/builtins.h"
#include "serve/chat_template/utf8.h"

namespace ds::jinja {

// Results of `*` on strings and lists larger than this fail instead of exhausting memory.
constexpr int64_t kMaxRepeatBytes = int64_t{1} << 28;

[[noreturn]] static void unsupported(const char* op, const Value& a, const Value& b) {
  fail(std::string("unsupported operand type(s) for ") + op + ": '" + a.type_name() + "' and '" +
       b.type_name() + "'");
}

[[noreturn]] static void overflow() { fail("integer overflow (values beyond 64 bits are not supported)"); }

static Value repeat(const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? Value("") : Value::list({}, seq.is_tuple());
  if (seq.is_string()) {
    if (static_cast<int64_t>(seq.str().size()) * n > kMaxRepeatBytes) fail("repeated string is too large");
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value(std::move(out));
  }
  if (static_cast<int64_t>(seq.items().size()) * n > kMaxRepeatBytes / 16) fail("repeated list is too large");
  ValueList out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return Value::list(std::move(out), seq.is_tuple());
}

static Value arith(BinaryOp op, const Value& a, const Value& b) {
  const bool ints = !a.is_float() && !b.is_float();
  switch (op) {
    case BinaryOp::kAdd: {
      if (ints) {
        int64_t r;
        if (__builtin_add_overflow(a.to_int(), b.to_int(), &r)) overflow();
        return Value(r);
      }
      return Value(a.to_double() + b.to_double());
    }
    case BinaryOp::kSub: {
      if (ints) {
        int64_t r;
        if (__builtin_sub_overflow(a.to_int(), b.to_int(), &r)) overflow();
        return Value(r);
      }
      return Value(a.to_double() - b.to_double());
    }
    case BinaryOp::kMul: {
      if (ints) {
        int64_t r;
        if (__builtin_mul_overflow(a.to_int(), b.to_int(), &r)) overflow();
        return Value(r);
      }
      return Value(a.to_double() * b.to_double());
    }
    case BinaryOp::kDiv: {
      if (b.to_double() == 0.0) fail("division by zero");
      return Value(a.to_double() / b.to_double());
    }
    case BinaryOp::kFloorDiv: {
      if (ints) {
        int64_t x = a.to_int(), y = b.to_int();
        if (y == 0) fail("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) overflow();
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
        return Value(q);
      }
      if (b.to_double() == 0.0) fail("float floor division by zero");
      return Value(std::floor(a.to_double() / b.to_double()));
    }
    case BinaryOp::kMod: {
      if (ints) {
        int64_t x = a.to_int(), y = b.to_int();
        if (y == 0) fail("integer division or modulo by zero");
        if (y == -1) return Value(int64_t{0});
        int64_t m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value(m);
      }
      double x = a.to_double(), y = b.to_double();
      if (y == 0.0) fail("float modulo");
      double m = std::fmod(x, y);
      if (m != 0.0 && ((m < 0) != (y < 0))) m += y;
      return Value(m);
    }
    case BinaryOp::kPow: {
      if (ints && b.to_int() >= 0) {
        int64_t base = a.to_int(), e = b.to_int(), r = 1;
        while (e-- > 0)
          if (__builtin_mul_overflow(r, base, &r)) overflow();
        return Value(r);
      }
      if (a.to_double() == 0.0 && b.to_double() < 0) fail("0.0 cannot be raised to a negative power");
      return Value(std::pow(a.to_double(), b.to_double()));
    }
    default:
      break;
  }
  fail("unsupported arithmetic operator");
}

Value binary_op(BinaryOp op, const Value& a, const Value& b) {
  switch (op) {
    case BinaryOp::kEq: return Value(a.equals(b));
    case BinaryOp::kNe: return Value(!a.equals(b));
    case BinaryOp::kLt: return Value(a.less(b));
    case BinaryOp::kGt: return Value(b.less(a));
    case BinaryOp::kLe: return Value(a.less(b) || a.equals(b));
    case BinaryOp::kGe: return Value(b.less(a) || a.equals(b));
    case BinaryOp::kIn: return Value(contains(b, a));
    case BinaryOp::kNotIn: return Value(!contains(b, a));
    case BinaryOp::kConcat: return Value(a.to_str() + b.to_str());
    default: break;
  }
  a.require_defined();
  b.require_defined();
  if (a.is_number() && b.is_number()) return arith(op, a, b);
  switch (op) {
    case BinaryOp::kAdd:
      if (a.is_string() && b.is_string()) return Value(a.str() + b.str());
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        ValueList out = a.items();
        out.insert(out.end(), b.items().begin(), b.items().end());
        return Value::list(std::move(out), a.is_tuple());
      }
      if (a.is_string()) fail("can only concatenate str (not \"" + b.type_name() + "\") to str");
      unsupported("+", a, b);
    case BinaryOp::kMul:
      if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.to_int());
      if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.to_int());
      unsupported("*", a, b);
    case BinaryOp::kMod:
      if (a.is_string()) return Value(percent_format(a.str(), b));
      unsupported("%", a, b);
    case BinaryOp::kSub: unsupported("-", a, b);
    case BinaryOp::kDiv: unsupported("/", a, b);
    case BinaryOp::kFloorDiv: unsupported("//", a, b);
    case BinaryOp::kPow: unsupported("** or pow()", a, b);
    default: fail("unsupported operator");
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined: return false;
    case Value::Kind::kString:
      if (!item.is_string()) fail("'in <string>' requires string as left operand, not " + item.type_name());
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.items())
        if (v.equals(item)) return true;
      return false;
    case Value::Kind::kDict: return container.map().find(item) != nullptr;
    default: fail("argument of type '" + container.type_name() + "' is not iterable");
  }
}

Value negate(const Value& v, bool minus) {
  v.require_defined();
  if (v.is_float()) return Value(minus ? -v.as_float() : v.as_float());
  if (v.is_int() || v.is_bool()) {
    int64_t r;
    if (!minus) return Value(v.to_int());
    if (__builtin_sub_overflow(int64_t{0}, v.to_int(), &r)) overflow();
    return Value(r);
  }
  fail(std::string("bad operand type for unary ") + (minus ? "-" : "+") + ": '" + v.type_name() + "'");
}

static std::string pad(std::string s, int64_t width, bool left_align, char fill = ' ') {
  int64_t len = utf8_length(s);
  if (len >= width) return s;
  std::string padding(static_cast<size_t>(width - len), fill);
  return left_align ? s + padding : padding + s;
}

std::string percent_format(const std::string& fmt, const Value& args) {
  ValueList positional;
  const Dict* mapping = args.is_dict() ? &args.map() : nullptr;
  if (args.is_tuple()) positional = args.items();
  else if (!mapping) positional.push_back(args);
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) fail("incomplete format");
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos || !mapping) fail("format requires a mapping");
      arg = mapping->find_key(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!arg) fail("KeyError: " + repr_string(fmt.substr(i + 1, close - i - 1)));
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string_view("-+ 0#").find(fmt[i]) != std::string_view::npos) flags += fmt[i++];
    int64_t width = 0;
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) width = width * 10 + (fmt[i++] - '0');
    int precision = -1;
    if (i < fmt.size() && fmt[i] == '.') {
      precision = 0;
      while (++i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) precision = precision * 10 + (fmt[i] - '0');
    }
    if (i >= fmt.size()) fail("incomplete format");
    char conv = fmt[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (!arg) {
      if (next >= positional.size()) fail("not enough arguments for format string");
      arg = &positional[next++];
    }
    bool left = flags.find('-') != std::string::npos;
    std::string text;
    if (conv == 's' || conv == 'r') {
      text = conv == 's' ? arg->to_str() : arg->repr();
      if (precision >= 0) text = utf8_encode([&] { auto c = utf8_decode(text); c.resize(std::min<size_t>(c.size(), static_cast<size_t>(precision))); return c; }());
    } else if (std::string_view("dixXeEfFgG").find(conv) != std::string_view::npos) {
      if (!arg->is_number()) fail(std::string("%") + conv + " format: a real number is required, not " + arg->type_name());
      std::string spec = "%" + flags + (precision >= 0 ? "." + std::to_string(precision) : "");
      char buf[512];
      if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X') {
        int64_t n = arg->is_float() ? static_cast<int64_t>(arg->as_float()) : arg->to_int();
        std::snprintf(buf, sizeof(buf), (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), static_cast<long long>(n));
      } else {
        std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), arg->to_double());
      }
      text = buf;
    } else {
      fail(std::string("unsupported format character '") + conv + "'");
    }
    bool zero = flags.find('0') != std::string::npos && !left && conv != 's' && conv != 'r';
    if (zero && !text.empty() && (text[0] == '-' || text[0] == '+')) {
      out += text[0] + pad(text.substr(1), width - 1, false, '0');
    } else {
      out += pad(text, width, left, zero ? '0' : ' ');
    }
  }
  if (!mapping && next < positional.size() && args.is_tuple())
    fail("not all arguments converted during string formatting");
  return out;
}

}  // namespace ds::jinja
