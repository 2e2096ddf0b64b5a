#include "runtime/cuda/kernel_library.h"

#include <nvrtc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "runtime/common/file_util.h"

namespace ds::cuda {
namespace {

// FNV-1a 64 over length-prefixed parts: stable across builds and platforms.
uint64_t fnv1a(uint64_t h, std::string_view s) {
  const uint64_t n = s.size();
  for (int i = 0; i < 8; ++i) {
    h ^= (n >> (8 * i)) & 0xff;
    h *= 0x100000001b3ULL;
  }
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

Status nvrtc_status(nvrtcResult r, const char* what, const std::string& name) {
  return Status::Error(StrCat() << "NVRTC " << what << " of kernel '" << name
                                << "' failed: " << nvrtcGetErrorString(r));
}

// Owns an nvrtcProgram.
struct Program {
  nvrtcProgram p = nullptr;
  ~Program() {
    if (p) nvrtcDestroyProgram(&p);
  }
};

Result<std::string> nvrtc_compile(const std::string& source, const std::string& name,
                                  const std::vector<std::string>& options) {
  Program prog;
  std::string file = name + ".cu";
  nvrtcResult r = nvrtcCreateProgram(&prog.p, source.c_str(), file.c_str(), 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) return nvrtc_status(r, "createProgram", name);
  std::vector<const char*> opts;
  for (const auto& o : options) opts.push_back(o.c_str());
  r = nvrtcCompileProgram(prog.p, static_cast<int>(opts.size()), opts.data());
  if (r != NVRTC_SUCCESS) {
    size_t log_size = 0;
    std::string log;
    if (nvrtcGetProgramLogSize(prog.p, &log_size) == NVRTC_SUCCESS && log_size > 1) {
      log.resize(log_size);
      if (nvrtcGetProgramLog(prog.p, log.data()) != NVRTC_SUCCESS) log.clear();
      while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    }
    return Status::Error(StrCat() << "NVRTC compilation of kernel '" << name
                                  << "' failed: " << nvrtcGetErrorString(r) << "\n" << log);
  }
  size_t size = 0;
  r = nvrtcGetCUBINSize(prog.p, &size);
  if (r != NVRTC_SUCCESS) return nvrtc_status(r, "getCUBINSize", name);
  std::string cubin(size, '\0');
  r = nvrtcGetCUBIN(prog.p, cubin.data());
  if (r != NVRTC_SUCCESS) return nvrtc_status(r, "getCUBIN", name);
  return cubin;
}

}  // namespace

std::string cubin_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/dsrt";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/dsrt";
  return (std::filesystem::temp_directory_path() / "dsrt-cache").string();
}

Result<CompiledCubin> compile_cubin_cached(const std::string& source, const std::string& name,
                                           const std::vector<std::string>& options,
                                           const std::string& arch, std::string cache_dir) {
  if (arch.rfind("sm_", 0) != 0)
    return Status::Error(StrCat() << "kernel '" << name << "': bad target architecture '" << arch
                                  << "' (expected sm_XY[a])");
  std::vector<std::string> opts = options;
  opts.push_back("--gpu-architecture=" + arch);

  uint64_t h = 0xcbf29ce484222325ULL;
  h = fnv1a(h, source);
  for (const auto& o : opts) h = fnv1a(h, o);
  h = fnv1a(h, arch);
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));

  if (cache_dir.empty()) cache_dir = cubin_cache_dir();
  CompiledCubin out;
  out.cache_path = cache_dir + "/" + arch + "-" + hex + ".cubin";
  std::error_code ec;
  if (std::filesystem::is_regular_file(out.cache_path, ec)) {
    auto cached = read_file(out.cache_path);
    if (cached.ok() && !cached->empty()) {
      out.cubin = std::move(cached).value();
      out.cache_hit = true;
      return out;
    }
  }
  DS_ASSIGN_OR_RETURN(out.cubin, nvrtc_compile(source, name, opts));
  // The cache is an optimization: a read-only or full disk must not fail the load.
  std::filesystem::create_directories(cache_dir, ec);
  if (!ec) {
    Status st = write_file_atomic(out.cache_path, out.cubin);
    if (!st.ok()) std::fprintf(stderr, "dsrt: warning: cubin cache: %s\n", st.message().c_str());
  }
  return out;
}

LoadedKernel& LoadedKernel::operator=(LoadedKernel&& o) noexcept {
  if (this != &o) {
    reset();
    library_ = std::exchange(o.library_, nullptr);
    kernel_ = std::exchange(o.kernel_, nullptr);
    name_ = std::move(o.name_);
    block_dim_ = o.block_dim_;
    rows_per_block_ = o.rows_per_block_;
    recompiled_ = o.recompiled_;
    cache_hit_ = o.cache_hit_;
    pdl_ready_ = o.pdl_ready_;
  }
  return *this;
}

void LoadedKernel::reset() {
  if (library_) (void)cudaLibraryUnload(library_);
  library_ = nullptr;
  kernel_ = nullptr;
}

