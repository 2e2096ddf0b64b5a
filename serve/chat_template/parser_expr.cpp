// Expression parsing, with Jinja's precedence (lowest first): conditional `x if c else y`,
// or, and, not, comparisons / in, + -, ~, * / // %, **, unary - +, then filters `|`, tests `is`,
// calls, attribute and subscript access.
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "serve/chat_template/builtins.h"
#include "serve/chat_template/parser.h"

namespace ds::jinja {

static ExprPtr make(Expr::Kind k, size_t pos) { return std::make_unique<Expr>(k, pos); }

static ExprPtr binary(BinaryOp op, ExprPtr l, ExprPtr r) {
  auto e = make(Expr::Kind::kBinary, l->pos);
  e->op = op;
  e->children.push_back(std::move(l));
  e->children.push_back(std::move(r));
  return e;
}

ExprPtr Parser::parse_tuple(bool with_condexpr, bool explicit_parens) {
  size_t pos = cur().pos;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) {
      if (!skip_op(",")) break;
      is_tuple = true;
    }
    // A trailing comma ends the tuple.
    if (cur().type == TokenType::kVarEnd || cur().type == TokenType::kBlockEnd || is_op(")") ||
        (!items.empty() && (is_name("in") || is_name("if") || is_op("="))))
      break;
    items.push_back(parse_expression(with_condexpr));
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) unexpected("an expression");
  }
  auto t = make(Expr::Kind::kTuple, pos);
  t->children = std::move(items);
  return t;
}

ExprPtr Parser::parse_expression(bool with_condexpr) {
  return with_condexpr ? parse_condexpr() : parse_or();
}

ExprPtr Parser::parse_condexpr() {
  DepthGuard guard(*this);
  ExprPtr expr = parse_or();
  while (skip_name("if")) {
    auto cond = make(Expr::Kind::kCond, expr->pos);
    ExprPtr test = parse_or();
    ExprPtr otherwise = skip_name("else") ? parse_condexpr() : nullptr;
    cond->children.push_back(std::move(expr));
    cond->children.push_back(std::move(test));
    cond->children.push_back(std::move(otherwise));
    expr = std::move(cond);
  }
  return expr;
}

ExprPtr Parser::parse_or() {
  ExprPtr left = parse_and();
  while (skip_name("or")) left = binary(BinaryOp::kOr, std::move(left), parse_and());
  return left;
}

ExprPtr Parser::parse_and() {
  ExprPtr left = parse_not();
  while (skip_name("and")) left = binary(BinaryOp::kAnd, std::move(left), parse_not());
  return left;
}

ExprPtr Parser::parse_not() {
  if (is_name("not")) {
    DepthGuard guard(*this);
    auto e = make(Expr::Kind::kNot, cur().pos);
    advance();
    e->children.push_back(parse_not());
    return e;
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
  ExprPtr first = parse_math1();
  auto cmp = make(Expr::Kind::kCompare, first->pos);
  cmp->children.push_back(std::move(first));
  while (true) {
    BinaryOp op;
    if (is_op("==")) op = BinaryOp::kEq;
    else if (is_op("!=")) op = BinaryOp::kNe;
    else if (is_op("<")) op = BinaryOp::kLt;
    else if (is_op("<=")) op = BinaryOp::kLe;
    else if (is_op(">")) op = BinaryOp::kGt;
    else if (is_op(">=")) op = BinaryOp::kGe;
    else if (is_name("in")) op = BinaryOp::kIn;
    else if (is_name("not") && peek().type == TokenType::kName && peek().value == "in") {
      op = BinaryOp::kNotIn;
      advance();
    } else {
      break;
    }
    advance();
    cmp->compare_ops.push_back(op);
    cmp->children.push_back(parse_math1());
  }
  if (cmp->compare_ops.empty()) return std::move(cmp->children[0]);
  return cmp;
}

ExprPtr Parser::parse_math1() {
  ExprPtr left = parse_concat();
  while (is_op("+") || is_op("-")) {
    BinaryOp op = is_op("+") ? BinaryOp::kAdd : BinaryOp::kSub;
    advance();
    left = binary(op, std::move(left), parse_concat());
  }
  return left;
}

ExprPtr Parser::parse_concat() {
  ExprPtr left = parse_math2();
  while (skip_op("~")) left = binary(BinaryOp::kConcat, std::move(left), parse_math2());
  return left;
}

ExprPtr Parser::parse_math2() {
  ExprPtr left = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    BinaryOp op = is_op("*") ? BinaryOp::kMul : is_op("/") ? BinaryOp::kDiv
                : is_op("//") ? BinaryOp::kFloorDiv : BinaryOp::kMod;
    advance();
    left = binary(op, std::move(left), parse_pow());
  }
  return left;
}

