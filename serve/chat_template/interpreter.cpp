// Statement execution, scopes and macros.
#include "serve/chat_template/interpreter.h"

#include "serve/chat_template/builtins.h"
#include "serve/chat_template/lexer.h"

namespace ds::jinja {

// Nested macro calls deeper than this fail (Jinja fails through Python's recursion limit).
constexpr int kMaxCallDepth = 100;

Interpreter::Interpreter(const std::string& source, const Dict& context) : source_(source) {
  add_globals(globals_);
  for (const auto& [k, v] : context.entries) {
    if (!k.is_string()) fail("context keys must be strings");
    globals_[k.str()] = v;
  }
}

Interpreter::~Interpreter() {
  // Macros hold their defining frame and frames hold macros; namespaces can hold themselves.
  for (auto& f : macro_frames_) f->vars.clear();
  for (auto& ns : namespaces_) ns->attrs.entries.clear();
}

std::string Interpreter::render(const Body& body) {
  auto root = std::make_shared<Frame>();
  std::string out;
  exec(body, root, out);
  return out;
}

void Interpreter::relocate(const Error& e, size_t pos) const {
  if (e.located()) throw e;
  throw Error("error at " + describe_position(source_, pos) + ": " + e.what(), true);
}

Value Interpreter::lookup(const std::string& name, const FramePtr& frame) const {
  for (const Frame* f = frame.get(); f; f = f->parent.get()) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return it->second;
  }
  auto it = globals_.find(name);
  if (it != globals_.end()) return it->second;
  return Value::undefined(repr_string(name) + " is undefined");
}

void Interpreter::assign(const Target& t, Value v, const FramePtr& frame) {
  switch (t.kind) {
    case Target::Kind::kName:
      frame->vars[t.name] = std::move(v);
      return;
    case Target::Kind::kAttr: {
      Value obj = lookup(t.name, frame);
      if (!obj.is_namespace())
        fail("cannot assign attribute on non-namespace object ('" + t.name + "' is " + obj.type_name() + ")");
      obj.ns_ref().attrs.set(Value(t.attr), std::move(v));
      return;
    }
    case Target::Kind::kTuple: {
      ValueList items = v.iterate();
      if (items.size() != t.elements.size()) {
        fail(items.size() < t.elements.size()
                 ? "not enough values to unpack (expected " + std::to_string(t.elements.size()) +
                       ", got " + std::to_string(items.size()) + ")"
                 : "too many values to unpack (expected " + std::to_string(t.elements.size()) + ")");
      }
      for (size_t i = 0; i < items.size(); ++i) assign(t.elements[i], std::move(items[i]), frame);
      return;
    }
  }
}

