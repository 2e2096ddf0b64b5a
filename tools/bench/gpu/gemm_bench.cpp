// ds_gpu_ceilings: measures the current GPU's ceilings for docs/PERF.md.
//   copy bandwidth   D2D cudaMemcpyAsync of 1 GiB, (read + write) bytes / time
//   stream read      a 16-byte-load read-only kernel over 1 GiB
//   GEMM             cuBLASLt bf16 TFLOP/s at 8192^3 and the 32B prefill shapes (m = 4096)
//   GEMV             the small-M kernel's weight bytes / time at m = 1 on the 7B/32B
//                    decode shapes (cuBLASLt beside it), and both paths over m; its fixed
//                    cost per launch and streaming rate (fit over n, alone and chained)
// CUDA events around each launch (queued behind a spin kernel so that host
// launch gaps are not timed), 3 warm-ups, median of --reps (>= 20) runs.
// Weight operands rotate through a pool larger than L2 so that no run reads
// its weights from L2. Output: a table on stdout, and JSON with --json FILE.
// --m-sweep 1,16,64,...: only the copy ceiling and every decode shape at those
// m (cuBLASLt, the GEMV kernel where m <= kGemvMaxM, kAuto after prepare():
// its timed choice): the weight-bound range of decode batches (weight bytes /
// time as % of copy).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/gather.h"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemv.h"
#include "runtime/common/file_util.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "kernels/cuda/gemm/timing_spin.h"
#include "tools/bench/gpu/ceilings_kernels.h"

namespace ds::cuda::bench {
namespace {

struct LayerShape {
  const char* name;
  int64_t n, k;
};

const LayerShape kDecodeShapes[] = {
    {"7B qkv", 4608, 3584},    {"7B o", 3584, 3584},      {"7B gate_up", 37888, 3584}, {"7B down", 3584, 18944},
    {"32B qkv", 7168, 5120},   {"32B o", 5120, 5120},     {"32B gate_up", 55296, 5120}, {"32B down", 5120, 27648},
    {"lm_head", 152064, 5120},
};
const LayerShape kPrefillShapes[] = {
    {"32B qkv", 7168, 5120}, {"32B o", 5120, 5120}, {"32B gate_up", 55296, 5120}, {"32B down", 5120, 27648}};
constexpr int64_t kPrefillM = 4096;

class Bench {
 public:
  static Result<Bench> create(int reps) {
    Bench b;
    b.reps_ = reps;
    DS_ASSIGN_OR_RETURN(b.stream_, Stream::create());
    DS_ASSIGN_OR_RETURN(b.start_, Event::create());
    DS_ASSIGN_OR_RETURN(b.stop_, Event::create());
    return b;
  }

