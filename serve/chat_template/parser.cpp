// Statement parsing: the tags {% if %}, {% for %}, {% set %}, {% macro %}, {% call %},
// {% filter %}, {% with %}, {% generation %}, {% break %} and {% continue %}.
#include "serve/chat_template/parser.h"

namespace ds::jinja {

constexpr int kMaxParseDepth = 200;

Parser::DepthGuard::DepthGuard(Parser& p) : p_(p) {
  if (++p_.depth_ > kMaxParseDepth) p_.error(p_.cur().pos, "template is nested too deeply");
}

Body parse_template(const std::string& source) {
  return Parser(source, tokenize(source)).parse_all();
}

Body Parser::parse_all() { return parse_body({}); }

const Token& Parser::peek(size_t ahead) const {
  return tokens_[std::min(idx_ + ahead, tokens_.size() - 1)];
}

bool Parser::skip_op(std::string_view op) {
  if (!is_op(op)) return false;
  advance();
  return true;
}

bool Parser::skip_name(std::string_view name) {
  if (!is_name(name)) return false;
  advance();
  return true;
}

void Parser::error(size_t pos, const std::string& what) const {
  throw Error("syntax error at " + describe_position(source_, pos) + ": " + what, true);
}

static std::string describe(const Token& t) {
  switch (t.type) {
    case TokenType::kData: return "template data";
    case TokenType::kVarBegin: return "'{{'";
    case TokenType::kVarEnd: return "end of print statement";
    case TokenType::kBlockBegin: return "'{%'";
    case TokenType::kBlockEnd: return "end of statement block";
    case TokenType::kString: return "string literal";
    case TokenType::kEof: return "end of template";
    default: return "'" + t.value + "'";
  }
}

void Parser::unexpected(std::string_view expected) const {
  error(cur().pos, "unexpected " + describe(cur()) + ", expected " + std::string(expected));
}

void Parser::expect_op(std::string_view op) {
  if (!skip_op(op)) unexpected("'" + std::string(op) + "'");
}

std::string Parser::expect_name(std::string_view what) {
  if (cur().type != TokenType::kName) unexpected(what);
  std::string name = cur().value;
  advance();
  return name;
}

void Parser::expect_block_end() {
  if (cur().type != TokenType::kBlockEnd) unexpected("end of statement block");
  advance();
}

Body Parser::parse_body(const std::vector<std::string_view>& end_tags) {
  DepthGuard guard(*this);
  Body body;
  while (true) {
    const Token& t = cur();
    switch (t.type) {
      case TokenType::kData: {
        auto s = std::make_unique<Stmt>(Stmt::Kind::kText, t.pos);
        s->text = t.value;
        body.push_back(std::move(s));
        advance();
        break;
      }
      case TokenType::kVarBegin: {
        size_t pos = t.pos;
        advance();
        auto s = std::make_unique<Stmt>(Stmt::Kind::kPrint, pos);
        s->exprs.push_back(parse_tuple());
        if (cur().type != TokenType::kVarEnd) unexpected("end of print statement");
        advance();
        body.push_back(std::move(s));
        break;
      }
      case TokenType::kBlockBegin: {
        const Token& name = peek();
        if (name.type == TokenType::kName) {
          for (std::string_view end : end_tags)
            if (name.value == end) return body;
        }
        body.push_back(parse_statement());
        break;
      }
      case TokenType::kEof: {
        if (!end_tags.empty()) {
          std::string expected;
          for (std::string_view e : end_tags) expected += (expected.empty() ? "'" : " or '") + std::string(e) + "'";
          error(t.pos, "unexpected end of template, expected " + expected);
        }
        return body;
      }
      default:
        unexpected("template data or a tag");
    }
  }
}

void Parser::expect_end_tag(std::string_view end_tag) {
  advance();  // {%
  if (!skip_name(end_tag)) unexpected("'" + std::string(end_tag) + "'");
  expect_block_end();
}

StmtPtr Parser::parse_statement() {
  size_t pos = cur().pos;
  advance();  // {%
  if (cur().type != TokenType::kName) unexpected("a statement name");
  std::string tag = cur().value;
  size_t tag_pos = cur().pos;
  advance();
  if (tag == "if") return parse_if(pos);
  if (tag == "for") return parse_for(pos);
  if (tag == "set") return parse_set(pos);
  if (tag == "macro") return parse_macro(pos);
  if (tag == "call") return parse_call_block(pos);
  if (tag == "filter") return parse_filter_block(pos);
  if (tag == "with") return parse_with(pos);
  if (tag == "generation") return parse_generation(pos);
  if (tag == "break" || tag == "continue") {
    if (loop_depth_ == 0) error(tag_pos, "'" + tag + "' outside of a loop");
    expect_block_end();
    return std::make_unique<Stmt>(tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, pos);
  }
  if (tag == "include" || tag == "import" || tag == "from" || tag == "extends" || tag == "block")
    error(tag_pos, "'" + tag + "' is not supported in chat templates (no template loader)");
  error(tag_pos, "encountered unknown tag '" + tag + "'");
}

StmtPtr Parser::parse_if(size_t pos) {
  auto s = std::make_unique<Stmt>(Stmt::Kind::kIf, pos);
  s->exprs.push_back(parse_tuple(false));
  expect_block_end();
  while (true) {
    s->bodies.push_back(parse_body({"elif", "else", "endif"}));
    advance();  // {%
    std::string tag = cur().value;
    advance();
    if (tag == "elif") {
      s->exprs.push_back(parse_tuple(false));
      expect_block_end();
    } else if (tag == "else") {
      expect_block_end();
      s->bodies.push_back(parse_body({"endif"}));
      expect_end_tag("endif");
      return s;
    } else {
      expect_block_end();
      return s;
    }
  }
}

StmtPtr Parser::parse_for(size_t pos) {
  auto s = std::make_unique<Stmt>(Stmt::Kind::kFor, pos);
  s->target = parse_target(false, true);
  if (!skip_name("in")) unexpected("'in'");
  s->exprs.push_back(parse_tuple(false));
  ExprPtr filter;
  if (skip_name("if")) filter = parse_expression();
  s->exprs.push_back(std::move(filter));
  s->recursive = skip_name("recursive");
  expect_block_end();
  ++loop_depth_;
  s->bodies.push_back(parse_body({"endfor", "else"}));
  --loop_depth_;
  if (peek().value == "else") {
    advance();
    advance();
    expect_block_end();
    s->bodies.push_back(parse_body({"endfor"}));
  } else {
    s->bodies.emplace_back();
  }
  expect_end_tag("endfor");
  return s;
}

Target Parser::parse_target_atom(bool allow_attr) {
  Target t;
  if (skip_op("(")) {
    t = parse_target(false, true);
    expect_op(")");
    return t;
  }
  t.name = expect_name("an assignment target");
  if (allow_attr && skip_op(".")) {
    t.kind = Target::Kind::kAttr;
    t.attr = expect_name("an attribute name");
  }
  return t;
}

Target Parser::parse_target(bool allow_attr, bool allow_tuple) {
  Target first = parse_target_atom(allow_attr);
  if (!allow_tuple || !is_op(",")) return first;
  Target tuple;
  tuple.kind = Target::Kind::kTuple;
  tuple.elements.push_back(std::move(first));
  while (skip_op(",")) {
    if (is_name("in") || is_op("=") || is_op(")") || cur().type == TokenType::kBlockEnd) break;
    tuple.elements.push_back(parse_target_atom(false));
  }
  return tuple;
}

StmtPtr Parser::parse_set(size_t pos) {
  Target target = parse_target(true, true);
  if (skip_op("=")) {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kSet, pos);
    s->target = std::move(target);
    s->exprs.push_back(parse_tuple());
    expect_block_end();
    return s;
  }
  if (target.kind == Target::Kind::kTuple) unexpected("'='");
  auto s = std::make_unique<Stmt>(Stmt::Kind::kSetBlock, pos);
  s->target = std::move(target);
  while (is_op("|")) s->exprs.push_back(parse_filter(nullptr));
  expect_block_end();
  s->bodies.push_back(parse_body({"endset"}));
  expect_end_tag("endset");
  return s;
}

