// Expression evaluation.
#include "serve/chat_template/builtins.h"
#include "serve/chat_template/interpreter.h"

namespace ds::jinja {

Value Interpreter::eval(const Expr& e, const FramePtr& frame) {
  try {
    return eval_inner(e, frame);
  } catch (const Error& err) {
    relocate(err, e.pos);
  }
}

Value Interpreter::eval_inner(const Expr& e, const FramePtr& frame) {
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      return e.value;
    case Expr::Kind::kName:
      return lookup(e.name, frame);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      ValueList items;
      items.reserve(e.children.size());
      for (const auto& c : e.children) items.push_back(eval(*c, frame));
      return Value::list(std::move(items), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      auto d = std::make_shared<Dict>();
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        Value k = eval(*e.children[i], frame);
        if (k.is_list() && !k.is_tuple()) fail("unhashable type: 'list'");
        if (k.is_dict()) fail("unhashable type: 'dict'");
        d->set(std::move(k), eval(*e.children[i + 1], frame));
      }
      return Value::dict(std::move(d));
    }
    case Expr::Kind::kGetAttr:
      return get_attr(eval(*e.children[0], frame), e.name);
    case Expr::Kind::kGetItem: {
      Value obj = eval(*e.children[0], frame);
      const Expr& index = *e.children[1];
      if (index.kind == Expr::Kind::kSlice) return eval_slice(obj, index, frame);
      return get_item(obj, eval(index, frame));
    }
    case Expr::Kind::kSlice:
      fail("slice outside of a subscript");
    case Expr::Kind::kCall:
      return eval_call(e, frame);
    case Expr::Kind::kFilter:
      return eval_filter(e, eval(*e.children[0], frame), frame);
    case Expr::Kind::kTest: {
      Value input = eval(*e.children[0], frame);
      CallArgs args = eval_args(e, 1, frame);
      bool r = apply_test(*this, e.name, input, args);
      return Value(e.negated ? !r : r);
    }
    case Expr::Kind::kNot:
      return Value(!eval(*e.children[0], frame).truthy());
    case Expr::Kind::kNeg:
    case Expr::Kind::kPos:
      return negate(eval(*e.children[0], frame), e.kind == Expr::Kind::kNeg);
    case Expr::Kind::kBinary: {
      Value left = eval(*e.children[0], frame);
      if (e.op == BinaryOp::kAnd) return left.truthy() ? eval(*e.children[1], frame) : left;
      if (e.op == BinaryOp::kOr) return left.truthy() ? left : eval(*e.children[1], frame);
      return binary_op(e.op, left, eval(*e.children[1], frame));
    }
    case Expr::Kind::kCompare:
      return eval_compare(e, frame);
    case Expr::Kind::kCond: {
      if (eval(*e.children[1], frame).truthy()) return eval(*e.children[0], frame);
      if (e.children[2]) return eval(*e.children[2], frame);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
  }
  fail("unknown expression");
}

Value Interpreter::eval_compare(const Expr& e, const FramePtr& frame) {
  Value left = eval(*e.children[0], frame);
  for (size_t i = 0; i < e.compare_ops.size(); ++i) {
    Value right = eval(*e.children[i + 1], frame);
    bool r = binary_op(e.compare_ops[i], left, right).truthy();
    if (!r) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

CallArgs Interpreter::eval_args(const Expr& e, size_t first_arg, const FramePtr& frame) {
  CallArgs args;
  for (size_t i = first_arg; i < e.children.size(); ++i) args.positional.push_back(eval(*e.children[i], frame));
  for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v, frame));
  if (e.dyn_args) {
    for (auto& v : eval(*e.dyn_args, frame).iterate()) args.positional.push_back(std::move(v));
  }
  if (e.dyn_kwargs) {
    Value d = eval(*e.dyn_kwargs, frame);
    if (!d.is_dict()) fail("argument after ** must be a mapping, not " + d.type_name());
    for (const auto& [k, v] : d.map().entries) {
      if (!k.is_string()) fail("keywords must be strings");
      args.keyword.emplace_back(k.str(), v);
    }
  }
  return args;
}

Value Interpreter::eval_call(const Expr& e, const FramePtr& frame) {
  Value callee = eval(*e.children[0], frame);
  CallArgs args = eval_args(e, 1, frame);
  return call(callee, args);
}

Value Interpreter::eval_filter(const Expr& e, Value input, const FramePtr& frame) {
  CallArgs args = eval_args(e, 1, frame);
  return apply_filter(*this, e.name, input, args);
}

Value Interpreter::eval_slice(const Value& obj, const Expr& s, const FramePtr& frame) {
  Value bounds[3];
  const Value* ptrs[3] = {nullptr, nullptr, nullptr};
  for (int i = 0; i < 3; ++i) {
    if (!s.children[static_cast<size_t>(i)]) continue;
    bounds[i] = eval(*s.children[static_cast<size_t>(i)], frame);
    if (!bounds[i].is_none()) ptrs[i] = &bounds[i];
  }
  return slice(obj, ptrs[0], ptrs[1], ptrs[2]);
}

}  // namespace ds::jinja