  // Median milliseconds of `launch(rep)` over reps_ runs.
  Result<double> median_ms(const std::function<Status(int)>& launch) {
    for (int i = 0; i < 3; ++i) DS_RETURN_IF_ERROR(launch(i));
    DS_RETURN_IF_ERROR(stream_.synchronize());
    std::vector<double> ms;
    for (int i = 0; i < reps_; ++i) {
      DS_RETURN_IF_ERROR(launch_timing_spin(50000, stream_.get()));
      DS_RETURN_IF_ERROR(start_.record(stream_));
      DS_RETURN_IF_ERROR(launch(i));
      DS_RETURN_IF_ERROR(stop_.record(stream_));
      DS_RETURN_IF_ERROR(stop_.synchronize());
      DS_ASSIGN_OR_RETURN(float t, stop_.elapsed_ms_since(start_));
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

  cudaStream_t stream() const { return stream_.get(); }

 private:
  int reps_ = 20;
  Stream stream_;
  Event start_, stop_;
};

// --json: the results, written whole (temporary file, then rename) or not at all.
Status write_json(const std::string& path, const nlohmann::json& out) {
  if (path.empty()) return Status::Ok();
  DS_RETURN_IF_ERROR(write_file_atomic(path, out.dump(2) + "\n"));
  std::printf("\nwrote %s\n", path.c_str());
  return Status::Ok();
}

Status run(int reps, const std::string& json_path, const std::vector<int64_t>& m_sweep) {
  if (device_count() == 0) return Status::Error("no CUDA device");
  cudaDeviceProp prop;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, %.0f MiB, L2 %d MiB\n", prop.name, prop.multiProcessorCount,
              prop.totalGlobalMem / 1048576.0, prop.l2CacheSize >> 20);
  DS_ASSIGN_OR_RETURN(Bench bench, Bench::create(reps));
  DS_ASSIGN_OR_RETURN(auto runner, GemmRunner::create());
  nlohmann::json out;
  out["device"] = prop.name;
  out["sms"] = prop.multiProcessorCount;
  out["reps"] = reps;

  // ---- bandwidth ----
  const size_t kGiB = size_t{1} << 30;
  {
    DS_ASSIGN_OR_RETURN(DeviceBuffer a, DeviceBuffer::allocate(kGiB));
    DS_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::allocate(kGiB));
    DS_ASSIGN_OR_RETURN(DeviceBuffer sink, DeviceBuffer::allocate(16));
    DS_RETURN_IF_ERROR(fill_dummy(a.data(), DType::kBF16, kGiB / 2, 1, 1.0f, bench.stream()));
    DS_ASSIGN_OR_RETURN(double copy_ms, bench.median_ms([&](int) -> Status {
      DS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(b.data(), a.data(), kGiB, cudaMemcpyDeviceToDevice, bench.stream()));
      return Status::Ok();
    }));
    DS_ASSIGN_OR_RETURN(double read_ms, bench.median_ms([&](int) {
      return launch_stream_read(a.data(), kGiB, static_cast<uint32_t*>(sink.data()), prop.multiProcessorCount,
                                bench.stream());
    }));
    const double copy_gbps = 2.0 * kGiB / (copy_ms * 1e6), read_gbps = kGiB / (read_ms * 1e6);
    std::printf("\n%-28s %10.1f GB/s  (1 GiB D2D, read + write bytes, %.3f ms)\n", "copy bandwidth", copy_gbps,
                copy_ms);
    std::printf("%-28s %10.1f GB/s  (1 GiB, 16-byte loads, %.3f ms)\n", "stream read bandwidth", read_gbps, read_ms);
    out["copy_bandwidth_GBps"] = copy_gbps;
    out["stream_read_GBps"] = read_gbps;
  }
  const double copy_gbps = out["copy_bandwidth_GBps"].get<double>();

  // Weight pool (> L2, >= the largest weight) and activations.
  const int64_t max_w = 152064 * 5120;  // lm_head elements
  const size_t pool_bytes = static_cast<size_t>(max_w) * 2 + (size_t{256} << 20);
  DS_ASSIGN_OR_RETURN(DeviceBuffer pool, DeviceBuffer::allocate(pool_bytes));
  DS_RETURN_IF_ERROR(fill_dummy(pool.data(), DType::kBF16, static_cast<int64_t>(pool_bytes / 2), 2, 0.05f,
                                bench.stream()));
  const int64_t max_x = std::max<int64_t>(8192 * 8192, kPrefillM * 27648);
  const int64_t max_y = std::max<int64_t>(8192 * 8192, kPrefillM * 55296);
  DS_ASSIGN_OR_RETURN(DeviceBuffer x, DeviceBuffer::allocate(static_cast<size_t>(max_x) * 2));
  DS_ASSIGN_OR_RETURN(DeviceBuffer y, DeviceBuffer::allocate(static_cast<size_t>(max_y) * 4));
  DS_RETURN_IF_ERROR(fill_dummy(x.data(), DType::kBF16, max_x, 3, 1.0f, bench.stream()));

  // Weight copy for rep `rep`: rotates through as many copies as the pool holds (<= 16).
  auto weight = [&](int64_t n, int64_t k, int rep) -> const void* {
    const size_t bytes = (static_cast<size_t>(n * k) * 2 + 255) / 256 * 256;
    const size_t copies = std::max<size_t>(1, std::min<size_t>(16, pool_bytes / bytes));
    return static_cast<const char*>(pool.data()) + (rep % copies) * bytes;
  };
  // The product of shape (m, n, k) on weight copy `rep`.
  auto gemm_args = [&](int64_t m, int64_t n, int64_t k, DType out_dtype, int rep) {
    GemmArgs a;
    a.x = x.data();
    a.w = weight(n, k, rep);
    a.y = y.data();
    a.m = m;
    a.n = n;
    a.k = k;
    a.out_dtype = out_dtype;
    return a;
  };
  auto time_gemm = [&](int64_t m, int64_t n, int64_t k, DType out_dtype, GemmPath path) -> Result<double> {
    return bench.median_ms(
        [&](int rep) { return runner->run(gemm_args(m, n, k, out_dtype, rep), bench.stream(), path); });
  };