void Parser::parse_macro_params(MacroDef& macro) {
  expect_op("(");
  while (!skip_op(")")) {
    if (!macro.params.empty()) expect_op(",");
    if (skip_op(")")) break;
    std::string name = expect_name("a parameter name");
    ExprPtr def;
    if (skip_op("=")) def = parse_expression();
    else if (!macro.params.empty() && macro.params.back().second)
      error(cur().pos, "non-default argument follows default argument");
    macro.params.emplace_back(std::move(name), std::move(def));
  }
}

std::shared_ptr<MacroDef> Parser::finish_macro(std::shared_ptr<MacroDef> macro,
                                               std::string_view end) {
  int saved_loops = loop_depth_;
  loop_depth_ = 0;
  macro_names_.emplace_back();
  macro->body = parse_body({end});
  loop_depth_ = saved_loops;
  std::set<std::string> names = std::move(macro_names_.back());
  macro_names_.pop_back();
  macro->uses_varargs = names.count("varargs") > 0;
  macro->uses_kwargs = names.count("kwargs") > 0;
  macro->uses_caller = names.count("caller") > 0;
  if (!macro_names_.empty()) macro_names_.back().insert(names.begin(), names.end());
  expect_end_tag(end);
  return macro;
}

StmtPtr Parser::parse_macro(size_t pos) {
  auto s = std::make_unique<Stmt>(Stmt::Kind::kMacro, pos);
  auto macro = std::make_shared<MacroDef>();
  macro->name = expect_name("a macro name");
  parse_macro_params(*macro);
  expect_block_end();
  s->macro = finish_macro(std::move(macro), "endmacro");
  return s;
}

