//===- Passes.h - ds compiler passes ----------------------------*- C++ -*-===//
//
// The dscc pass pipeline. Each pass has its own .cpp in lib/Transforms, a flag
// (see Passes.td) and a lit test named after the flag in
// tests/compiler/Transforms.
//
//===----------------------------------------------------------------------===//

#ifndef DS_TRANSFORMS_PASSES_H
#define DS_TRANSFORMS_PASSES_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir::ds {

#define GEN_PASS_DECL
#include "ds/Transforms/Passes.h.inc"

/// True for CUDA targets "sm_<digits>[a|f]" (e.g. "sm_90a").
bool isCudaTarget(StringRef target);

/// The target a pass works for: `option` if set, else the module's
/// `ds.target`. Emits an error naming `passName` when it is missing or is
/// neither "cpu" nor a CUDA target.
FailureOr<std::string> resolveTarget(ModuleOp module, StringRef option,
                                     StringRef passName);

/// Adds the full dscc pipeline for `target` ("cpu" or "sm_*") to `pm` (a
/// module-level pass manager): canonicalize, ds-shard{tp} when `tp` > 1,
/// ds-fuse-weights, ds-fuse-residual-add, ds-fuse-elementwise, canonicalize,
/// ds-select-kernels, ds-gemv-prologue, ds-gemv-epilogue and ds-attention-rope
/// (sm_* targets), ds-plan-buffers and, for sm_* targets, ds-codegen-cuda. An
/// empty `target` means the module's `ds.target` attribute (read by the passes
/// when they run).
void buildCompilePipeline(OpPassManager &pm, StringRef target,
                          int64_t tp = 1);

/// Registers every ds pass and the `ds-compile-pipeline` pipeline with the
/// global registry (for ds-opt / dscc command lines).
void registerDsPasses();

#define GEN_PASS_REGISTRATION
#include "ds/Transforms/Passes.h.inc"

} // namespace mlir::ds

namespace ds {
// The compiler API is also reachable as ds::... from code outside namespace
// mlir (dscc, the exporter).
using ::mlir::ds::buildCompilePipeline;
using ::mlir::ds::registerDsPasses;
} // namespace ds

#endif // DS_TRANSFORMS_PASSES_H