  if (!m_sweep.empty()) {
    std::printf("\n%-14s %6s %10s %8s %10s %8s %10s %8s  %s\n", "decode m sweep", "m", "cuBLASLt", "%copy", "GEMV us",
                "%copy", "kAuto us", "%copy", "kAuto kernel");
    nlohmann::json rows = nlohmann::json::array();
    for (const LayerShape& s : kDecodeShapes) {
      const DType od = std::string(s.name) == "lm_head" ? DType::kF32 : DType::kBF16;
      const double bytes = 2.0 * s.n * s.k;
      auto pct = [&](double ms) { return 100.0 * bytes / (ms * 1e6) / copy_gbps; };
      for (int64_t m : m_sweep) {
        DS_ASSIGN_OR_RETURN(double lt_ms, time_gemm(m, s.n, s.k, od, GemmPath::kCublasLt));
        double g_ms = -1.0;
        if (m <= kGemvMaxM) {
          DS_ASSIGN_OR_RETURN(g_ms, time_gemm(m, s.n, s.k, od, GemmPath::kGemv));
        }
        const GemmArgs probe = gemm_args(m, s.n, s.k, od, 0);
        // As the executor does before capturing its decode graphs: kAuto's timed choices.
        DS_RETURN_IF_ERROR(runner->prepare(probe, bench.stream()));
        DS_ASSIGN_OR_RETURN(double auto_ms, time_gemm(m, s.n, s.k, od, GemmPath::kAuto));
        const std::string chosen = runner->chosen_kernel(probe);
        std::printf("%-14s %6lld %10.2f %7.1f%% %10s %7s%% %10.2f %7.1f%%  %s\n", s.name, (long long)m, lt_ms * 1e3,
                    pct(lt_ms), g_ms < 0 ? "-" : std::to_string(g_ms * 1e3).substr(0, 6).c_str(),
                    g_ms < 0 ? "-" : std::to_string(pct(g_ms)).substr(0, 5).c_str(), auto_ms * 1e3, pct(auto_ms),
                    chosen.c_str());
        rows.push_back({{"name", s.name}, {"m", m}, {"cublaslt_us", lt_ms * 1e3},
                        {"gemv_us", g_ms < 0 ? nlohmann::json() : nlohmann::json(g_ms * 1e3)},
                        {"auto_us", auto_ms * 1e3}, {"auto_kernel", chosen}});
      }
    }
    out["m_sweep"] = rows;
    return write_json(json_path, out);
  }

  // ---- GEMM (cuBLASLt) ----
  std::printf("\n%-28s %8s %8s %8s %10s %10s\n", "cuBLASLt bf16 GEMM", "m", "n", "k", "ms", "TFLOP/s");
  nlohmann::json gemms = nlohmann::json::array();
  auto report_gemm = [&](const std::string& name, int64_t m, int64_t n, int64_t k) -> Result<double> {
    DS_ASSIGN_OR_RETURN(double ms, time_gemm(m, n, k, DType::kBF16, GemmPath::kCublasLt));
    const double tflops = 2.0 * m * n * k / (ms * 1e9);
    std::printf("%-28s %8lld %8lld %8lld %10.3f %10.1f\n", name.c_str(), (long long)m, (long long)n, (long long)k,
                ms, tflops);
    gemms.push_back({{"name", name}, {"m", m}, {"n", n}, {"k", k}, {"ms", ms}, {"tflops", tflops}});
    return ms;
  };
  DS_ASSIGN_OR_RETURN(double cube_ms, report_gemm("square 8192^3", 8192, 8192, 8192));
  (void)cube_ms;
  double layer_ms = 0.0, layer_flops = 0.0;
  for (const LayerShape& s : kPrefillShapes) {
    DS_ASSIGN_OR_RETURN(double ms, report_gemm(std::string("prefill ") + s.name, kPrefillM, s.n, s.k));
    layer_ms += ms;
    layer_flops += 2.0 * kPrefillM * s.n * s.k;
  }
  std::printf("%-28s %8lld %8s %8s %10.3f %10.1f\n", "prefill 32B layer (sum)", (long long)kPrefillM, "", "",
              layer_ms, layer_flops / (layer_ms * 1e9));
  out["gemm"] = gemms;
  out["prefill_32b_layer_tflops"] = layer_flops / (layer_ms * 1e9);

