#include "kernels/cuda/gemm/timing_decoys.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "runtime/cuda/cuda_check.h"

namespace ds::cuda::detail {
namespace {

bool decoys_on() {
  static const bool on = [] {
    const char* e = std::getenv("DSRT_GEMM_TIMING_DECOYS");
    return !(e != nullptr && std::strcmp(e, "0") == 0);
  }();
  return on;
}

}  // namespace

Result<TimingDecoys> TimingDecoys::make(const GemmArgs& a, size_t l2_bytes, cudaStream_t stream) {
  TimingDecoys d;
  d.weights_.push_back(a.w);
  const size_t w_bytes = static_cast<size_t>(a.n) * static_cast<size_t>(a.k) * 2;  // bf16 [n, k]
  if (!decoys_on() || l2_bytes == 0 || w_bytes == 0 || w_bytes >= l2_bytes) return d;
  const size_t stride = (w_bytes + 255) / 256 * 256;
  const size_t count = std::min<size_t>(64, (2 * l2_bytes + w_bytes - 1) / w_bytes + 1);
  Result<DeviceBuffer> pool = DeviceBuffer::allocate(stride * count);
  if (!pool.ok()) {
    (void)cudaGetLastError();  // a failed allocation is not sticky: time on the weight itself
    return d;
  }
  d.pool_ = std::move(pool).value();
  DS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(d.pool_.data(), 0, d.pool_.bytes(), stream));
  d.weights_.clear();
  for (size_t i = 0; i < count; ++i) d.weights_.push_back(static_cast<const char*>(d.pool_.data()) + i * stride);
  return d;
}

}  // namespace ds::cuda::detail
