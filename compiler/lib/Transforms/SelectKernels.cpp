//===- SelectKernels.cpp - choose kernel implementations --------*- C++ -*-===//
//
// --ds-select-kernels: sets ds.impl on every top-level compute op.
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSSELECTKERNELS
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

bool mlir::ds::isCudaTarget(StringRef target) {
  if (!target.consume_front("sm_") || target.empty())
    return false;
  StringRef digits = target.take_while([](char c) { return std::isdigit(c); });
  StringRef rest = target.drop_front(digits.size());
  return !digits.empty() && (rest.empty() || rest == "a" || rest == "f");
}

FailureOr<std::string> mlir::ds::resolveTarget(ModuleOp module,
                                               StringRef option,
                                               StringRef passName) {
  std::string target = option.str();
  if (target.empty()) {
    auto attr = module->getAttrOfType<StringAttr>("ds.target");
    if (!attr)
      return module.emitError() << passName
                                << ": no target: pass target=... or set the "
                                   "module attribute ds.target";
    target = attr.str();
  }
  if (target != "cpu" && !isCudaTarget(target))
    return module.emitError() << passName << ": unknown target \"" << target
                              << "\" (expected \"cpu\" or \"sm_<NN>[a]\")";
  return target;
}

namespace {

/// ds.impl for `op` on `target`; empty for ops that are not kernels.
std::string implFor(Operation *op, bool cuda) {
  if (isa<GetWeightOp, YieldOp>(op))
    return {};
  if (isa<FusedGroupOp>(op))
    return cuda ? "nvrtc" : "interp";
  StringRef name = op->getName().stripDialect();
  if (!cuda)
    return ("ref." + name).str();
  if (isa<LinearOp, LogitsOp>(op))
    return "cublaslt.gemm";
  if (isa<AllReduceOp, AllGatherOp>(op))
    return ("nccl." + name).str();
  return ("cuda." + name).str();
}

struct SelectKernelsPass
    : public mlir::ds::impl::DsSelectKernelsBase<SelectKernelsPass> {
  using DsSelectKernelsBase::DsSelectKernelsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<std::string> resolved =
        resolveTarget(module, target, "ds-select-kernels");
    if (failed(resolved))
      return signalPassFailure();
    bool cuda = *resolved != "cpu";
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      for (Block &block : func.getBody())
        for (Operation &op : block) {
          if (!isa<DsDialect>(op.getDialect()))
            continue;
          std::string impl = implFor(&op, cuda);
          if (!impl.empty())
            op.setAttr("ds.impl", StringAttr::get(&getContext(), impl));
        }
    }
  }
};

} // namespace