  // ---- GEMV (m = 1) ----
  std::printf("\n%-28s %8s %8s %10s %10s %8s %12s %10s %10s %8s  %s\n", "decode GEMV (m=1)", "n", "k", "us", "GB/s",
              "%copy", "cuBLASLt us", "GB/s", "kAuto us", "GB/s", "kAuto kernel");
  nlohmann::json gemvs = nlohmann::json::array();
  for (const LayerShape& s : kDecodeShapes) {
    const DType od = std::string(s.name) == "lm_head" ? DType::kF32 : DType::kBF16;
    DS_ASSIGN_OR_RETURN(double ms, time_gemm(1, s.n, s.k, od, GemmPath::kGemv));
    DS_ASSIGN_OR_RETURN(double lt_ms, time_gemm(1, s.n, s.k, od, GemmPath::kCublasLt));
    DS_ASSIGN_OR_RETURN(double auto_ms, time_gemm(1, s.n, s.k, od, GemmPath::kAuto));
    const std::string chosen = runner->chosen_kernel(gemm_args(1, s.n, s.k, od, 0));
    const double bytes = 2.0 * s.n * s.k;
    const double gbps = bytes / (ms * 1e6), lt_gbps = bytes / (lt_ms * 1e6), auto_gbps = bytes / (auto_ms * 1e6);
    std::printf("%-28s %8lld %8lld %10.2f %10.1f %7.1f%% %12.2f %10.1f %10.2f %8.1f  %s\n", s.name, (long long)s.n,
                (long long)s.k, ms * 1e3, gbps, 100.0 * gbps / copy_gbps, lt_ms * 1e3, lt_gbps, auto_ms * 1e3,
                auto_gbps, chosen.c_str());
    gemvs.push_back({{"name", s.name}, {"n", s.n}, {"k", s.k}, {"out", dtype_name(od)}, {"us", ms * 1e3},
                     {"GBps", gbps}, {"frac_of_copy", gbps / copy_gbps}, {"cublaslt_us", lt_ms * 1e3},
                     {"cublaslt_GBps", lt_gbps}, {"auto_us", auto_ms * 1e3}, {"auto_GBps", auto_gbps},
                     {"auto_kernel", chosen}});
  }
  out["gemv"] = gemvs;

  // ---- small-M threshold: both paths over m ----
  std::printf("\n%-28s %6s %12s %12s\n", "GEMV vs cuBLASLt over m", "m", "gemv us", "cuBLASLt us");
  nlohmann::json sweep = nlohmann::json::array();
  for (const LayerShape& s : {kDecodeShapes[5], kDecodeShapes[6]}) {
    for (int64_t m : {1, 2, 4, 8, 12, 16, 32}) {
      double g_ms = -1.0;
      if (m <= kGemvMaxM) {
        DS_ASSIGN_OR_RETURN(g_ms, time_gemm(m, s.n, s.k, DType::kBF16, GemmPath::kGemv));
      }
      DS_ASSIGN_OR_RETURN(double lt_ms, time_gemm(m, s.n, s.k, DType::kBF16, GemmPath::kCublasLt));
      std::printf("%-28s %6lld %12s %12.2f\n", s.name, (long long)m,
                  g_ms < 0 ? "-" : std::to_string(g_ms * 1e3).substr(0, 8).c_str(), lt_ms * 1e3);
      sweep.push_back({{"name", s.name}, {"m", m}, {"gemv_us", g_ms < 0 ? nlohmann::json() : nlohmann::json(g_ms * 1e3)},
                       {"cublaslt_us", lt_ms * 1e3}});
    }
  }
  out["small_m_sweep"] = sweep;

