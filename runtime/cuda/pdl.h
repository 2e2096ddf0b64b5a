// Programmatic dependent launch (PDL, sm_90+): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the
// previous kernel of its stream is still running; it must then execute
// `griddepcontrol.wait` (pdl_wait() in pdl.cuh) before it touches any memory
// the previous kernels write (activations, KV cache, step metadata, scratch)
// and may only read immutable data (weights) before that. The previous
// kernel's `griddepcontrol.launch_dependents` (pdl_trigger()) lets the
// dependent grid be scheduled before it exits; the wait still returns only
// after the whole previous grid has completed and its writes are visible.
// Stream capture keeps these programmatic edges in CUDA graphs.
//
// Which launches carry the attribute: those of the launchers that use
// launch_kernel() of pdl.cuh (GEMV, decode attention, embedding/row gathers)
// and LoadedKernel::launch for generated kernels that contain the wait. Every
// such kernel waits unconditionally, so it is also correct behind a kernel that
// does not trigger (cuBLASLt, NCCL, prefill attention: implicit trigger at
// exit) and after non-kernel work (copies, event waits), which stays a full
// dependency. On by default on sm_90+ devices; the environment variable
// DSRT_PDL=0 turns it off for the process (A/B runs), and a PdlScope sets it
// for the launches of one host thread (tests, benchmarks). The setting is read
// at launch time: a captured CUDA graph keeps the edges it was captured with.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace ds::cuda {

namespace detail {
// -1: no PdlScope on this thread; 0 / 1: forced off / on.
inline int& pdl_override() {
  thread_local int v = -1;
  return v;
}
inline bool pdl_env_off() {
  static const bool off = [] {
    const char* e = std::getenv("DSRT_PDL");
    return e != nullptr && std::strcmp(e, "0") == 0;
  }();
  return off;
}
// Compute capability >= 9.0 of the current device (cached per device).
inline bool pdl_device_ok() {
  static std::atomic<signed char> cache[64] = {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0) {
    (void)cudaGetLastError();
    return false;
  }
  if (dev >= 64) return false;
  signed char c = cache[dev].load(std::memory_order_relaxed);
  if (c == 0) {
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      major = 0;
    }
    c = major >= 9 ? 1 : -1;
    cache[dev].store(c, std::memory_order_relaxed);
  }
  return c > 0;
}
}  // namespace detail

// Whether this thread's PDL-aware launches carry the attribute now.
inline bool pdl_active() {
  const int v = detail::pdl_override();
  if (v == 0) return false;
  if (v < 0 && detail::pdl_env_off()) return false;
  return detail::pdl_device_ok();
}

// Forces PDL on or off for this thread's launches (on still needs sm_90+);
// restores the previous setting on destruction.
class PdlScope {
 public:
  explicit PdlScope(bool on) : prev_(detail::pdl_override()) { detail::pdl_override() = on ? 1 : 0; }
  ~PdlScope() { detail::pdl_override() = prev_; }
  PdlScope(const PdlScope&) = delete;
  PdlScope& operator=(const PdlScope&) = delete;

 private:
  int prev_;
};

// Whether PDL is used by default on `device`: compute capability >= 9.0 and
// DSRT_PDL is not "0".
inline bool pdl_supported(int device) {
  if (detail::pdl_env_off()) return false;
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return major >= 9;
}

// A launch configuration with the PDL attribute when pdl_active(). `attr`
// must outlive the launch call.
inline cudaLaunchConfig_t pdl_launch_config(dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                            cudaLaunchAttribute* attr) {
  cudaLaunchConfig_t cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  attr->id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr->val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_active() ? 1 : 0;
  return cfg;
}

// pdl_launch_config for a grid of thread-block clusters of `cluster` blocks
// (sm_90+): attrs[0] carries the PDL attribute when active, the next one the
// cluster dimension.
inline cudaLaunchConfig_t pdl_cluster_launch_config(dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                                    cudaLaunchAttribute (&attrs)[2], dim3 cluster) {
  cudaLaunchConfig_t cfg = pdl_launch_config(grid, block, smem, stream, &attrs[0]);
  cudaLaunchAttribute& c = attrs[cfg.numAttrs];
  c.id = cudaLaunchAttributeClusterDimension;
  c.val.clusterDim.x = cluster.x;
  c.val.clusterDim.y = cluster.y;
  c.val.clusterDim.z = cluster.z;
  cfg.attrs = attrs;
  cfg.numAttrs += 1;
  return cfg;
}

}  // namespace ds::cuda