StmtPtr Parser::parse_call_block(size_t pos) {
  auto s = std::make_unique<Stmt>(Stmt::Kind::kCallBlock, pos);
  auto macro = std::make_shared<MacroDef>();
  macro->name = "caller";
  if (is_op("(")) parse_macro_params(*macro);
  ExprPtr call = parse_expression();
  if (call->kind != Expr::Kind::kCall) error(call->pos, "expected a call expression after 'call'");
  s->exprs.push_back(std::move(call));
  expect_block_end();
  s->macro = finish_macro(std::move(macro), "endcall");
  return s;
}

StmtPtr Parser::parse_filter_block(size_t pos) {
  auto s = std::make_unique<Stmt>(Stmt::Kind::kFilterBlock, pos);
  s->exprs.push_back(parse_filter(nullptr, true));
  while (is_op("|")) s->exprs.push_back(parse_filter(nullptr));
  expect_block_end();
  s->bodies.push_back(parse_body({"endfilter"}));
  expect_end_tag("endfilter");
  return s;
}

StmtPtr Parser::parse_with(size_t pos) {
  auto s = std::make_unique<Stmt>(Stmt::Kind::kWith, pos);
  while (cur().type != TokenType::kBlockEnd) {
    if (!s->targets.empty()) expect_op(",");
    s->targets.push_back(parse_target(false, false));
    expect_op("=");
    s->exprs.push_back(parse_expression());
  }
  expect_block_end();
  s->bodies.push_back(parse_body({"endwith"}));
  expect_end_tag("endwith");
  return s;
}

StmtPtr Parser::parse_generation(size_t pos) {
  // Hugging Face's AssistantTracker tag: renders its body unchanged.
  auto s = std::make_unique<Stmt>(Stmt::Kind::kScope, pos);
  expect_block_end();
  s->bodies.push_back(parse_body({"endgeneration"}));
  expect_end_tag("endgeneration");
  return s;
}

}  // namespace ds::jinja
