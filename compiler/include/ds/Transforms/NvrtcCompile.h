//===- NvrtcCompile.h - NVRTC for ds-codegen-cuda ---------------*- C++ -*-===//
//
// Compiles generated CUDA C++ to a cubin with NVRTC. Without CUDA
// (DS_ENABLE_CUDA=OFF) compileCubin fails with a message saying so.
//
//===----------------------------------------------------------------------===//

#ifndef DS_TRANSFORMS_NVRTCCOMPILE_H
#define DS_TRANSFORMS_NVRTCCOMPILE_H

#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <string>
#include <vector>

namespace mlir::ds {

/// NVRTC compile options for `arch` (e.g. sm_90a), with this machine's CUDA
/// include directory when dscc was built with CUDA.
std::vector<std::string> nvrtcOptions(llvm::StringRef arch);

/// Compiles `source` to a cubin, or fails with the NVRTC log in `log`.
FailureOr<std::string> compileCubin(const std::string &source,
                                    llvm::StringRef entry,
                                    llvm::ArrayRef<std::string> options,
                                    std::string &log);

} // namespace mlir::ds

#endif // DS_TRANSFORMS_NVRTCCOMPILE_H
