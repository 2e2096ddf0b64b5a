//===- Pipeline.cpp - the dscc pass pipeline --------------------*- C++ -*-===//

#include "ds/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void mlir::ds::buildCompilePipeline(OpPassManager &pm, StringRef target) {
  (void)target;
  pm.addPass(createCanonicalizerPass());
}

namespace {
struct CompilePipelineOptions
    : public PassPipelineOptions<CompilePipelineOptions> {
  Option<std::string> target{
      *this, "target",
      llvm::cl::desc("Target (\"cpu\" or \"sm_*\"); default: the module's "
                     "ds.target attribute is not visible to pipeline "
                     "construction, so this defaults to \"cpu\""),
      llvm::cl::init("cpu")};
};
} // namespace

void mlir::ds::registerDsPasses() {
  registerDsTransformsPasses();
  PassPipelineRegistration<CompilePipelineOptions>(
      "ds-compile-pipeline", "The full dscc pass pipeline",
      [](OpPassManager &pm, const CompilePipelineOptions &options) {
        buildCompilePipeline(pm, options.target);
      });
}
