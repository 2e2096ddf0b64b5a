// What the batch-1 GEMV benchmarks (ds_gemv_rows_bench, ds_gemv_bulk_bench)
// share: their buffers and fixed inputs, and the timing of a PDL chain of launches.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"

#include "kernels/cuda/gemm/timing_spin.h"
#include "runtime/common/status.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda::bench {

constexpr int kChain = 8;  // launches per timed chain, each on its own weight copy

// x: a fixed pattern of small bf16 values (its first x.bytes() / 2 elements);
// pool: the weights of the chain's launches, a fixed pattern that keeps the
// bf16 sums well scaled.
inline Status fill_gemv_inputs(DeviceBuffer& x, DeviceBuffer& pool) {
  std::vector<__nv_bfloat16> hx(x.bytes() / 2);
  for (size_t i = 0; i < hx.size(); ++i) hx[i] = __float2bfloat16(static_cast<float>((i * 37) % 17) / 16.0f - 0.5f);
  DS_RETURN_IF_ERROR(x.copy_from_host(hx.data(), hx.size() * 2));
  std::vector<__nv_bfloat16> hw(1 << 20);
  for (size_t i = 0; i < hw.size(); ++i) hw[i] = __float2bfloat16(static_cast<float>((i * 101) % 31) / 64.0f - 0.23f);
  for (size_t off = 0; off < pool.bytes(); off += hw.size() * 2)
    DS_CUDA_RETURN_IF_ERROR(cudaMemcpy(static_cast<char*>(pool.data()) + off, hw.data(),
                                       std::min(hw.size() * 2, pool.bytes() - off), cudaMemcpyHostToDevice));
  return Status::Ok();
}

// Median over `reps` runs of the microseconds per launch of a chain of kChain
// launches (launch(0) .. launch(kChain - 1), PDL between them), each run behind
// a spin kernel so that the host has queued the chain before it starts; one
// untimed chain first.
inline Result<double> time_chain(const Stream& stream, Event& a, Event& b, int reps,
                                 const std::function<Status(int)>& launch) {
  for (int i = 0; i < kChain; ++i) DS_RETURN_IF_ERROR(launch(i));
  std::vector<double> us;
  for (int rep = 0; rep < reps; ++rep) {
    DS_RETURN_IF_ERROR(launch_timing_spin(50000, stream.get()));
    DS_RETURN_IF_ERROR(a.record(stream));
    for (int i = 0; i < kChain; ++i) DS_RETURN_IF_ERROR(launch(i));
    DS_RETURN_IF_ERROR(b.record(stream));
    DS_RETURN_IF_ERROR(b.synchronize());
    DS_ASSIGN_OR_RETURN(const float ms, b.elapsed_ms_since(a));
    us.push_back(ms * 1e3 / kChain);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

// What both benchmarks time with: a stream and a pair of events, kChain copies
// of a weight of up to max_w elements (fill_gemv_inputs), x (k up to 27648), y
// and the reference y (max_n values each), and a GemmRunner.
struct ChainBench {
  Stream stream;
  Event a, b;
  DeviceBuffer pool, x, y, y_ref;
  std::unique_ptr<GemmRunner> runner;

  static Result<ChainBench> create(size_t max_w, size_t max_n) {
    ChainBench c;
    DS_ASSIGN_OR_RETURN(c.stream, Stream::create());
    DS_ASSIGN_OR_RETURN(c.a, Event::create());
    DS_ASSIGN_OR_RETURN(c.b, Event::create());
    DS_ASSIGN_OR_RETURN(c.pool, DeviceBuffer::allocate(max_w * 2 * kChain));
    DS_ASSIGN_OR_RETURN(c.x, DeviceBuffer::allocate(27648 * 2));
    DS_ASSIGN_OR_RETURN(c.y, DeviceBuffer::allocate(max_n * 2));
    DS_ASSIGN_OR_RETURN(c.y_ref, DeviceBuffer::allocate(max_n * 2));
    DS_RETURN_IF_ERROR(fill_gemv_inputs(c.x, c.pool));
    DS_ASSIGN_OR_RETURN(c.runner, GemmRunner::create());
    return std::move(c);
  }
  // Launch i's copy of an n x k weight.
  const char* weight(int64_t n, int64_t k, int i) const {
    return static_cast<const char*>(pool.data()) + static_cast<size_t>(i % kChain) * n * k * 2;
  }
  // The m = 1 product into `out` on launch i's copy of an n x k weight (dense
  // strides, resolved: also what the kernels launched directly take).
  GemmArgs gemv_args(int64_t n, int64_t k, int i, void* out) const {
    GemmArgs g;
    g.x = x.data();
    g.w = weight(n, k, i);
    g.y = out;
    g.m = 1, g.n = n, g.k = k, g.ldx = k, g.ldy = n;
    return g;
  }
  Result<double> chain_us(int reps, const std::function<Status(int)>& launch) {
    return time_chain(stream, a, b, reps, launch);
  }
};

}  // namespace ds::cuda::bench
