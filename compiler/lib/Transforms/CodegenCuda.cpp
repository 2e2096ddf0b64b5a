//===- CodegenCuda.cpp - CUDA kernels for ds.fused_group --------*- C++ -*-===//
//
// --ds-codegen-cuda: emits one CUDA C++ kernel per ds.fused_group (one thread
// block per token row, float math, vector loads; CudaKernelEmitter.cpp),
// compiles it with NVRTC (NvrtcCompile.cpp) and attaches source and cubin to
// the group. Identical groups share one content-hashed kernel.
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"

#include "ds/Dialect/Ds/IR/DsOps.h"
#include "ds/Transforms/CudaKernelEmitter.h"
#include "ds/Transforms/NvrtcCompile.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/xxhash.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSCODEGENCUDA
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

namespace {

struct CompiledKernel {
  std::string source, entry, cubin;
  int64_t blockDim;
};

struct CodegenCudaPass
    : public mlir::ds::impl::DsCodegenCudaBase<CodegenCudaPass> {
  using DsCodegenCudaBase::DsCodegenCudaBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<std::string> target =
        resolveTarget(module, arch, "ds-codegen-cuda");
    if (failed(target))
      return signalPassFailure();
    if (*target == "cpu")
      return; // nothing to generate for the CPU executor
#ifndef DS_HAVE_NVRTC
    module.emitError() << "ds-codegen-cuda: target " << *target
                       << " needs NVRTC, but dscc was built without CUDA "
                          "(DS_ENABLE_CUDA=OFF)";
    return signalPassFailure();
#endif
    std::vector<std::string> options = nvrtcOptions(*target);
    Builder b(&getContext());
    // Recorded options exclude include paths (they belong to this machine).
    SmallVector<Attribute> optionAttrs;
    for (const std::string &o : options)
      if (!StringRef(o).starts_with("-I"))
        optionAttrs.push_back(b.getStringAttr(o));

    SymbolTableCollection symbols;
    llvm::StringMap<CompiledKernel> cache; // entry -> kernel
    WalkResult walk = module.walk([&](FusedGroupOp group) {
      FailureOr<KernelSource> src = emitCudaKernel(group, symbols);
      if (failed(src))
        return WalkResult::interrupt();
      std::string entry = llvm::formatv("ds_fused_{0}",
                            llvm::utohexstr(llvm::xxh3_64bits(src->source),
                                            /*LowerCase=*/true))
                  .str();
      auto it = cache.find(entry);
      if (it == cache.end()) {
        std::string source = src->source;
        for (size_t pos; (pos = source.find("DS_ENTRY")) != std::string::npos;)
          source.replace(pos, 8, entry);
        std::string log;
        FailureOr<std::string> cubin = compileCubin(source, entry, options, log);
        if (failed(cubin)) {
          group.emitOpError() << "ds-codegen-cuda: NVRTC failed for " << entry
                              << ":\n"
                              << log;
          return WalkResult::interrupt();
        }
        it = cache
                 .try_emplace(entry, CompiledKernel{std::move(source), entry,
                                                    std::move(*cubin),
                                                    src->blockDim})
                 .first;
      }
      const CompiledKernel &k = it->second;
      group->setAttr("ds.cuda_source", b.getStringAttr(k.source));
      group->setAttr("ds.cuda_entry", b.getStringAttr(k.entry));
      group->setAttr("ds.cuda_arch", b.getStringAttr(*target));
      group->setAttr("ds.cuda_binary", b.getStringAttr(k.cubin));
      group->setAttr("ds.nvrtc_options", b.getArrayAttr(optionAttrs));
      group->setAttr("ds.block_dim", b.getI64IntegerAttr(k.blockDim));
      group->setAttr("ds.rows_per_block", b.getI64IntegerAttr(1));
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
