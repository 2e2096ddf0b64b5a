// CUDA runtime error handling: cudaError_t -> ds::Status with the failing
// expression, file:line and cudaGetErrorString. The runtime links cudart_static
// (never libcuda directly), so a binary starts on machines without a driver;
// device_count() then reports 0 instead of an error.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "runtime/common/status.h"

namespace ds::cuda {

inline Status cuda_error_status(cudaError_t err, const char* expr, const char* file, int line) {
  return Status::Error(StrCat() << "CUDA error " << cudaGetErrorName(err) << " ("
                                << cudaGetErrorString(err) << ") in " << expr << " [" << file
                                << ":" << line << "]");
}

// Number of usable CUDA devices; 0 when there is no GPU or no (sufficient) driver.
int device_count();

// Compute capability of `device` as an NVRTC architecture name: "sm_90a" for
// 9.x and newer (arch-specific features), "sm_XY" before that.
Result<std::string> device_arch(int device);

// True when a cubin built for `kernel_arch` (e.g. "sm_90a") runs on a device
// whose device_arch() is `device_arch`: same compute capability digits.
bool arch_matches(const std::string& kernel_arch, const std::string& device_arch);

}  // namespace ds::cuda

#define DS_CUDA_RETURN_IF_ERROR(expr)                                               \
  do {                                                                              \
    cudaError_t _ds_cuda_err = (expr);                                              \
    if (_ds_cuda_err != cudaSuccess)                                                \
      return ::ds::cuda::cuda_error_status(_ds_cuda_err, #expr, __FILE__, __LINE__); \
  } while (0)