  // ---- GEMV fixed cost (m = 1): the default GEMV over n at fixed k, one launch at a time and
  // eight back-to-back launches (PDL, as in a decode graph); a least-squares fit of
  // t = a + bytes / B gives the per-launch cost a (launch, ramp, tail) and the streaming rate B.
  std::printf("\n%-28s %8s %8s %12s %12s\n", "GEMV over n (m=1)", "n", "k", "single us", "chain us");
  nlohmann::json fixed = nlohmann::json::array();
  for (int64_t k : {int64_t{3584}, int64_t{5120}, int64_t{18944}}) {
    std::vector<double> bytes_v, single_v, chain_v;
    for (int64_t n : {1024, 2048, 4096, 8192, 16384, 32768}) {
      DS_ASSIGN_OR_RETURN(double one_ms, time_gemm(1, n, k, DType::kBF16, GemmPath::kGemv));
      constexpr int kChain = 8;
      DS_ASSIGN_OR_RETURN(double chain_ms, bench.median_ms([&](int rep) {
        for (int i = 0; i < kChain; ++i) {
          GemmArgs a;
          a.x = x.data();
          a.w = weight(n, k, rep * kChain + i);
          a.y = y.data();
          a.m = 1;
          a.n = n;
          a.k = k;
          DS_RETURN_IF_ERROR(runner->run(a, bench.stream(), GemmPath::kGemv));
        }
        return Status::Ok();
      }));
      bytes_v.push_back(2.0 * n * k);
      single_v.push_back(one_ms * 1e3);
      chain_v.push_back(chain_ms * 1e3 / kChain);
      std::printf("%-28s %8lld %8lld %12.2f %12.2f\n", "", (long long)n, (long long)k, single_v.back(), chain_v.back());
    }
    // Least squares of us = a + bytes * c; B = 1 / c in GB/s.
    auto fit = [&](const std::vector<double>& t, double* a, double* gbps) {
      const double nn = static_cast<double>(t.size());
      double sx = 0, sy = 0, sxx = 0, sxy = 0;
      for (size_t i = 0; i < t.size(); ++i) {
        sx += bytes_v[i], sy += t[i], sxx += bytes_v[i] * bytes_v[i], sxy += bytes_v[i] * t[i];
      }
      const double c = (nn * sxy - sx * sy) / (nn * sxx - sx * sx);
      *a = (sy - c * sx) / nn;
      *gbps = c > 0 ? 1e-3 / c : 0.0;  // bytes per us -> GB/s
    };
    double a1 = 0, b1 = 0, a8 = 0, b8 = 0;
    fit(single_v, &a1, &b1);
    fit(chain_v, &a8, &b8);
    std::printf("%-28s k %-6lld single: %.2f us + bytes at %.1f GB/s; chain: %.2f us + bytes at %.1f GB/s\n",
                "  fit", (long long)k, a1, b1, a8, b8);
    fixed.push_back({{"k", k}, {"single_fixed_us", a1}, {"single_GBps", b1}, {"chain_fixed_us", a8},
                     {"chain_GBps", b8}, {"bytes", bytes_v}, {"single_us", single_v}, {"chain_us", chain_v}});
  }
  out["gemv_fixed_cost"] = fixed;

