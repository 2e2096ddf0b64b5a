// Recursive-descent parser from tokens to the syntax tree, following Jinja's grammar and
// operator precedence. Errors are jinja::Error with "line L, column C".
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "serve/chat_template/ast.h"
#include "serve/chat_template/lexer.h"

namespace ds::jinja {

// Parses a normalized source (see normalize_source) into its statements.
Body parse_template(const std::string& source);

class Parser {
 public:
  Parser(const std::string& source, std::vector<Token> tokens)
      : source_(source), tokens_(std::move(tokens)) {}

  Body parse_all();

 private:
  friend class ExprParser;
  // Statements (parser.cpp).
  Body parse_body(const std::vector<std::string_view>& end_tags);
  StmtPtr parse_statement();
  StmtPtr parse_if(size_t pos);
  StmtPtr parse_for(size_t pos);
  StmtPtr parse_set(size_t pos);
  StmtPtr parse_macro(size_t pos);
  StmtPtr parse_call_block(size_t pos);
  StmtPtr parse_filter_block(size_t pos);
  StmtPtr parse_with(size_t pos);
  StmtPtr parse_generation(size_t pos);
  void parse_macro_params(MacroDef& macro);
  std::shared_ptr<MacroDef> finish_macro(std::shared_ptr<MacroDef> macro, std::string_view end);
  Target parse_target(bool allow_attr, bool allow_tuple);
  Target parse_target_atom(bool allow_attr);
  // Consumes `{% end_tag %}` (the block tag was already peeked by parse_body).
  void expect_end_tag(std::string_view end_tag);

  // Expressions (parser_expr.cpp).
  ExprPtr parse_tuple(bool with_condexpr = true, bool explicit_parens = false);
  ExprPtr parse_expression(bool with_condexpr = true);
  ExprPtr parse_condexpr();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter = true);
  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_filter_expr(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node);
  ExprPtr parse_subscribed();
  ExprPtr parse_call(ExprPtr callee);
  void parse_call_args(Expr& call);
  // `| name(args)`; `inline_start` when the name comes without a pipe ({% filter name %}).
  ExprPtr parse_filter(ExprPtr input, bool inline_start = false);
  ExprPtr parse_test(ExprPtr input);

  // Token stream.
  const Token& cur() const { return tokens_[idx_]; }
  const Token& peek(size_t ahead = 1) const;
  void advance() {
    if (idx_ + 1 < tokens_.size()) ++idx_;
  }
  bool is_op(std::string_view op) const {
    return cur().type == TokenType::kOperator && cur().value == op;
  }
  bool is_name(std::string_view name) const {
    return cur().type == TokenType::kName && cur().value == name;
  }
  bool skip_op(std::string_view op);
  bool skip_name(std::string_view name);
  void expect_op(std::string_view op);
  std::string expect_name(std::string_view what);
  void expect_block_end();
  [[noreturn]] void error(size_t pos, const std::string& what) const;
  [[noreturn]] void unexpected(std::string_view expected) const;

  // Bounds parser recursion (nested expressions and blocks).
  class DepthGuard {
   public:
    explicit DepthGuard(Parser& p);
    ~DepthGuard() { --p_.depth_; }

   private:
    Parser& p_;
  };

  const std::string& source_;
  std::vector<Token> tokens_;
  size_t idx_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  // Names referenced inside the macro being parsed (for varargs / kwargs / caller).
  std::vector<std::set<std::string>> macro_names_;
};

}  // namespace ds::jinja
