//===- AllReduceNorm.cpp - RMSNorm epilogue of all-reduces ------*- C++ -*-===//
//
// --ds-all-reduce-norm: on CUDA targets, a ds.all_reduce with a residual
// whose result (the new residual stream, tensor<?xHxf32|bf16>) is read by
// exactly one pure-RMSNorm ds.fused_group (ds.rms_norm of that result and a
// bf16 weight of H elements, one tensor<?xHxbf16> result) gets
// ds.norm_epilogue: in decode steps the executor may skip the group and let
// the all-reduce kernel, which holds the whole summed row, write the group's
// result itself. Other readers of the all-reduce result (the next residual
// add) are fine.
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"
#include "ds/Transforms/GemvMarks.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/IR/Builders.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSALLREDUCENORM
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

namespace {

/// The row width H if `type` is tensor<?xHxf32> or tensor<?xHxbf16> for a
/// static H, else 0.
int64_t rowWidth(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || tensor.getRank() != 2 || !tensor.isDynamicDim(0) ||
      tensor.isDynamicDim(1))
    return 0;
  Type element = tensor.getElementType();
  return element.isF32() || element.isBF16() ? tensor.getDimSize(1) : 0;
}

/// True if `user` is a pure-RMSNorm group (GemvMarks.h) whose input 0 is
/// `x`: the groups the all-reduce of `x` may compute.
bool isNormOf(Operation *user, Value x) {
  auto group = dyn_cast<FusedGroupOp>(user);
  return group && isPureRmsNorm(group) && group.getInputs().front() == x;
}

/// True if the pure-RMSNorm `group` of the all-reduce result `x` has the
/// shapes the all-reduce kernel writes: a weight tensor<Hxbf16> of the row
/// width H of `x` (a ds.get_weight) and one tensor<?xHxbf16> result.
bool hasNormShapes(FusedGroupOp group, Value x) {
  const int64_t width = rowWidth(x.getType());
  Value weight = group.getInputs()[1];
  auto weightType = dyn_cast<RankedTensorType>(weight.getType());
  auto resultType = dyn_cast<RankedTensorType>(group.getResult(0).getType());
  return width > 0 && weightType && weightType.getRank() == 1 &&
         weightType.getDimSize(0) == width &&
         weightType.getElementType().isBF16() &&
         weight.getDefiningOp<GetWeightOp>() && resultType &&
         rowWidth(resultType) == width && resultType.getElementType().isBF16();
}

struct AllReduceNormPass
    : public mlir::ds::impl::DsAllReduceNormBase<AllReduceNormPass> {
  using DsAllReduceNormBase::DsAllReduceNormBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<std::string> target =
        resolveTarget(module, "", "ds-all-reduce-norm");
    if (failed(target))
      return signalPassFailure();
    if (!isCudaTarget(*target))
      return;
    auto mark = UnitAttr::get(&getContext());
    module.walk([&](AllReduceOp reduce) {
      Value h = reduce.getResult();
      if (!reduce.getResidual() || rowWidth(h.getType()) == 0)
        return;
      // Exactly one reader is a norm group of h; the others (the residual
      // stream going on) may be anything.
      SmallVector<FusedGroupOp, 1> norms;
      for (Operation *user : h.getUsers())
        if (isNormOf(user, h))
          norms.push_back(cast<FusedGroupOp>(user));
      if (norms.size() != 1 || !hasNormShapes(norms.front(), h))
        return;
      reduce->setAttr("ds.norm_epilogue", mark);
      ++numMarked;
    });
  }
};

} // namespace
