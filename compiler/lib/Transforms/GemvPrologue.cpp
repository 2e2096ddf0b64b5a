//===- GemvPrologue.cpp - RMSNorm prologue for decode GEMVs -----*- C++ -*-===//
//
// --ds-gemv-prologue: on CUDA targets, a ds.linear whose input is the only
// result of a pure-RMSNorm ds.fused_group (read by nothing else) gets
// ds.prologue = "rms_norm": in decode steps the executor may skip the group
// and let the GEMV normalize the group's input row itself.
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"
#include "ds/Transforms/GemvMarks.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/IR/Builders.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSGEMVPROLOGUE
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

namespace {

struct GemvProloguePass
    : public mlir::ds::impl::DsGemvPrologueBase<GemvProloguePass> {
  using DsGemvPrologueBase::DsGemvPrologueBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<std::string> target = resolveTarget(module, "", "ds-gemv-prologue");
    if (failed(target))
      return signalPassFailure();
    if (!isCudaTarget(*target))
      return;
    auto prologue = StringAttr::get(&getContext(), "rms_norm");
    module.walk([&](LinearOp linear) {
      Value x = linear.getX();
      auto group = x.getDefiningOp<FusedGroupOp>();
      if (!group || !x.hasOneUse() || !isPureRmsNorm(group))
        return;
      linear->setAttr("ds.prologue", prologue);
      ++numMarked;
    });
  }
};

} // namespace
