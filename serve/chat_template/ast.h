// Syntax tree of a parsed template: expressions (Expr) and statements (Stmt).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "serve/chat_template/value.h"

namespace ds::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class BinaryOp {
  kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow, kConcat, kAnd, kOr,
  kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn,
};

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kList,      // children = elements
    kTuple,     // children = elements
    kDict,      // children = key0, value0, key1, value1, ...
    kGetAttr,   // children[0] . name
    kGetItem,   // children[0] [ children[1] ]
    kSlice,     // children = start, stop, step (null where omitted)
    kCall,      // children[0] ( children[1..] , kwargs ); dyn_args / dyn_kwargs
    kFilter,    // name; children[0] = input (null inside {% filter %}), children[1..] = args
    kTest,      // name; children[0] = input, children[1..] = args; negated
    kNot,       // children[0]
    kNeg,       // children[0]
    kPos,       // children[0]
    kBinary,    // op; children[0], children[1]
    kCompare,   // children[0] then (compare_ops[i], children[i + 1])
    kCond,      // children = then, test, else (else may be null)
  };

  Kind kind;
  size_t pos = 0;  // byte offset of the expression in the source
  Value value;
  std::string name;
  BinaryOp op = BinaryOp::kAdd;
  std::vector<BinaryOp> compare_ops;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args;    // *args
  ExprPtr dyn_kwargs;  // **kwargs
  bool negated = false;

  Expr(Kind k, size_t p) : kind(k), pos(p) {}
};

// An assignment target: a name, `ns.attr`, or a (nested) tuple of names.
struct Target {
  enum class Kind { kName, kAttr, kTuple };
  Kind kind = Kind::kName;
  std::string name;
  std::string attr;
  std::vector<Target> elements;
};

struct MacroDef {
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default may be null
  Body body;
  bool uses_varargs = false;
  bool uses_kwargs = false;
  bool uses_caller = false;
};

struct Stmt {
  enum class Kind {
    kText,       // text
    kPrint,      // exprs[0]
    kIf,         // exprs = conditions, bodies = branches (one more when there is an else)
    kFor,        // target, exprs = iter, filter (may be null); bodies = body, else; recursive
    kSet,        // target = exprs[0]
    kSetBlock,   // target; bodies[0]; exprs = filters applied to the rendered body
    kMacro,      // macro
    kCallBlock,  // exprs[0] = call; macro = the caller
    kFilterBlock,  // exprs = filters; bodies[0]
    kWith,       // targets/exprs assignments; bodies[0]
    kScope,      // bodies[0] rendered as is ({% generation %})
    kBreak,
    kContinue,
  };

  Kind kind;
  size_t pos = 0;
  std::string text;
  Target target;
  std::vector<Target> targets;
  std::vector<ExprPtr> exprs;
  std::vector<Body> bodies;
  std::shared_ptr<MacroDef> macro;
  bool recursive = false;  // {% for ... recursive %}

  Stmt(Kind k, size_t p) : kind(k), pos(p) {}
};

}  // namespace ds::jinja
