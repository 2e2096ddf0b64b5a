// Group factories over NCCL: in-process and multi-process (one or several GPUs
// per process; process 0's unique id travels over the host communicator). One
// thread per local GPU runs the non-blocking init of its rank.
#include <cstring>
#include <set>
#include <string>

#include "runtime/common/parallel_for.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/dist/cuda/nccl_communicator.h"

namespace ds::cuda {
namespace {

Status check_device(int device, int count, const char* what) {
  if (device < 0 || device >= count)
    return Status::Error(StrCat() << what << ": GPU " << device << " does not exist (" << count
                                  << " CUDA device(s) visible)");
  return Status::Ok();
}

Status check_timeout(std::chrono::milliseconds timeout, const char* what) {
  if (timeout.count() <= 0)
    return Status::Error(StrCat() << what << ": timeout must be positive, got " << timeout.count() << " ms");
  return Status::Ok();
}

// Ranks first_rank .. first_rank + devices.size() - 1 of a `size`-rank group,
// rank first_rank + i on devices[i]: every init runs concurrently on its own
// thread (each waits for all the others, in this process and elsewhere).
Result<std::vector<std::unique_ptr<DeviceCommunicator>>> init_local_ranks(const ncclUniqueId& id, int first_rank,
                                                                          int size, const std::vector<int>& devices,
                                                                          std::chrono::milliseconds timeout,
                                                                          const char* what) {
  const int n = static_cast<int>(devices.size());
  std::vector<std::unique_ptr<NcclCommunicator>> comms(n);
  std::vector<Status> status(n);
  parallel_for_each(static_cast<size_t>(n), [&](size_t i) {
    auto c = NcclCommunicator::init_rank(id, first_rank + static_cast<int>(i), size, devices[i], timeout);
    if (c.ok()) {
      comms[i] = std::move(c).value();
    } else {
      status[i] = c.status();
    }
  });
  std::string errors;
  int failed = 0;
  for (int i = 0; i < n; ++i) {
    if (status[i].ok()) continue;
    if (failed++ == 0) errors = status[i].message();
  }
  if (failed > 0) {
    for (auto& c : comms)
      if (c) c->abort();  // the group is incomplete: never finalize against missing peers
    return Status::Error(StrCat() << what << ": " << failed << " of " << n << " local ranks failed; first: " << errors);
  }
  std::vector<std::unique_ptr<DeviceCommunicator>> out;
  out.reserve(n);
  for (auto& c : comms) out.push_back(std::move(c));
  return out;
}

// Checks `devices` (visible, none twice).
Status check_devices(const std::vector<int>& devices, const char* what) {
  if (devices.empty()) return Status::Error(StrCat() << what << ": no devices given");
  const int count = device_count();
  std::set<int> seen;
  for (int d : devices) {
    DS_RETURN_IF_ERROR(check_device(d, count, what));
    if (!seen.insert(d).second)
      return Status::Error(StrCat() << what << ": GPU " << d << " is listed twice (one rank per GPU)");
  }
  return Status::Ok();
}

}  // namespace

bool have_device_collectives() { return true; }

Result<std::vector<std::unique_ptr<DeviceCommunicator>>> create_local_device_group(
    const std::vector<int>& devices, std::chrono::milliseconds timeout) {
  const char* what = "create_local_device_group";
  DS_RETURN_IF_ERROR(check_timeout(timeout, what));
  DS_RETURN_IF_ERROR(check_devices(devices, what));
  ncclUniqueId id;
  if (ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess)
    return Status::Error(StrCat() << what << ": ncclGetUniqueId failed: " << ncclGetErrorString(r));
  return init_local_ranks(id, 0, static_cast<int>(devices.size()), devices, timeout, what);
}

Result<std::vector<std::unique_ptr<DeviceCommunicator>>> create_process_device_group(
    Communicator& host_group, const std::vector<int>& devices, std::chrono::milliseconds timeout) {
  const char* what = "create_process_device_group";
  DS_RETURN_IF_ERROR(check_timeout(timeout, what));
  // Every process takes part in the broadcast, even one whose own checks fail,
  // so that no peer waits for it; its own error is reported afterwards.
  Status local = check_devices(devices, what);
  std::string id_bytes;
  if (host_group.rank() == 0) {
    ncclUniqueId id;
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r == ncclSuccess) {
      id_bytes.assign(id.internal, sizeof(id.internal));
    } else if (local.ok()) {
      local = Status::Error(StrCat() << what << ": ncclGetUniqueId failed on process 0: " << ncclGetErrorString(r));
    }
  }
  DS_RETURN_IF_ERROR(host_group.broadcast(id_bytes, 0).with_context(
      StrCat() << what << ": sending the NCCL id from process 0 to process " << host_group.rank()));
  DS_RETURN_IF_ERROR(local);
  if (id_bytes.size() != sizeof(ncclUniqueId().internal))
    return Status::Error(StrCat() << what << ": process " << host_group.rank() << " received " << id_bytes.size()
                                  << " bytes instead of an NCCL id of " << sizeof(ncclUniqueId().internal)
                                  << " (process 0 could not create it)");
  ncclUniqueId id;
  std::memcpy(id.internal, id_bytes.data(), id_bytes.size());
  const int per_process = static_cast<int>(devices.size());
  return init_local_ranks(id, host_group.rank() * per_process, host_group.size() * per_process, devices, timeout,
                          what);
}

Result<std::unique_ptr<DeviceCommunicator>> create_device_group(Communicator& host_group, int device,
                                                                std::chrono::milliseconds timeout) {
  DS_ASSIGN_OR_RETURN(auto comms, create_process_device_group(host_group, {device}, timeout));
  return std::move(comms.front());
}

}  // namespace ds::cuda
