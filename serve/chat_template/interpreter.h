// Tree-walking evaluator of a parsed template for one render: scopes, statements, macros and
// expression evaluation. One Interpreter renders one context once.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "serve/chat_template/ast.h"
#include "serve/chat_template/value.h"

namespace ds::jinja {

// A variable scope. For-loop iterations, macro calls, {% with %} and block bodies open a child
// frame; `set` writes to the innermost frame, lookups walk outwards, then reach the globals.
struct Frame {
  std::shared_ptr<Frame> parent;
  std::unordered_map<std::string, Value> vars;
};
using FramePtr = std::shared_ptr<Frame>;

class Interpreter {
 public:
  // `source` is the normalized template text (for error positions); `context` the render
  // variables (messages, add_generation_prompt, ...), which shadow the built-in globals.
  Interpreter(const std::string& source, const Dict& context);
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  std::string render(const Body& body);

  Value eval(const Expr& e, const FramePtr& frame);
  // Calls a function value (macro, built-in, bound method).
  Value call(const Value& callee, CallArgs& args);
  // Registers a namespace so that reference cycles through it are broken after the render.
  void track(const std::shared_ptr<Namespace>& ns) { namespaces_.push_back(ns); }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec(const Body& body, const FramePtr& frame, std::string& out);
  Flow exec_stmt(const Stmt& s, const FramePtr& frame, std::string& out);
  Flow exec_if(const Stmt& s, const FramePtr& frame, std::string& out);
  Flow exec_for(const Stmt& s, const FramePtr& frame, std::string& out);
  // Runs a for loop over `iterable` at nesting `depth0` (recursive loops call it again).
  Flow run_loop(const Stmt& s, const Value& iterable, int64_t depth0, const FramePtr& frame,
                std::string& out);
  Value make_loop(const Stmt& s, const ValueList& items, size_t i, int64_t depth0,
                  const FramePtr& frame, const std::shared_ptr<ValueList>& last_changed);
  void exec_set(const Stmt& s, const FramePtr& frame);
  std::string render_child(const Body& body, const FramePtr& frame);
  Value apply_filters(const std::vector<ExprPtr>& filters, Value input, const FramePtr& frame);

  Value eval_inner(const Expr& e, const FramePtr& frame);
  Value eval_compare(const Expr& e, const FramePtr& frame);
  Value eval_call(const Expr& e, const FramePtr& frame);
  Value eval_filter(const Expr& e, Value input, const FramePtr& frame);
  Value eval_slice(const Value& obj, const Expr& slice, const FramePtr& frame);
  CallArgs eval_args(const Expr& e, size_t first_arg, const FramePtr& frame);

  Value lookup(const std::string& name, const FramePtr& frame) const;
  void assign(const Target& t, Value v, const FramePtr& frame);
  Value make_macro(const std::shared_ptr<MacroDef>& def, const FramePtr& closure);
  Value call_macro(const MacroDef& def, const FramePtr& closure, CallArgs& args);

  // Adds "line L, column C" to errors raised below `pos` that carry no position yet.
  [[noreturn]] void relocate(const Error& e, size_t pos) const;

  const std::string& source_;
  std::unordered_map<std::string, Value> globals_;
  int call_depth_ = 0;
  std::vector<FramePtr> macro_frames_;
  std::vector<std::shared_ptr<Namespace>> namespaces_;
};

}  // namespace ds::jinja
