// --enable-p2p-check: every pair of the group's GPUs must reach each other
// directly (NVLink or PCIe peer access); NCCL would otherwise fall back to
// copies through host memory, silently far slower.
#include <set>

#include "runtime/cuda/cuda_check.h"
#include "runtime/dist/cuda/device_communicator.h"

namespace ds::cuda {

Status check_p2p(const std::vector<int>& devices) {
  const int count = device_count();
  std::set<int> seen;
  for (int d : devices) {
    if (d < 0 || d >= count)
      return Status::Error(StrCat() << "--enable-p2p-check: GPU " << d << " does not exist (" << count
                                    << " CUDA device(s) visible)");
    if (!seen.insert(d).second)
      return Status::Error(StrCat() << "--enable-p2p-check: GPU " << d << " is listed twice");
  }
  for (int a : devices) {
    for (int b : devices) {
      if (a == b) continue;
      int can = 0;
      DS_CUDA_RETURN_IF_ERROR(cudaDeviceCanAccessPeer(&can, a, b));
      if (!can)
        return Status::Error(StrCat() << "--enable-p2p-check: GPU " << a << " cannot access GPU " << b
                                      << " directly (cudaDeviceCanAccessPeer = 0): collectives between them "
                                         "would go through host memory; use GPUs connected by NVLink/PCIe "
                                         "peer access or drop --enable-p2p-check");
    }
  }
  return Status::Ok();
}

}  // namespace ds::cuda
