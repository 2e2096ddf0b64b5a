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
// Which launches carry the attribute: a PdlScope (RAII, per host thread) turns
// it on for the launchers that use launch_kernel() of pdl.cuh (GEMV, decode
// attention, embedding/row gathers) and LoadedKernel::launch for generated
// kernels that contain the wait; every such kernel waits unconditionally, so
// it is also correct behind a kernel that does not trigger (cuBLASLt, NCCL).
// Kernels launched outside a scope (or without these launchers) are fully
// stream-ordered as usual.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>

namespace ds::cuda {

namespace detail {
inline bool& pdl_flag() {
  thread_local bool on = false;
  return on;
}
}  // namespace detail

// True inside a PdlScope(true) of this host thread.
inline bool pdl_active() { return detail::pdl_flag(); }

// Sets whether this thread's launches (through the PDL-aware launchers) carry
// the programmatic-serialization attribute; restores the previous setting.
class PdlScope {
 public:
  explicit PdlScope(bool on) : prev_(detail::pdl_flag()) { detail::pdl_flag() = on; }
  ~PdlScope() { detail::pdl_flag() = prev_; }
  PdlScope(const PdlScope&) = delete;
  PdlScope& operator=(const PdlScope&) = delete;

 private:
  bool prev_;
};

// Whether PDL should be used on `device`: compute capability >= 9.0 and the
// environment variable DSRT_PDL is not "0" (A/B runs, debugging).
inline bool pdl_supported(int device) {
  if (const char* e = std::getenv("DSRT_PDL"); e != nullptr && std::strcmp(e, "0") == 0) return false;
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

}  // namespace ds::cuda
