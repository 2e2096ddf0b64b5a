// Loading and launching dscc's generated fused kernels (plan Kernel.generated).
//
// ABI (docs/ARCHITECTURE.md): extern "C" entry(const DsStepArgs* args,
// group inputs..., group results..., (K base, V base) per kv_cache_write),
// with DsStepArgs {long long num_tokens; const int* slot_mapping;} in device
// memory. Launch rule: grid = ceil(num_tokens / rows_per_block), block = block_dim.
//
// The plan's cubin is loaded with cudaLibraryLoadData when the device's
// compute capability matches the kernel's `arch`; otherwise `source` is
// recompiled with NVRTC for the device and the cubin is cached on disk.
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <utility>
#include <vector>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.h"
#include "runtime/plan/plan_generated.h"

namespace ds::cuda {

// Layout of the step-arguments block the generated kernels read.
struct DsStepArgs {
  long long num_tokens;
  const int* slot_mapping;
};

// Directory of the NVRTC cubin cache: $XDG_CACHE_HOME/dsrt, else ~/.cache/dsrt.
std::string cubin_cache_dir();

struct CompiledCubin {
  std::string cubin;
  bool cache_hit = false;
  std::string cache_path;
};

// Compiles `source` with NVRTC to a cubin for `arch` ("sm_90a"); options are
// `options` plus --gpu-architecture=<arch>. The cubin is cached under
// `cache_dir` (empty: cubin_cache_dir()) by a hash of (source, options, arch).
// Needs no GPU.
Result<CompiledCubin> compile_cubin_cached(const std::string& source, const std::string& name,
                                           const std::vector<std::string>& options,
                                           const std::string& arch, std::string cache_dir = "");

// One loaded generated kernel. Move-only; unloads its library on destruction.
class LoadedKernel {
 public:
  struct Options {
    int device = 0;
    // Recompile with NVRTC even when the plan's cubin matches the device
    // (tests of the recompile path). Empty cache_dir: cubin_cache_dir().
    bool force_recompile = false;
    std::string cache_dir;
  };

  LoadedKernel() = default;
  // `kernel_name` names the kernel in errors.
  static Result<LoadedKernel> load(const plan::GeneratedKernel& gen, const std::string& kernel_name,
                                   const Options& options);
  static Result<LoadedKernel> load(const plan::GeneratedKernel& gen, const std::string& kernel_name) {
    return load(gen, kernel_name, Options{});
  }
  ~LoadedKernel() { reset(); }
  LoadedKernel(LoadedKernel&& o) noexcept { *this = std::move(o); }
  LoadedKernel& operator=(LoadedKernel&& o) noexcept;
  LoadedKernel(const LoadedKernel&) = delete;
  LoadedKernel& operator=(const LoadedKernel&) = delete;

  // Launches on `stream`. `step_args` is a device pointer to DsStepArgs;
  // `pointers` are the group's inputs, results and KV bases in ABI order.
  // Inside a PdlScope(true) (runtime/cuda/pdl.h) a kernel whose source has the
  // programmatic-launch wait (pdl_ready()) is launched with the PDL attribute.
  Status launch(cudaStream_t stream, long long num_tokens, const DsStepArgs* step_args,
                const std::vector<void*>& pointers) const;

  const std::string& name() const { return name_; }
  int block_dim() const { return block_dim_; }
  int rows_per_block() const { return rows_per_block_; }
  // True when the cubin came from NVRTC (recompiled), false for the plan's cubin.
  bool recompiled() const { return recompiled_; }
  bool cache_hit() const { return cache_hit_; }
  // True when the generated source executes `griddepcontrol.wait` before any
  // memory access (dscc's ds-codegen-cuda emits it), i.e. the kernel may be
  // launched with programmatic stream serialization.
  bool pdl_ready() const { return pdl_ready_; }
  void reset();

 private:
  cudaLibrary_t library_ = nullptr;
  cudaKernel_t kernel_ = nullptr;
  std::string name_;
  int block_dim_ = 0;
  int rows_per_block_ = 1;
  bool recompiled_ = false;
  bool cache_hit_ = false;
  bool pdl_ready_ = false;
};

}  // namespace ds::cuda