Result<LoadedKernel> LoadedKernel::load(const plan::GeneratedKernel& gen,
                                        const std::string& kernel_name, const Options& options) {
  auto where = [&](const std::string& msg) {
    return Status::Error(StrCat() << "generated kernel '" << kernel_name << "': " << msg);
  };
  if (!gen.entry() || gen.entry()->size() == 0) return where("no entry name");
  if (gen.block_dim() <= 0 || gen.block_dim() > 1024)
    return where(StrCat() << "block_dim " << gen.block_dim() << " outside [1, 1024]");
  if (gen.rows_per_block() <= 0)
    return where(StrCat() << "rows_per_block " << gen.rows_per_block() << " must be positive");

  DS_ASSIGN_OR_RETURN(std::string dev_arch, device_arch(options.device));
  const std::string kernel_arch = gen.arch() ? gen.arch()->str() : "";
  const bool have_cubin = gen.binary() && gen.binary()->size() > 0;

  LoadedKernel k;
  k.name_ = kernel_name;
  k.block_dim_ = gen.block_dim();
  k.rows_per_block_ = gen.rows_per_block();
  // The wait must be in the code that runs: the plan's cubin is compiled from
  // this source, so its text tells (plans from before the codegen emitted it
  // are launched without the attribute).
  k.pdl_ready_ = gen.source() && std::string_view(gen.source()->c_str(), gen.source()->size()).find("griddepcontrol.wait") != std::string_view::npos;
  std::string cubin;
  if (have_cubin && !options.force_recompile && arch_matches(kernel_arch, dev_arch)) {
    cubin.assign(reinterpret_cast<const char*>(gen.binary()->data()), gen.binary()->size());
  } else {
    if (!gen.source() || gen.source()->size() == 0)
      return where(StrCat() << "built for '" << kernel_arch << "', the device is '" << dev_arch
                            << "' and the plan has no source to recompile");
    std::vector<std::string> opts;
    if (gen.nvrtc_options())
      for (const auto* o : *gen.nvrtc_options()) {
        std::string s = o->str();
        // The plan's own target is replaced by the device's.
        if (s.rfind("--gpu-architecture", 0) == 0 || s.rfind("-arch", 0) == 0) continue;
        // Include paths are this machine's (dscc strips its own).
        if (s.rfind("-I", 0) == 0 || s.rfind("--include-path", 0) == 0) continue;
        opts.push_back(std::move(s));
      }
#ifdef DS_CUDA_INCLUDE_DIR
    // Generated sources include <cuda_bf16.h>; NVRTC has no default search path.
    opts.push_back(std::string("-I") + DS_CUDA_INCLUDE_DIR);
#endif
    auto compiled = compile_cubin_cached(gen.source()->str(), kernel_name, opts, dev_arch,
                                         options.cache_dir);
    if (!compiled.ok()) return compiled.status();
    cubin = std::move(compiled->cubin);
    k.recompiled_ = true;
    k.cache_hit_ = compiled->cache_hit;
  }
  cudaError_t err = cudaLibraryLoadData(&k.library_, cubin.data(), nullptr, nullptr, 0, nullptr,
                                        nullptr, 0);
  if (err != cudaSuccess)
    return cuda_error_status(err, "cudaLibraryLoadData", __FILE__, __LINE__)
        .with_context("loading generated kernel '" + kernel_name + "'");
  err = cudaLibraryGetKernel(&k.kernel_, k.library_, gen.entry()->c_str());
  if (err != cudaSuccess)
    return cuda_error_status(err, "cudaLibraryGetKernel", __FILE__, __LINE__)
        .with_context("generated kernel '" + kernel_name + "' entry '" + gen.entry()->str() + "'");
  return k;
}

Status LoadedKernel::launch(cudaStream_t stream, long long num_tokens, const DsStepArgs* step_args,
                            const std::vector<void*>& pointers) const {
  if (!kernel_) return Status::Error("launch of an unloaded generated kernel");
  if (num_tokens <= 0) return Status::Ok();
  const long long blocks = (num_tokens + rows_per_block_ - 1) / rows_per_block_;
  if (blocks > 0x7fffffffLL)
    return Status::Error(StrCat() << "kernel '" << name_ << "': grid of " << blocks << " blocks");
  // Kernel parameters are passed by address: one slot per pointer argument.
  std::vector<const void*> values;
  values.reserve(pointers.size() + 1);
  values.push_back(step_args);
  for (void* p : pointers) values.push_back(p);
  std::vector<void*> args;
  args.reserve(values.size());
  for (auto& v : values) args.push_back(&v);
  cudaLaunchAttribute attr;
  cudaLaunchConfig_t cfg = pdl_launch_config(dim3(static_cast<unsigned>(blocks)),
                                             dim3(static_cast<unsigned>(block_dim_)), 0, stream, &attr);
  if (!pdl_ready_) cfg.numAttrs = 0;
  DS_CUDA_RETURN_IF_ERROR(cudaLaunchKernelExC(&cfg, reinterpret_cast<const void*>(kernel_), args.data()));
  return Status::Ok();
}

}  // namespace ds::cuda
