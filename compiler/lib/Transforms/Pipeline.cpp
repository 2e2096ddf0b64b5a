//===- Pipeline.cpp - the dscc pass pipeline --------------------*- C++ -*-===//

#include "ds/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void mlir::ds::buildCompilePipeline(OpPassManager &pm, StringRef target,
                                    int64_t tp) {
  pm.addPass(createCanonicalizerPass());
  if (tp > 1) {
    DsShardOptions shard;
    shard.tp = tp;
    pm.addPass(createDsShard(shard));
  }
  pm.addPass(createDsFuseWeights());
  pm.addPass(createDsFuseResidualAdd());
  DsFuseElementwiseOptions fuse;
  if (isCudaTarget(target))
    fuse.minOps = 1; // otherwise: from the module's ds.target
  pm.addPass(createDsFuseElementwise(fuse));
  pm.addPass(createCanonicalizerPass());
  DsSelectKernelsOptions select;
  select.target = target.str();
  pm.addPass(createDsSelectKernels(select));
  // ds-gemv-prologue / ds-gemv-epilogue / ds-attention-rope read the
  // module's ds.target (no-ops on "cpu").
  if (target.empty() || isCudaTarget(target)) {
    pm.addPass(createDsGemvPrologue());
    pm.addPass(createDsGemvEpilogue());
    pm.addPass(createDsAttentionRope());
  }
  pm.addPass(createDsPlanBuffers());
  // An empty target means the module's ds.target (both passes read it);
  // ds-codegen-cuda leaves "cpu" modules unchanged.
  if (target.empty() || isCudaTarget(target)) {
    DsCodegenCudaOptions codegen;
    codegen.arch = target.str();
    pm.addPass(createDsCodegenCuda(codegen));
  }
}

namespace {
struct CompilePipelineOptions
    : public PassPipelineOptions<CompilePipelineOptions> {
  Option<std::string> target{
      *this, "target",
      llvm::cl::desc("\"cpu\" or \"sm_<NN>[a]\"; empty: the module's "
                     "ds.target attribute"),
      llvm::cl::init("")};
  Option<int64_t> tp{*this, "tp",
                     llvm::cl::desc("tensor-parallel ranks (ds-shard when > 1)"),
                     llvm::cl::init(1)};
};
} // namespace

void mlir::ds::registerDsPasses() {
  registerDsTransformsPasses();
  PassPipelineRegistration<CompilePipelineOptions>(
      "ds-compile-pipeline",
      "The full dscc pipeline: canonicalize, ds-shard (tp > 1), "
      "ds-fuse-weights, ds-fuse-residual-add, ds-fuse-elementwise, "
      "canonicalize, ds-select-kernels, ds-gemv-prologue, ds-gemv-epilogue "
      "and ds-attention-rope (sm_* targets), ds-plan-buffers and "
      "ds-codegen-cuda (sm_* targets)",
      [](OpPassManager &pm, const CompilePipelineOptions &options) {
        buildCompilePipeline(pm, options.target, options.tp);
      });
}
