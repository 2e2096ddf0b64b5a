//===- FuseElementwise.cpp - form ds.fused_group regions --------*- C++ -*-===//
//
// --ds-fuse-elementwise: runs of row-wise ops, split into def-use connected
// components, become ds.fused_group ops.
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/EquivalenceClasses.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSFUSEELEMENTWISE
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

namespace {

/// Moves the ops of `component` (in program order) into a new fused group
/// placed before the last op of the component.
void buildGroup(ArrayRef<Operation *> component) {
  llvm::SmallPtrSet<Operation *, 16> members(component.begin(),
                                             component.end());
  // Inputs: values defined outside the component, in first-use order.
  SetVector<Value> inputs;
  for (Operation *op : component)
    for (Value operand : op->getOperands())
      if (!members.contains(operand.getDefiningOp()))
        inputs.insert(operand);
  // Results: values used outside the component, in program order.
  SmallVector<Value> escaping;
  for (Operation *op : component)
    for (Value result : op->getResults())
      if (llvm::any_of(result.getUsers(), [&](Operation *user) {
            return !members.contains(user);
          }))
        escaping.push_back(result);

  Operation *last = component.back();
  OpBuilder builder(last);
  SmallVector<Location> locs;
  for (Operation *op : component)
    locs.push_back(op->getLoc());
  auto group = builder.create<FusedGroupOp>(
      builder.getFusedLoc(locs), ValueRange(escaping).getTypes(),
      inputs.getArrayRef());
  Block &body = group.getBodyBlock();
  IRMapping mapping;
  for (auto [input, arg] : llvm::zip(inputs, body.getArguments()))
    mapping.map(input, arg);
  builder.setInsertionPointToEnd(&body);
  for (Operation *op : component)
    builder.clone(*op, mapping);
  SmallVector<Value> yielded;
  for (Value v : escaping)
    yielded.push_back(mapping.lookup(v));
  builder.create<YieldOp>(group.getLoc(), yielded);

  for (auto [v, result] : llvm::zip(escaping, group.getResults()))
    v.replaceAllUsesWith(result);
  for (Operation *op : llvm::reverse(component))
    op->erase();
}

/// Fuses the runs of row-wise ops of `block` into groups of at least
/// `minOps` ops. With `shareInputs` (CUDA targets) components that read the
/// same value from outside the run also join one group (e.g. the q rope and
/// the k rope + KV write, which both slice the qkv projection): one kernel
/// launch instead of several, each reading its own part of the row.
unsigned fuseBlock(Block &block, int64_t minOps, bool shareInputs) {
  // Collect the runs first (the rewrite changes the block).
  SmallVector<SmallVector<Operation *>> runs(1);
  for (Operation &op : block) {
    if (FusedGroupOp::isFusable(&op)) {
      runs.back().push_back(&op);
    } else if (!isa<GetWeightOp>(op) && !runs.back().empty()) {
      runs.emplace_back();
    }
  }

  unsigned numGroups = 0;
  for (ArrayRef<Operation *> run : runs) {
    if (static_cast<int64_t>(run.size()) < minOps)
      continue;
    llvm::SmallPtrSet<Operation *, 16> inRun(run.begin(), run.end());
    llvm::EquivalenceClasses<Operation *> classes;
    llvm::DenseMap<Value, Operation *> firstReader;  // outside value -> first op of the run reading it
    for (Operation *op : run) {
      classes.insert(op);
      for (Value operand : op->getOperands()) {
        Operation *def = operand.getDefiningOp();
        if (def && inRun.contains(def)) {
          classes.unionSets(op, def);
        } else if (shareInputs && !(def && isa<GetWeightOp>(def)) &&
                   isa<RankedTensorType>(operand.getType()) &&
                   cast<RankedTensorType>(operand.getType()).getRank() == 2) {
          auto [it, inserted] = firstReader.try_emplace(operand, op);
          if (!inserted)
            classes.unionSets(op, it->second);
        }
      }
    }
    // Components in order of their first op; ops in program order.
    llvm::MapVector<Operation *, SmallVector<Operation *>> components;
    for (Operation *op : run)
      components[classes.getLeaderValue(op)].push_back(op);
    for (auto &entry : components) {
      if (static_cast<int64_t>(entry.second.size()) < minOps)
        continue;
      buildGroup(entry.second);
      ++numGroups;
    }
  }
  return numGroups;
}

struct FuseElementwisePass
    : public mlir::ds::impl::DsFuseElementwiseBase<FuseElementwisePass> {
  using DsFuseElementwiseBase::DsFuseElementwiseBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto target = module->getAttrOfType<StringAttr>("ds.target");
    const bool cuda = target && isCudaTarget(target.getValue());
    int64_t min = minOps;
    if (min <= 0)
      min = cuda ? 1 : 2;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      for (Block &block : func.getBody())
        numGroups += fuseBlock(block, min, cuda);
    }
  }
};

} // namespace
