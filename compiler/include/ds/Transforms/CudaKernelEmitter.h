//===- CudaKernelEmitter.h - CUDA C++ for one ds.fused_group ----*- C++ -*-===//
//
// The source half of --ds-codegen-cuda: the CUDA C++ text of one fused group's
// kernel (one thread block per token row), with the placeholder entry name
// DS_ENTRY that the pass replaces by a content hash.
//
//===----------------------------------------------------------------------===//

#ifndef DS_TRANSFORMS_CUDAKERNELEMITTER_H
#define DS_TRANSFORMS_CUDAKERNELEMITTER_H

#include "mlir/IR/SymbolTable.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>

namespace mlir::ds {

class FusedGroupOp;

struct KernelSource {
  std::string source; // with the placeholder entry name DS_ENTRY
  int64_t blockDim;   // threads per block
};

/// The kernel source of `group`, or failure after an error on the group (an op
/// or a value type without a CUDA lowering).
FailureOr<KernelSource> emitCudaKernel(FusedGroupOp group,
                                       SymbolTableCollection &symbols);

/// The text every generated kernel starts with (CudaKernelPrelude.cpp).
llvm::StringRef cudaKernelPrelude();

} // namespace mlir::ds

#endif // DS_TRANSFORMS_CUDAKERNELEMITTER_H
