//===- FuseResidualAdd.cpp - residual adds into GEMM / all-reduce -*- C++ -*-===//
//
// --ds-fuse-residual-add: `ds.add %r, (ds.linear ...)` and
// `ds.add %r, (ds.all_reduce ...)` become the producer with `residual %r`, so
// that the residual connection is added in the GEMM epilogue (or by the
// collective) and the row-wise group after it is a pure RMSNorm.
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Dominance.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSFUSERESIDUALADD
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

namespace {

/// True if `op` is a ds.linear or ds.all_reduce without a residual yet.
bool acceptsResidual(Operation *op) {
  if (auto linear = dyn_cast_or_null<LinearOp>(op))
    return !linear.getResidual();
  if (auto reduce = dyn_cast_or_null<AllReduceOp>(op))
    return !reduce.getResidual();
  return false;
}

/// Sets `residual` as the residual operand of `producer` (a linear or an
/// all-reduce without one).
void setResidual(Operation *producer, Value residual) {
  if (auto linear = dyn_cast<LinearOp>(producer))
    linear.getResidualMutable().assign(residual);
  else
    cast<AllReduceOp>(producer).getResidualMutable().assign(residual);
}

struct FuseResidualAddPass
    : public mlir::ds::impl::DsFuseResidualAddBase<FuseResidualAddPass> {
  using DsFuseResidualAddBase::DsFuseResidualAddBase;

  /// Fuses `add` into the producer of its operand `index` if allowed.
  bool tryFuse(AddOp add, unsigned index, DominanceInfo &dom) {
    Value produced = add->getOperand(index);
    Value other = add->getOperand(1 - index);
    Operation *producer = produced.getDefiningOp();
    if (!acceptsResidual(producer))
      return false;
    Type type = add.getType();
    if (!produced.hasOneUse() || produced.getType() != type ||
        other.getType() != type)
      return false;
    // The residual must be available where the producer runs.
    if (!dom.properlyDominates(other, producer))
      return false;
    setResidual(producer, other);
    producer->setLoc(
        FusedLoc::get(add.getContext(), {producer->getLoc(), add.getLoc()}));
    add.getResult().replaceAllUsesWith(produced);
    add.erase();
    return true;
  }

  void runOnOperation() override {
    DominanceInfo &dom = getAnalysis<DominanceInfo>();
    SmallVector<AddOp> adds;
    getOperation().walk([&](AddOp add) { adds.push_back(add); });
    // In program order: a fused add's result (now the producer's) may be the
    // residual of a later add.
    for (AddOp add : adds)
      if (tryFuse(add, 0, dom) || tryFuse(add, 1, dom))
        ++numFused;
  }
};

} // namespace
