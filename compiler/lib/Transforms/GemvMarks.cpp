//===- GemvMarks.cpp - liveness added by the decode marks -------*- C++ -*-===//

#include "ds/Transforms/GemvMarks.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

using namespace mlir;
using namespace mlir::ds;

bool mlir::ds::isPureRmsNorm(Operation *op) {
  auto group = dyn_cast_or_null<FusedGroupOp>(op);
  if (!group)
    return false;
  Block &body = group.getBodyBlock();
  if (group.getNumResults() != 1 || body.getNumArguments() != 2 ||
      !llvm::hasSingleElement(body.without_terminator()))
    return false;
  auto norm = dyn_cast<RmsNormOp>(body.front());
  return norm && norm.getX() == body.getArgument(0) &&
         norm.getWeight() == body.getArgument(1) &&
         group.getYield().getValues().front() == norm.getResult();
}

namespace {

/// The ops that read `value` through a fused group reading it: readers of the
/// group's result for which `readsGroup(reader, group)` holds.
SmallVector<Operation *>
readersThroughGroup(Value value,
                    llvm::function_ref<bool(Operation *, Operation *)> readsGroup) {
  SmallVector<Operation *> readers;
  for (Operation *user : value.getUsers()) {
    auto group = dyn_cast<FusedGroupOp>(user);
    if (!group)
      continue;
    for (Operation *reader : group->getUsers())
      if (readsGroup(reader, group))
        readers.push_back(reader);
  }
  return readers;
}

} // namespace

SmallVector<Operation *> mlir::ds::gemvPrologueReaders(Value value) {
  return readersThroughGroup(value, [](Operation *reader, Operation *group) {
    auto linear = dyn_cast<LinearOp>(reader);
    return linear && linear->hasAttr("ds.prologue") &&
           linear.getX().getDefiningOp() == group;
  });
}

SmallVector<Operation *> mlir::ds::attentionRopeReaders(Value value) {
  return readersThroughGroup(value, [](Operation *reader, Operation *group) {
    auto attention = dyn_cast<PagedAttentionOp>(reader);
    return attention && attention->hasAttr("ds.rope_prologue") &&
           attention.getQ().getDefiningOp() == group;
  });
}

Operation *mlir::ds::gemvEpilogueWriter(Value value) {
  auto group = value.getDefiningOp<FusedGroupOp>();
  if (!group)
    return nullptr;
  for (Value input : group.getInputs())
    if (auto linear = input.getDefiningOp<LinearOp>();
        linear && linear->hasAttr("ds.epilogue"))
      return linear;
  return nullptr;
}
