//===- GemvEpilogue.cpp - SwiGLU epilogue for decode GEMVs ------*- C++ -*-===//
//
// --ds-gemv-epilogue: on CUDA targets, a bf16 ds.linear whose result is read
// only by a SiLU*mul ds.fused_group (silu of the first half of the row times
// its second half) gets ds.epilogue = "swiglu": in decode steps the executor
// may skip the group and let the GEMV write the group's result itself.
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/IR/Builders.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSGEMVEPILOGUE
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

namespace {

/// True if `type` is tensor<?x`width`xbf16>.
bool isBf16Rows(Type type, int64_t width) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && tensor.getRank() == 2 && tensor.isDynamicDim(0) &&
         tensor.getDimSize(1) == width && tensor.getElementType().isBF16();
}

/// True if `group` has one input, a tensor<?x(2I)xbf16>, and one result,
/// computed by exactly
///   %g = ds.slice %arg0 {offset = 0, size = I}
///   %u = ds.slice %arg0 {offset = I, size = I}
///   %s = ds.silu %g
///   %r = ds.mul %s, %u   (or %u, %s)
///   ds.yield %r          (a tensor<?xIxbf16>)
/// in any order.
bool isSwiGlu(FusedGroupOp group) {
  Block &body = group.getBodyBlock();
  if (group.getNumResults() != 1 || group.getInputs().size() != 1 ||
      body.getNumArguments() != 1)
    return false;
  auto inType = dyn_cast<RankedTensorType>(group.getInputs().front().getType());
  if (!inType || inType.getRank() != 2 || inType.isDynamicDim(1) ||
      inType.getDimSize(1) < 2 || inType.getDimSize(1) % 2 != 0 ||
      !isBf16Rows(inType, inType.getDimSize(1)))
    return false;
  const int64_t half = inType.getDimSize(1) / 2;
  if (!isBf16Rows(group.getResult(0).getType(), half))
    return false;

  Value arg = body.getArgument(0);
  SliceOp gate, up;
  SiluOp silu;
  MulOp mul;
  int64_t numOps = 0;
  for (Operation &op : body.without_terminator()) {
    ++numOps;
    if (auto slice = dyn_cast<SliceOp>(op)) {
      if (slice.getX() != arg || slice.getSize() != half)
        return false;
      SliceOp &slot = slice.getOffset() == 0 ? gate : up;
      if (slot || (slice.getOffset() != 0 && slice.getOffset() != half))
        return false;
      slot = slice;
    } else if (auto s = dyn_cast<SiluOp>(op); s && !silu) {
      silu = s;
    } else if (auto m = dyn_cast<MulOp>(op); m && !mul) {
      mul = m;
    } else {
      return false;
    }
  }
  if (numOps != 4 || !gate || !up || !silu || !mul)
    return false;
  Value s = silu.getResult(), u = up.getResult();
  bool mulsBoth = (mul.getLhs() == s && mul.getRhs() == u) ||
                  (mul.getLhs() == u && mul.getRhs() == s);
  return silu.getX() == gate.getResult() && mulsBoth &&
         group.getYield().getValues().front() == mul.getResult();
}

struct GemvEpiloguePass
    : public mlir::ds::impl::DsGemvEpilogueBase<GemvEpiloguePass> {
  using DsGemvEpilogueBase::DsGemvEpilogueBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<std::string> target =
        resolveTarget(module, "", "ds-gemv-epilogue");
    if (failed(target))
      return signalPassFailure();
    if (!isCudaTarget(*target))
      return;
    auto epilogue = StringAttr::get(&getContext(), "swiglu");
    module.walk([&](LinearOp linear) {
      Value y = linear.getResult();
      if (linear.getResidual() || !y.hasOneUse())
        return;
      auto group = dyn_cast<FusedGroupOp>(*y.getUsers().begin());
      if (!group || !isSwiGlu(group))
        return;
      linear->setAttr("ds.epilogue", epilogue);
      ++numMarked;
    });
  }
};

} // namespace