ExprPtr Parser::parse_pow() {
  ExprPtr left = parse_unary();
  while (skip_op("**")) left = binary(BinaryOp::kPow, std::move(left), parse_unary());
  return left;
}

ExprPtr Parser::parse_unary(bool with_filter) {
  DepthGuard guard(*this);
  ExprPtr node;
  if (is_op("-") || is_op("+")) {
    node = make(is_op("-") ? Expr::Kind::kNeg : Expr::Kind::kPos, cur().pos);
    advance();
    node->children.push_back(parse_unary(false));
  } else {
    node = parse_postfix(parse_primary());
  }
  if (with_filter) node = parse_filter_expr(std::move(node));
  return node;
}

ExprPtr Parser::parse_primary() {
  const Token t = cur();
  switch (t.type) {
    case TokenType::kName: {
      advance();
      auto e = make(Expr::Kind::kLiteral, t.pos);
      if (t.value == "true" || t.value == "True") e->value = Value(true);
      else if (t.value == "false" || t.value == "False") e->value = Value(false);
      else if (t.value == "none" || t.value == "None") e->value = Value::none();
      else {
        e->kind = Expr::Kind::kName;
        e->name = t.value;
        for (auto& names : macro_names_) names.insert(t.value);
      }
      return e;
    }
    case TokenType::kString: {
      std::string s;
      while (cur().type == TokenType::kString) {
        s += cur().value;
        advance();
      }
      auto e = make(Expr::Kind::kLiteral, t.pos);
      e->value = Value(std::move(s));
      return e;
    }
    case TokenType::kInteger: {
      advance();
      std::string digits;
      for (char c : t.value)
        if (c != '_') digits.push_back(c);
      int base = 10;
      if (digits.size() > 1 && digits[0] == '0' && std::isalpha(static_cast<unsigned char>(digits[1]))) {
        char b = static_cast<char>(std::tolower(digits[1]));
        base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
        digits = digits.substr(2);
      }
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(digits.c_str(), &end, base);
      if (errno == ERANGE) error(t.pos, "integer literal out of range");
      auto e = make(Expr::Kind::kLiteral, t.pos);
      e->value = Value(static_cast<int64_t>(v));
      return e;
    }
    case TokenType::kFloat: {
      advance();
      std::string digits;
      for (char c : t.value)
        if (c != '_') digits.push_back(c);
      auto e = make(Expr::Kind::kLiteral, t.pos);
      e->value = Value(std::strtod(digits.c_str(), nullptr));
      return e;
    }
    case TokenType::kOperator: {
      if (t.value == "(") {
        advance();
        ExprPtr inner = parse_tuple(true, true);
        expect_op(")");
        return inner;
      }
      if (t.value == "[" || t.value == "{") {
        bool is_dict = t.value == "{";
        advance();
        auto e = make(is_dict ? Expr::Kind::kDict : Expr::Kind::kList, t.pos);
        const char* close = is_dict ? "}" : "]";
        while (!skip_op(close)) {
          if (!e->children.empty()) {
            expect_op(",");
            if (skip_op(close)) break;
          }
          e->children.push_back(parse_expression());
          if (is_dict) {
            expect_op(":");
            e->children.push_back(parse_expression());
          }
        }
        return e;
      }
      break;
    }
    default:
      break;
  }
  unexpected("an expression");
}

ExprPtr Parser::parse_postfix(ExprPtr node) {
  while (true) {
    if (is_op(".") || is_op("[")) node = parse_subscript(std::move(node));
    else if (is_op("(")) node = parse_call(std::move(node));
    else return node;
  }
}

ExprPtr Parser::parse_filter_expr(ExprPtr node) {
  while (true) {
    if (is_op("|")) node = parse_filter(std::move(node));
    else if (is_name("is")) node = parse_test(std::move(node));
    else if (is_op("(")) node = parse_call(std::move(node));
    else return node;
  }
}