Interpreter::Flow Interpreter::exec(const Body& body, const FramePtr& frame, std::string& out) {
  for (const auto& s : body) {
    Flow flow = exec_stmt(*s, frame, out);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

std::string Interpreter::render_child(const Body& body, const FramePtr& frame) {
  auto child = std::make_shared<Frame>();
  child->parent = frame;
  std::string out;
  exec(body, child, out);
  return out;
}

Value Interpreter::apply_filters(const std::vector<ExprPtr>& filters, Value input,
                                 const FramePtr& frame) {
  for (const auto& f : filters) input = eval_filter(*f, std::move(input), frame);
  return input;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s, const FramePtr& frame, std::string& out) {
  try {
    switch (s.kind) {
      case Stmt::Kind::kText:
        out += s.text;
        return Flow::kNormal;
      case Stmt::Kind::kPrint: {
        Value v = eval(*s.exprs[0], frame);
        if (v.is_string()) out += v.str();
        else out += v.to_str();
        return Flow::kNormal;
      }
      case Stmt::Kind::kIf:
        return exec_if(s, frame, out);
      case Stmt::Kind::kFor:
        return exec_for(s, frame, out);
      case Stmt::Kind::kSet:
        exec_set(s, frame);
        return Flow::kNormal;
      case Stmt::Kind::kSetBlock:
        assign(s.target, apply_filters(s.exprs, Value(render_child(s.bodies[0], frame)), frame), frame);
        return Flow::kNormal;
      case Stmt::Kind::kMacro:
        frame->vars[s.macro->name] = make_macro(s.macro, frame);
        return Flow::kNormal;
      case Stmt::Kind::kCallBlock: {
        const Expr& call_expr = *s.exprs[0];
        Value callee = eval(*call_expr.children[0], frame);
        CallArgs args = eval_args(call_expr, 1, frame);
        args.keyword.emplace_back("caller", make_macro(s.macro, frame));
        out += call(callee, args).to_str();
        return Flow::kNormal;
      }
      case Stmt::Kind::kFilterBlock:
        out += apply_filters(s.exprs, Value(render_child(s.bodies[0], frame)), frame).to_str();
        return Flow::kNormal;
      case Stmt::Kind::kWith: {
        auto child = std::make_shared<Frame>();
        child->parent = frame;
        for (size_t i = 0; i < s.targets.size(); ++i) assign(s.targets[i], eval(*s.exprs[i], frame), child);
        return exec(s.bodies[0], child, out);
      }
      case Stmt::Kind::kScope:
        return exec(s.bodies[0], frame, out);
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
    }
  } catch (const Error& e) {
    relocate(e, s.pos);
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_if(const Stmt& s, const FramePtr& frame, std::string& out) {
  for (size_t i = 0; i < s.exprs.size(); ++i) {
    if (eval(*s.exprs[i], frame).truthy()) return exec(s.bodies[i], frame, out);
  }
  if (s.bodies.size() > s.exprs.size()) return exec(s.bodies.back(), frame, out);
  return Flow::kNormal;
}

void Interpreter::exec_set(const Stmt& s, const FramePtr& frame) {
  assign(s.target, eval(*s.exprs[0], frame), frame);
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s, const FramePtr& frame, std::string& out) {
  return run_loop(s, eval(*s.exprs[0], frame), 0, frame, out);
}

Interpreter::Flow Interpreter::run_loop(const Stmt& s, const Value& iterable, int64_t depth0,
                                        const FramePtr& frame, std::string& out) {
  ValueList items = iterable.iterate();
  if (const Expr* filter = s.exprs[1].get()) {
    // The filter sees the loop variables but not `loop`; it runs before indexes are assigned.
    ValueList kept;
    for (auto& item : items) {
      auto probe = std::make_shared<Frame>();
      probe->parent = frame;
      assign(s.target, item, probe);
      if (eval(*filter, probe).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec(s.bodies[1], frame, out);
  auto last_changed = std::make_shared<ValueList>();
  for (size_t i = 0; i < items.size(); ++i) {
    auto iter_frame = std::make_shared<Frame>();
    iter_frame->parent = frame;
    iter_frame->vars["loop"] = make_loop(s, items, i, depth0, frame, last_changed);
    assign(s.target, items[i], iter_frame);
    if (exec(s.bodies[0], iter_frame, out) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

// Jinja's LoopContext: attributes index, index0, revindex, revindex0, first, last, length,
// depth, depth0, previtem, nextitem, cycle(...), changed(...); callable in recursive loops.
Value Interpreter::make_loop(const Stmt& s, const ValueList& items, size_t i, int64_t depth0,
                             const FramePtr& frame, const std::shared_ptr<ValueList>& last_changed) {
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t k = static_cast<int64_t>(i);
  auto attrs = std::make_shared<Dict>();
  auto& e = attrs->entries;  // distinct keys: no lookups needed
  e.reserve(13);
  e.emplace_back(Value("index"), Value(k + 1));
  e.emplace_back(Value("index0"), Value(k));
  e.emplace_back(Value("revindex"), Value(n - k));
  e.emplace_back(Value("revindex0"), Value(n - k - 1));
  e.emplace_back(Value("first"), Value(k == 0));
  e.emplace_back(Value("last"), Value(k == n - 1));
  e.emplace_back(Value("length"), Value(n));
  e.emplace_back(Value("depth"), Value(depth0 + 1));
  e.emplace_back(Value("depth0"), Value(depth0));
  e.emplace_back(Value("previtem"), k > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
  e.emplace_back(Value("nextitem"), k + 1 < n ? items[i + 1] : Value::undefined("there is no next item"));
  e.emplace_back(Value("cycle"), Value::function("cycle", [i](Interpreter&, CallArgs& a) {
                   if (a.positional.empty()) fail("no items for cycling given");
                   return a.positional[i % a.positional.size()];
                 }));
  e.emplace_back(Value("changed"), Value::function("changed", [last_changed](Interpreter&, CallArgs& a) {
                   Value now = Value::list(a.positional, true);
                   if (!last_changed->empty() && last_changed->front().equals(now)) return Value(false);
                   last_changed->assign(1, now);
                   return Value(true);
                 }));
  const Stmt* stmt = &s;
  NativeFn call = [stmt, depth0, frame](Interpreter& in, CallArgs& a) {
    if (!stmt->recursive) fail("Tried to call non recursive loop. Maybe you forgot the 'recursive' modifier.");
    if (a.positional.size() != 1 || !a.keyword.empty()) fail("loop() takes exactly one iterable");
    if (in.call_depth_ >= kMaxCallDepth) fail("maximum recursion depth exceeded in a recursive loop");
    ++in.call_depth_;
    std::string out;
    try {
      in.run_loop(*stmt, a.positional[0], depth0 + 1, frame, out);
    } catch (...) {
      --in.call_depth_;
      throw;
    }
    --in.call_depth_;
    return Value(std::move(out));
  };
  return Value::function("loop", std::move(call), std::move(attrs),
                         "<LoopContext " + std::to_string(k + 1) + "/" + std::to_string(n) + ">");
}

Value Interpreter::make_macro(const std::shared_ptr<MacroDef>& def, const FramePtr& closure) {
  macro_frames_.push_back(closure);
  std::weak_ptr<Frame> weak = closure;
  return Value::function(def->name, [def, weak](Interpreter& in, CallArgs& args) {
    FramePtr frame = weak.lock();
    if (!frame) fail("macro '" + def->name + "' was called outside of its scope");
    return in.call_macro(*def, frame, args);
  });
}

Value Interpreter::call_macro(const MacroDef& def, const FramePtr& closure, CallArgs& args) {
  if (call_depth_ >= kMaxCallDepth) fail("maximum recursion depth exceeded in macro '" + def.name + "'");
  auto frame = std::make_shared<Frame>();
  frame->parent = closure;
  const size_t np = def.params.size();
  if (args.positional.size() > np && !def.uses_varargs) {
    fail("macro '" + def.name + "' takes not more than " + std::to_string(np) + " argument(s)");
  }
  auto kwargs = std::make_shared<Dict>();
  std::vector<bool> given(np, false);
  for (size_t i = 0; i < np && i < args.positional.size(); ++i) {
    frame->vars[def.params[i].first] = args.positional[i];
    given[i] = true;
  }
  Value caller = Value::undefined("'caller' is undefined");
  for (auto& [k, v] : args.keyword) {
    bool matched = false;
    for (size_t i = 0; i < np; ++i) {
      if (def.params[i].first != k) continue;
      if (given[i]) fail("macro '" + def.name + "' got multiple values for argument '" + k + "'");
      frame->vars[k] = v;
      given[i] = matched = true;
    }
    if (matched) continue;
    if (k == "caller" && def.uses_caller) {
      caller = v;
    } else if (def.uses_kwargs) {
      kwargs->set(Value(k), v);
    } else {
      fail("macro '" + def.name + "' takes no keyword argument '" + k + "'");
    }
  }
  for (size_t i = 0; i < np; ++i) {
    if (given[i]) continue;
    const auto& [name, def_expr] = def.params[i];
    frame->vars[name] = def_expr ? eval(*def_expr, frame)
                                 : Value::undefined("parameter " + repr_string(name) + " was not provided");
  }
  if (def.uses_varargs) {
    ValueList extra;
    for (size_t i = np; i < args.positional.size(); ++i) extra.push_back(args.positional[i]);
    frame->vars["varargs"] = Value::list(std::move(extra), true);
  }
  if (def.uses_kwargs) frame->vars["kwargs"] = Value::dict(std::move(kwargs));
  if (def.uses_caller) frame->vars["caller"] = caller;

  ++call_depth_;
  std::string out;
  try {
    exec(def.body, frame, out);
  } catch (...) {
    --call_depth_;
    throw;
  }
  --call_depth_;
  return Value(std::move(out));
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) callee.require_defined();
  if (!callee.is_function()) fail("'" + callee.type_name() + "' object is not callable");
  return callee.fn().fn(*this, args);
}

}  // namespace ds::jinja
