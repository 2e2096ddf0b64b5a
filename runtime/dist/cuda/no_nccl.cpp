// Group factories of a dsrt built without NCCL: a clear error instead.
#include "runtime/dist/cuda/device_communicator.h"

namespace ds::cuda {
namespace {

Status no_nccl(const char* what) {
  return Status::Error(StrCat() << what << ": tensor parallelism on GPUs needs NCCL, but this dsrt was built "
                                          "without it (install NCCL >= 2.14, e.g. libnccl-dev, and reconfigure "
                                          "with -DDS_ENABLE_NCCL=ON or -DDS_NCCL_ROOT=<prefix>)");
}

}  // namespace

bool have_device_collectives() { return false; }

Result<std::vector<std::unique_ptr<DeviceCommunicator>>> create_local_device_group(const std::vector<int>&,
                                                                                   std::chrono::milliseconds) {
  return no_nccl("create_local_device_group");
}

Result<std::vector<std::unique_ptr<DeviceCommunicator>>> create_process_device_group(Communicator&,
                                                                                     const std::vector<int>&,
                                                                                     std::chrono::milliseconds) {
  return no_nccl("create_process_device_group");
}

Result<std::unique_ptr<DeviceCommunicator>> create_device_group(Communicator&, int, std::chrono::milliseconds) {
  return no_nccl("create_device_group");
}

}  // namespace ds::cuda
