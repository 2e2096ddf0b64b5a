//===- NvrtcCompile.cpp - NVRTC for ds-codegen-cuda -------------*- C++ -*-===//
//
// Compiles the generated kernels of --ds-codegen-cuda (NvrtcCompile.h).
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/NvrtcCompile.h"

#include "llvm/ADT/Twine.h"

#ifdef DS_HAVE_NVRTC
#include <nvrtc.h>
#endif

using namespace mlir;
using llvm::ArrayRef;
using llvm::StringRef;

std::vector<std::string> mlir::ds::nvrtcOptions(StringRef arch) {
  std::vector<std::string> options = {("--gpu-architecture=" + arch).str(),
                                      "--std=c++17"};
#ifdef DS_CUDA_INCLUDE_DIR
  options.push_back(std::string("-I") + DS_CUDA_INCLUDE_DIR);
#endif
  return options;
}

#ifdef DS_HAVE_NVRTC
namespace {
/// Owns an nvrtcProgram.
class NvrtcProgram {
public:
  ~NvrtcProgram() {
    if (program)
      nvrtcDestroyProgram(&program);
  }
  nvrtcProgram program = nullptr;
};
} // namespace
#endif

FailureOr<std::string> mlir::ds::compileCubin(const std::string &source,
                                              StringRef entry,
                                              ArrayRef<std::string> options,
                                              std::string &log) {
#ifdef DS_HAVE_NVRTC
  NvrtcProgram prog;
  std::string fileName = (entry + ".cu").str();
  if (nvrtcCreateProgram(&prog.program, source.c_str(), fileName.c_str(), 0,
                         nullptr, nullptr) != NVRTC_SUCCESS) {
    log = "nvrtcCreateProgram failed";
    return failure();
  }
  std::vector<const char *> argv;
  for (const std::string &o : options)
    argv.push_back(o.c_str());
  nvrtcResult result =
      nvrtcCompileProgram(prog.program, argv.size(), argv.data());
  size_t logSize = 0;
  nvrtcGetProgramLogSize(prog.program, &logSize);
  log.assign(logSize, '\0');
  if (logSize > 0)
    nvrtcGetProgramLog(prog.program, log.data());
  if (result != NVRTC_SUCCESS) {
    log = std::string(nvrtcGetErrorString(result)) + "\n" + log;
    return failure();
  }
  size_t size = 0;
  if (nvrtcGetCUBINSize(prog.program, &size) != NVRTC_SUCCESS || size == 0) {
    log = "no cubin produced (is the arch a real sm_* arch?)";
    return failure();
  }
  std::string cubin(size, '\0');
  nvrtcGetCUBIN(prog.program, cubin.data());
  return cubin;
#else
  (void)source;
  (void)entry;
  (void)options;
  log = "dscc was built without CUDA (DS_ENABLE_CUDA=OFF): NVRTC is not "
        "available";
  return failure();
#endif
}
