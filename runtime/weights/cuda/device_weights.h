// Plan weights on the GPU. Each weight is built on the device from its
// checkpoint sources: the sliced bytes of every source are staged through
// pinned host buffers (double-buffered, overlapping disk reads with PCIe copies)
// and placed into the concatenated weight with a cast kernel, so that the host
// never materializes a transformed copy. `dummy` weights are generated on the
// GPU (runtime/weights/dummy_init.h: the CPU loader's values, bit for bit).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/weight_loader.h"

namespace ds::cuda {

struct DeviceTensor {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  void* data = nullptr;   // device memory, 256-byte aligned
  size_t nbytes = 0;
};

// Called while loading: bytes done, bytes total (weights of this rank).
using LoadProgressFn = std::function<void(size_t done, size_t total)>;

class DeviceWeights {
 public:
  // Loads every weight of `plan` for options.tp_rank onto the current device.
  // Errors name the weight, the source tensor and the file.
  static Result<std::unique_ptr<DeviceWeights>> load(const LoadedPlan& plan, const WeightLoadOptions& options,
                                                     cudaStream_t stream, const LoadProgressFn& progress = nullptr);
  ~DeviceWeights();
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;

  size_t size() const { return tensors_.size(); }
  const DeviceTensor& get(size_t index) const { return tensors_.at(index); }
  size_t total_bytes() const { return total_bytes_; }

  // Device bytes the plan's weights take for one rank (for the memory plan,
  // before anything is allocated).
  static size_t plan_bytes(const LoadedPlan& plan);

 private:
  DeviceWeights() = default;
  void* base_ = nullptr;  // one allocation for all weights
  size_t total_bytes_ = 0;
  std::vector<DeviceTensor> tensors_;
};

}  // namespace ds::cuda
