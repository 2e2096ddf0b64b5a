#include "runtime/cuda/cuda_check.h"

namespace ds::cuda {

int device_count() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

Result<std::string> device_arch(int device) {
  int major = 0, minor = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  std::string arch = StrCat() << "sm_" << major << minor;
  if (major >= 9) arch += "a";
  return arch;
}

static std::string strip_arch_suffix(const std::string& arch) {
  std::string s = arch;
  while (!s.empty() && (s.back() == 'a' || s.back() == 'f')) s.pop_back();
  return s;
}

bool arch_matches(const std::string& kernel_arch, const std::string& device_arch) {
  return !kernel_arch.empty() && strip_arch_suffix(kernel_arch) == strip_arch_suffix(device_arch);
}

}  // namespace ds::cuda