ExprPtr Parser::parse_subscript(ExprPtr node) {
  DepthGuard guard(*this);
  // Postfix expressions report errors at the start of the whole expression.
  size_t pos = node->pos;
  if (skip_op(".")) {
    if (cur().type == TokenType::kName) {
      auto e = make(Expr::Kind::kGetAttr, pos);
      e->name = cur().value;
      advance();
      e->children.push_back(std::move(node));
      return e;
    }
    if (cur().type != TokenType::kInteger) unexpected("an attribute name");
    auto e = make(Expr::Kind::kGetItem, pos);
    e->children.push_back(std::move(node));
    e->children.push_back(parse_primary());
    return e;
  }
  expect_op("[");
  std::vector<ExprPtr> args;
  while (!skip_op("]")) {
    if (!args.empty()) {
      expect_op(",");
      if (skip_op("]")) break;
    }
    args.push_back(parse_subscribed());
  }
  if (args.empty()) error(cur().pos, "expected a subscript");
  auto e = make(Expr::Kind::kGetItem, pos);
  e->children.push_back(std::move(node));
  if (args.size() == 1) {
    e->children.push_back(std::move(args[0]));
  } else {
    auto t = make(Expr::Kind::kTuple, pos);
    t->children = std::move(args);
    e->children.push_back(std::move(t));
  }
  return e;
}

ExprPtr Parser::parse_subscribed() {
  size_t pos = cur().pos;
  ExprPtr parts[3];
  if (!is_op(":")) {
    parts[0] = parse_expression();
    if (!is_op(":")) return std::move(parts[0]);
  }
  advance();  // first ':'
  if (!is_op("]") && !is_op(",") && !is_op(":")) parts[1] = parse_expression();
  if (skip_op(":") && !is_op("]") && !is_op(",")) parts[2] = parse_expression();
  auto s = make(Expr::Kind::kSlice, pos);
  for (auto& p : parts) s->children.push_back(std::move(p));
  return s;
}

void Parser::parse_call_args(Expr& call) {
  expect_op("(");
  bool first = true;
  while (!skip_op(")")) {
    if (!first) {
      expect_op(",");
      if (skip_op(")")) break;
    }
    first = false;
    if (skip_op("*")) {
      call.dyn_args = parse_expression();
    } else if (skip_op("**")) {
      call.dyn_kwargs = parse_expression();
    } else if (cur().type == TokenType::kName && peek().type == TokenType::kOperator &&
               peek().value == "=") {
      std::string key = cur().value;
      advance();
      advance();
      call.kwargs.emplace_back(std::move(key), parse_expression());
    } else {
      if (!call.kwargs.empty() || call.dyn_args || call.dyn_kwargs)
        error(cur().pos, "positional argument follows keyword argument");
      call.children.push_back(parse_expression());
    }
  }
}

ExprPtr Parser::parse_call(ExprPtr callee) {
  DepthGuard guard(*this);
  auto e = make(Expr::Kind::kCall, callee->pos);
  e->children.push_back(std::move(callee));
  parse_call_args(*e);
  return e;
}

ExprPtr Parser::parse_filter(ExprPtr input, bool inline_start) {
  DepthGuard guard(*this);
  if (!inline_start) expect_op("|");
  size_t pos = cur().pos;
  auto e = make(Expr::Kind::kFilter, input ? input->pos : pos);
  e->name = expect_name("a filter name");
  if (!has_filter(e->name)) error(pos, "no filter named '" + e->name + "'");
  e->children.push_back(std::move(input));
  if (is_op("(")) parse_call_args(*e);
  return e;
}

ExprPtr Parser::parse_test(ExprPtr input) {
  DepthGuard guard(*this);
  advance();  // is
  auto e = make(Expr::Kind::kTest, input->pos);
  e->negated = skip_name("not");
  size_t pos = cur().pos;
  e->name = expect_name("a test name");
  if (!has_test(e->name)) error(pos, "no test named '" + e->name + "'");
  e->children.push_back(std::move(input));
  const Token& t = cur();
  if (is_op("(")) {
    parse_call_args(*e);
  } else if ((t.type == TokenType::kName || t.type == TokenType::kString ||
              t.type == TokenType::kInteger || t.type == TokenType::kFloat || is_op("[") ||
              is_op("{")) &&
             !is_name("else") && !is_name("or") && !is_name("and")) {
    if (is_name("is")) error(t.pos, "you cannot chain multiple tests with is");
    e->children.push_back(parse_postfix(parse_primary()));
  }
  return e;
}

}  // namespace ds::jinja