  // ---- What a PDL boundary costs without the weights: chains of 8 launches of a probe that
  // triggers and waits like the GEMVs, then (read x) reads the k-wide bf16 row the previous
  // launch wrote, once per warp, and writes one float per warp for the next. One block, and as
  // many blocks as the m = 1 warp GEMV keeps resident (9 per SM).
  {
    std::printf("\n%-28s %8s %8s %12s\n", "PDL chain probe (8 launches)", "blocks", "k", "us per launch");
    nlohmann::json probes = nlohmann::json::array();
    DS_ASSIGN_OR_RETURN(DeviceBuffer ping, DeviceBuffer::allocate(size_t{1} << 16));
    DS_ASSIGN_OR_RETURN(DeviceBuffer pong, DeviceBuffer::allocate(size_t{1} << 16));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(ping.data(), 0, ping.bytes()));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(pong.data(), 0, pong.bytes()));
    const int full = prop.multiProcessorCount * 9;
    struct Probe {
      const char* name;
      int blocks;
      int k;
      bool read_x;
    };
    const int sms = prop.multiProcessorCount;
    const Probe probe_list[] = {{"wait only", 1, 0, false},
                                {"wait only", sms, 0, false},
                                {"wait only", 2 * sms, 0, false},
                                {"wait only", 4 * sms, 0, false},
                                {"wait only", full, 0, false},
                                {"wait only", 4 * full, 0, false},
                                {"wait + read x", 1, 3584, true},
                                {"wait + read x", full, 3584, true},
                                {"wait + read x", full, 18944, true}};
    for (const Probe& pr : probe_list) {
      constexpr int kChain = 8;
      DS_ASSIGN_OR_RETURN(double ms, bench.median_ms([&](int) -> Status {
        for (int i = 0; i < kChain; ++i) {
          void* src = i % 2 == 0 ? ping.data() : pong.data();
          void* dst = i % 2 == 0 ? pong.data() : ping.data();
          DS_RETURN_IF_ERROR(launch_pdl_probe(src, pr.k, static_cast<float*>(dst), pr.blocks, pr.read_x, bench.stream()));
        }
        return Status::Ok();
      }));
      const double us = ms * 1e3 / kChain;
      std::printf("%-28s %8d %8d %12.2f\n", pr.name, pr.blocks, pr.k, us);
      probes.push_back({{"probe", pr.name}, {"blocks", pr.blocks}, {"k", pr.k}, {"us", us}});
    }
    out["pdl_chain_probe"] = probes;
  }

  // ---- GEMV k-split sweep (m = 1): the auto choice vs forced split counts ----
  DS_ASSIGN_OR_RETURN(DeviceBuffer scratch_buf, DeviceBuffer::allocate(detail::gemv_scratch_bytes()));
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(scratch_buf.data(), 0, scratch_buf.bytes()));
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  detail::GemvScratch scratch;
  scratch.partials = static_cast<float*>(scratch_buf.data());
  scratch.counters = reinterpret_cast<unsigned*>(scratch.partials + detail::kGemvMaxSplitBlocks * 128);
  scratch.num_sms = prop.multiProcessorCount;
  const int split_counts[] = {1, 2, 3, 4, 6, 8};
  std::printf("\n%-28s %6s %8s", "GEMV GB/s (m=1): mma splits", "auto", "warp");
  for (int sc : split_counts) std::printf(" %8d", sc);
  std::printf("\n");
  nlohmann::json splits_json = nlohmann::json::array();
  for (const LayerShape& s : kDecodeShapes) {
    GemmArgs a;
    a.x = x.data();
    a.y = y.data();
    a.m = 1;
    a.n = s.n;
    a.k = s.k;
    a.ldx = s.k;
    a.ldy = s.n;
    const int auto_splits = detail::gemv_k_splits(a, prop.multiProcessorCount);
    std::printf("%-28s %6d", s.name, auto_splits);
    nlohmann::json row = {{"name", s.name}, {"auto", auto_splits}};
    {
      DS_ASSIGN_OR_RETURN(double ms, bench.median_ms([&](int rep) {
        a.w = weight(s.n, s.k, rep);
        return detail::launch_gemv(a, scratch, bench.stream(), 0, detail::GemvKernel::kWarpRows);
      }));
      const double gbps = 2.0 * s.n * s.k / (ms * 1e6);
      std::printf(" %8.1f", gbps);
      row["warp"] = gbps;
    }
    for (int sc : split_counts) {
      DS_ASSIGN_OR_RETURN(double ms, bench.median_ms([&](int rep) {
        a.w = weight(s.n, s.k, rep);
        return detail::launch_gemv(a, scratch, bench.stream(), sc, detail::GemvKernel::kMmaTiles);
      }));
      const double gbps = 2.0 * s.n * s.k / (ms * 1e6);
      std::printf(" %8.1f", gbps);
      row[std::to_string(sc)] = gbps;
    }
    std::printf("\n");
    splits_json.push_back(row);
  }
  out["gemv_k_splits_GBps"] = splits_json;
  return write_json(json_path, out);
}

}  // namespace
}  // namespace ds::cuda::bench

int main(int argc, char** argv) {
  CLI::App app{"ds_gpu_ceilings: copy/stream bandwidth, cuBLASLt GEMM rate and GEMV bandwidth of this GPU"};
  std::string json_path;
  int reps = 20;
  app.add_option("--json", json_path, "also write the results as JSON to this file");
  app.add_option("--reps", reps, "timed runs per measurement (median reported)")->check(CLI::Range(20, 1000));
  std::vector<int64_t> m_sweep;
  app.add_option("--m-sweep", m_sweep, "only the copy ceiling and the decode shapes at these m (comma-separated)")
      ->delimiter(',')
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  CLI11_PARSE(app, argc, argv);
  ds::Status st = ds::cuda::bench::run(reps, json_path, m_sweep);
  if (!st.ok()) {
    std::fprintf(stderr, "ds_gpu_ceilings: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
