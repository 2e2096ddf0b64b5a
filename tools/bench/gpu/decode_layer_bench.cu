// ds_decode_layer_bench: batch-1 decode layers of the 7B / 32B shapes as a
// CUDA graph, to tell where the time between "sum of weight bytes at copy
// bandwidth" and the real step goes, and what programmatic dependent launch
// (PDL, runtime/cuda/pdl.h) and each GEMV kernel variant change.
//
// One layer = add+RMSNorm, qkv GEMV (bias), rope + KV write, paged decode
// attention (kv 288 tokens, the real kernel), o GEMV, add+RMSNorm, gate_up
// GEMV, SiLU*mul, down GEMV; the fused kernels are stand-ins with the same
// traffic (decode_layer_kernels.cu). L layers with distinct weights (> L2) are
// captured into one graph; replays are timed with CUDA events (queued behind a
// spin kernel), median of --reps.
//   chain    graphs of L launches of one linear shape only, per kernel, PDL off/on
//   layer    the whole layer with one kernel choice for every linear, PDL off/on
//            ("auto": GemmRunner's timed choice; "best": the fastest kernel of
//            the chain table per shape under the same PDL setting)
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kernels/cuda/attention/paged_attention.h"
#include "kernels/cuda/gemm/gather.h"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemv.h"
#include "runtime/common/file_util.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/pdl.h"
#include "kernels/cuda/gemm/timing_spin.h"
#include "tools/bench/gpu/decode_layer_kernels.h"

namespace ds::cuda::bench {
namespace {

struct Model {
  const char* name;
  int64_t hidden, heads, kv_heads, inter;
  int layers;  // of the real model (the projection), the bench runs --layers
};
const Model kModels[] = {{"7B", 3584, 28, 4, 18944, 28}, {"32B", 5120, 40, 8, 27648, 64}};
constexpr int64_t kHeadDim = 128, kKvLen = 288, kPage = 16, kVocab = 152064;
constexpr int64_t kKvBound = 512;                 // the executor's first decode KV bucket
constexpr int64_t kPages = kKvBound / kPage;      // page table row (the launcher checks it covers the bound)

enum Lin { kQkv, kO, kGateUp, kDown, kNumLin };
const char* kLinName[] = {"qkv", "o", "gate_up", "down"};
// "warp-sN": the warp kernel with N warps per row forced (N = 1, 2, 4; "warp" picks N by wave fill).
const char* kKernels[] = {"cublaslt", "warp", "warp-s1", "warp-s2", "warp-s4", "deep", "async", "mma"};

struct Layer {
  DeviceBuffer w[kNumLin], bias, norm1, norm2, k_pool, v_pool;
};

// Parts of a layer to leave out or L2 prefetches to add (LayerBench::layer).
struct Variant {
  bool norms = true, rope = true, attn = true, silu = true;
  size_t pf_norm = 0, pf_rope = 0;  // bytes: norm1 -> qkv, norm2 -> gate_up, silu -> down; rope -> o
};

class LayerBench {
 public:
  Status init(const Model& m, int layers, cudaStream_t stream) {
    m_ = m;
    stream_ = stream;
    n_[kQkv] = (m.heads + 2 * m.kv_heads) * kHeadDim, k_[kQkv] = m.hidden;
    n_[kO] = m.hidden, k_[kO] = m.heads * kHeadDim;
    n_[kGateUp] = 2 * m.inter, k_[kGateUp] = m.hidden;
    n_[kDown] = m.hidden, k_[kDown] = m.inter;
    const int64_t pages = kPages;
    layers_.resize(static_cast<size_t>(layers));
    uint64_t key = 100;
    for (Layer& l : layers_) {
      for (int i = 0; i < kNumLin; ++i) {
        DS_ASSIGN_OR_RETURN(l.w[i], DeviceBuffer::allocate(static_cast<size_t>(n_[i] * k_[i]) * 2));
        DS_RETURN_IF_ERROR(fill_dummy(l.w[i].data(), DType::kBF16, n_[i] * k_[i], key++, 0.02f, stream));
      }
      DS_RETURN_IF_ERROR(alloc_fill(l.bias, n_[kQkv], key++, 0.02f));
      DS_RETURN_IF_ERROR(alloc_fill(l.norm1, m.hidden, key++, 1.0f));
      DS_RETURN_IF_ERROR(alloc_fill(l.norm2, m.hidden, key++, 1.0f));
      DS_RETURN_IF_ERROR(alloc_fill(l.k_pool, pages * kPage * m.kv_heads * kHeadDim, key++, 1.0f));
      DS_RETURN_IF_ERROR(alloc_fill(l.v_pool, pages * kPage * m.kv_heads * kHeadDim, key++, 1.0f));
    }
    DS_RETURN_IF_ERROR(alloc_fill(resid_, m.hidden, 7, 1.0f));
    DS_RETURN_IF_ERROR(alloc_fill(delta_, m.hidden, 8, 1.0f));
    DS_RETURN_IF_ERROR(alloc_fill(xn_, m.inter, 9, 1.0f));
    DS_RETURN_IF_ERROR(alloc_fill(qkv_, n_[kQkv], 10, 1.0f));
    DS_RETURN_IF_ERROR(alloc_fill(q_, m.heads * kHeadDim, 11, 1.0f));
    DS_RETURN_IF_ERROR(alloc_fill(attn_, m.heads * kHeadDim, 12, 1.0f));
    DS_RETURN_IF_ERROR(alloc_fill(gu_, 2 * m.inter, 13, 1.0f));
    DS_RETURN_IF_ERROR(alloc_fill(act_, m.inter, 14, 1.0f));
    std::vector<int32_t> meta = {0, 1, static_cast<int32_t>(kKvLen), static_cast<int32_t>(kKvLen - 1)};
    for (int64_t p = 0; p < pages; ++p) meta.push_back(static_cast<int32_t>(p));
    DS_ASSIGN_OR_RETURN(meta_, DeviceBuffer::allocate(meta.size() * 4));
    DS_RETURN_IF_ERROR(meta_.copy_from_host(meta.data(), meta.size() * 4));
    attn_p_.num_heads = static_cast<int>(m.heads);
    attn_p_.num_kv_heads = static_cast<int>(m.kv_heads);
    attn_p_.head_dim = attn_p_.v_head_dim = static_cast<int>(kHeadDim);
    attn_p_.page_size = static_cast<int>(kPage);
    attn_p_.scale = 0.08838834764f;
    const size_t ws = paged_attention_workspace_bytes(attn_p_, 1, 1, static_cast<int>(kKvBound));
    DS_ASSIGN_OR_RETURN(attn_ws_, DeviceBuffer::allocate(std::max<size_t>(ws, 256)));
    DS_RETURN_IF_ERROR(attn_ws_.zero());
    DS_ASSIGN_OR_RETURN(runner_, GemmRunner::create());
    DS_ASSIGN_OR_RETURN(scratch_buf_, DeviceBuffer::allocate(detail::gemv_scratch_bytes()));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(scratch_buf_.data(), 0, scratch_buf_.bytes()));
    int dev = 0;
    DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&dev));
    DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&scratch_.num_sms, cudaDevAttrMultiProcessorCount, dev));
    scratch_.partials = static_cast<float*>(scratch_buf_.data());
    scratch_.counters = reinterpret_cast<unsigned*>(scratch_.partials + detail::kGemvMaxSplitBlocks * 128);
    DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
    return Status::Ok();
  }

  double layer_weight_bytes() const {
    double b = 0;
    for (int i = 0; i < kNumLin; ++i) b += 2.0 * n_[i] * k_[i];
    return b;
  }
  double lin_bytes(int i) const { return 2.0 * n_[i] * k_[i]; }

  GemmArgs args(int lin, const Layer& l) const {
    GemmArgs a;
    a.m = 1, a.n = n_[lin], a.k = k_[lin], a.ldx = k_[lin], a.ldy = n_[lin];
    a.w = l.w[lin].data();
    a.bias = lin == kQkv ? l.bias.data() : nullptr;
    const void* xs[] = {xn_.data(), attn_.data(), xn_.data(), act_.data()};
    void* ys[] = {qkv_.data(), delta_.data(), gu_.data(), delta_.data()};
    a.x = xs[lin];
    a.y = ys[lin];
    return a;
  }

  // kernel: "auto" or one of kKernels.
  Status linear(int lin, const Layer& l, const std::string& kernel) {
    GemmArgs a = args(lin, l);
    if (kernel == "auto") return runner_->run(a, stream_);
    if (kernel == "cublaslt") return runner_->run(a, stream_, GemmPath::kCublasLt);
    detail::GemvKernel k = detail::GemvKernel::kWarpRows;
    if (kernel.rfind("warp-s", 0) == 0) return detail::launch_gemv(a, scratch_, stream_, std::stoi(kernel.substr(6)), k);
    if (kernel == "deep") k = detail::GemvKernel::kWarpRowsDeep;
    if (kernel == "async") k = detail::GemvKernel::kWarpAsync;
    if (kernel == "mma") k = detail::GemvKernel::kMmaTiles;
    return detail::launch_gemv(a, scratch_, stream_, 0, k);
  }

  Status prepare_auto() {
    for (const Layer& l : layers_)
      for (int i = 0; i < kNumLin; ++i) DS_RETURN_IF_ERROR(runner_->prepare(args(i, l), stream_));
    return Status::Ok();
  }

  // One decoder layer; kernels[i] for linear i; `with_linears` / `with_rest` drop parts, `v` drops
  // single kernels or adds L2 prefetches of the next linear's weights to the latency-bound ones.
  Status layer(const Layer& l, const std::string (&kernels)[kNumLin], bool with_linears, bool with_rest,
               const Variant& v = {}) {
    const int32_t* meta = static_cast<const int32_t*>(meta_.data());
    auto pf = [&](int lin, size_t bytes) {
      return L2Prefetch{l.w[lin].data(), std::min(bytes, static_cast<size_t>(lin_bytes(lin)))};
    };
    if (with_rest && v.norms)
      DS_RETURN_IF_ERROR(launch_add_rmsnorm(resid_.data(), delta_.data(), l.norm1.data(), xn_.data(), 1, m_.hidden,
                                            stream_, pf(kQkv, v.pf_norm)));
    if (with_linears) DS_RETURN_IF_ERROR(linear(kQkv, l, kernels[kQkv]));
    if (with_rest && v.rope)
      DS_RETURN_IF_ERROR(launch_rope_kv(qkv_.data(), q_.data(), l.k_pool.data(), l.v_pool.data(), meta + 3, 1,
                                        static_cast<int>(m_.heads), static_cast<int>(m_.kv_heads),
                                        static_cast<int>(kKvLen - 1), stream_, pf(kO, v.pf_rope)));
    if (with_rest && v.attn) {
      PagedAttentionBatch b;
      b.num_seqs = 1, b.q_start = meta, b.kv_len = meta + 2, b.page_table = meta + 4;
      b.page_table_stride = kPages;
      b.num_tokens = 1, b.max_q_len = 1, b.max_kv_len = static_cast<int>(kKvBound);
      DS_RETURN_IF_ERROR(paged_attention(q_.data(), 0, l.k_pool.data(), l.v_pool.data(), attn_.data(), attn_p_, b,
                                         attn_ws_.data(), attn_ws_.bytes(), stream_));
    }
    if (with_linears) DS_RETURN_IF_ERROR(linear(kO, l, kernels[kO]));
    if (with_rest && v.norms)
      DS_RETURN_IF_ERROR(launch_add_rmsnorm(resid_.data(), delta_.data(), l.norm2.data(), xn_.data(), 1, m_.hidden,
                                            stream_, pf(kGateUp, v.pf_norm)));
    if (with_linears) DS_RETURN_IF_ERROR(linear(kGateUp, l, kernels[kGateUp]));
    if (with_rest && v.silu)
      DS_RETURN_IF_ERROR(launch_silu_mul(gu_.data(), act_.data(), 1, m_.inter, stream_, pf(kDown, v.pf_norm)));
    if (with_linears) DS_RETURN_IF_ERROR(linear(kDown, l, kernels[kDown]));
    return Status::Ok();
  }

  // Captures `body` (PDL on or off) into a graph and returns the median replay ms.
  Result<double> time_graph(bool pdl, int reps, const std::function<Status()>& body) {
    {
      PdlScope scope(pdl);
      DS_RETURN_IF_ERROR(body());  // eager warm-up (lazy loading, attention smem config)
    }
    DS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    DS_ASSIGN_OR_RETURN(GraphExec exec, capture_graph(stream_, [&] {
                          PdlScope scope(pdl);
                          return body();
                        }));
    DS_ASSIGN_OR_RETURN(Event a, Event::create());
    DS_ASSIGN_OR_RETURN(Event b, Event::create());
    std::vector<double> ms;
    for (int i = 0; i < reps + 2; ++i) {
      DS_RETURN_IF_ERROR(launch_timing_spin(20000, stream_));
      DS_RETURN_IF_ERROR(a.record(stream_));
      DS_RETURN_IF_ERROR(exec.launch(stream_));
      DS_RETURN_IF_ERROR(b.record(stream_));
      DS_RETURN_IF_ERROR(b.synchronize());
      DS_ASSIGN_OR_RETURN(const float t, b.elapsed_ms_since(a));
      if (i >= 2) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

  const std::vector<Layer>& all() const { return layers_; }
  GemmRunner& runner() { return *runner_; }

 private:
  Status alloc_fill(DeviceBuffer& b, int64_t n, uint64_t key, float scale) {
    DS_ASSIGN_OR_RETURN(b, DeviceBuffer::allocate(static_cast<size_t>(n) * 2));
    return fill_dummy(b.data(), DType::kBF16, n, key, scale, stream_);
  }
  Model m_{};
  cudaStream_t stream_ = nullptr;
  int64_t n_[kNumLin] = {}, k_[kNumLin] = {};
  std::vector<Layer> layers_;
  DeviceBuffer resid_, delta_, xn_, qkv_, q_, attn_, gu_, act_, meta_, attn_ws_, scratch_buf_;
  PagedAttentionParams attn_p_;
  std::unique_ptr<GemmRunner> runner_;
  detail::GemvScratch scratch_;
};

struct Options {
  int layers = 16, reps = 20;
  std::vector<std::string> linears;  // chain table rows (empty: all four)
  std::vector<std::string> kernels;  // chain table kernels (empty: all of kKernels)
  bool chain_only = false;           // stop after the chain table (for profilers)
};

Status run_model(const Model& m, const Options& o, double copy_gbps, nlohmann::json& out) {
  const int layers = o.layers, reps = o.reps;
  DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
  LayerBench lb;
  DS_RETURN_IF_ERROR(lb.init(m, layers, stream.get()));
  // The timed kAuto choice launches every candidate: skipped in --chain-only runs, whose first
  // launches a profiler attaches to must be the chain's own.
  if (!o.chain_only) DS_RETURN_IF_ERROR(lb.prepare_auto());
  nlohmann::json mj;
  const double ideal_us = lb.layer_weight_bytes() / (copy_gbps * 1e3);
  std::printf("\n== %s: %d layers in the graph, %.1f MB of weights per layer, %.2f us per layer at copy bandwidth\n",
              m.name, layers, lb.layer_weight_bytes() / 1e6, ideal_us);
  if (!o.chain_only) {
    std::printf("auto choices:");
    for (int i = 0; i < kNumLin; ++i)
      std::printf(" %s=%s", kLinName[i], lb.runner().chosen_kernel(lb.args(i, lb.all()[0])).c_str());
    std::printf("\n");
  }

  // chain: L launches of one shape.
  std::printf("%-10s %-9s %12s %12s %10s\n", "chain", "kernel", "us (no PDL)", "us (PDL)", "GB/s PDL");
  std::map<std::pair<int, bool>, std::pair<double, std::string>> best;  // (lin, pdl) -> (us, kernel)
  for (int i = 0; i < kNumLin; ++i) {
    if (!o.linears.empty() && std::find(o.linears.begin(), o.linears.end(), kLinName[i]) == o.linears.end()) continue;
    for (const char* kname : kKernels) {
      if (!o.kernels.empty() && std::find(o.kernels.begin(), o.kernels.end(), kname) == o.kernels.end()) continue;
      const std::string kn = kname;
      double us[2];
      for (int pdl = 0; pdl < 2; ++pdl) {
        auto body = [&]() -> Status {
          for (const Layer& l : lb.all()) DS_RETURN_IF_ERROR(lb.linear(i, l, kn));
          return Status::Ok();
        };
        auto ms = lb.time_graph(pdl == 1, reps, body);
        if (!ms.ok()) {  // report and go on: one failing variant must not hide the others
          std::printf("%-10s %-9s PDL %d: error: %s\n", kLinName[i], kname, pdl, ms.status().message().c_str());
          (void)cudaGetLastError();
          us[pdl] = 1e9;
          continue;
        }
        us[pdl] = *ms * 1e3 / layers;
        auto& b = best[{i, pdl == 1}];
        if (b.second.empty() || us[pdl] < b.first) b = {us[pdl], kn};
      }
      std::printf("%-10s %-9s %12.2f %12.2f %10.1f\n", kLinName[i], kname, us[0], us[1], lb.lin_bytes(i) / (us[1] * 1e3));
      mj["chain"].push_back({{"linear", kLinName[i]}, {"kernel", kn}, {"us", us[0]}, {"us_pdl", us[1]}});
    }
  }

  if (o.chain_only) {
    out[m.name] = mj;
    return Status::Ok();
  }
  // whole layers.
  std::printf("%-22s %12s %12s %8s %12s\n", "layer", "us (no PDL)", "us (PDL)", "%copy", "tok/s proj.");
  auto report = [&](const std::string& label, const std::string (&k0)[kNumLin], const std::string (&k1)[kNumLin],
                    bool lin, bool rest, const Variant& v = {}) -> Status {
    double us[2];
    for (int pdl = 0; pdl < 2; ++pdl) {
      const std::string(&ks)[kNumLin] = pdl ? k1 : k0;
      auto body = [&]() -> Status {
        for (const Layer& l : lb.all()) DS_RETURN_IF_ERROR(lb.layer(l, ks, lin, rest, v));
        return Status::Ok();
      };
      auto ms = lb.time_graph(pdl == 1, reps, body);
      if (!ms.ok()) {
        std::printf("%-22s PDL %d: error: %s\n", label.c_str(), pdl, ms.status().message().c_str());
        (void)cudaGetLastError();
        us[pdl] = 1e9;
        continue;
      }
      us[pdl] = *ms * 1e3 / layers;
    }
    // Projection: real layer count + lm_head at copy bandwidth + 15 us (embedding, final norm, sampling).
    const double lm_us = 2.0 * kVocab * m.hidden / (copy_gbps * 1e3);
    const double tok_s = 1e6 / (m.layers * us[1] + lm_us + 15.0);
    std::printf("%-22s %12.2f %12.2f %7.1f%% %12.1f\n", label.c_str(), us[0], us[1],
                lin ? 100.0 * ideal_us / us[1] : 0.0, lin && rest ? tok_s : 0.0);
    mj["layer"].push_back({{"variant", label}, {"us", us[0]}, {"us_pdl", us[1]}, {"tok_s_projected", tok_s}});
    return Status::Ok();
  };
  for (const char* kname : {"auto", "cublaslt", "warp", "deep", "async", "mma"}) {
    const std::string k[kNumLin] = {kname, kname, kname, kname};
    DS_RETURN_IF_ERROR(report(std::string("all ") + kname, k, k, true, true));
  }
  const char* mixes[][kNumLin] = {{"warp", "warp", "deep", "cublaslt"},
                                  {"cublaslt", "cublaslt", "async", "cublaslt"},
                                  {"cublaslt", "cublaslt", "warp", "cublaslt"},
                                  {"warp", "mma", "warp", "cublaslt"}};
  for (const auto& mix : mixes) {
    const std::string k[kNumLin] = {mix[0], mix[1], mix[2], mix[3]};
    std::string label;
    for (int i = 0; i < kNumLin; ++i) label += k[i].substr(0, 4) + (i + 1 < kNumLin ? "," : "");
    DS_RETURN_IF_ERROR(report(label, k, k, true, true));
  }
  std::string b0[kNumLin], b1[kNumLin];
  std::string label = "best (";
  for (int i = 0; i < kNumLin; ++i) {
    b0[i] = best[{i, false}].second;
    b1[i] = best[{i, true}].second;
    label += b1[i].substr(0, 4) + (i + 1 < kNumLin ? "," : ")");
  }
  DS_RETURN_IF_ERROR(report(label, b0, b1, true, true));
  DS_RETURN_IF_ERROR(report("best, linears only", b0, b1, true, false));
  DS_RETURN_IF_ERROR(report("no linears", b0, b1, false, true));
  // What each latency-bound kernel costs in the chain (left out: numerics are wrong, the timing is
  // the point), and L2 prefetches of the next linear's weights issued by those kernels.
  const std::string a[kNumLin] = {"auto", "auto", "auto", "auto"};
  using V = Variant;
  V v;
  DS_RETURN_IF_ERROR(report("auto", a, a, true, true, v));
  v = V{}, v.norms = false;
  DS_RETURN_IF_ERROR(report("auto, no norms", a, a, true, true, v));
  v = V{}, v.rope = false;
  DS_RETURN_IF_ERROR(report("auto, no rope", a, a, true, true, v));
  v = V{}, v.attn = false;
  DS_RETURN_IF_ERROR(report("auto, no attention", a, a, true, true, v));
  v = V{}, v.silu = false;
  DS_RETURN_IF_ERROR(report("auto, no silu", a, a, true, true, v));
  // Each latency-bound kernel alone, in a chain of one per layer (us per launch).
  v = V{}, v.rope = v.attn = v.silu = false;
  DS_RETURN_IF_ERROR(report("only norms (2/layer)", a, a, false, true, v));
  v = V{}, v.norms = v.attn = v.silu = false;
  DS_RETURN_IF_ERROR(report("only rope", a, a, false, true, v));
  v = V{}, v.norms = v.rope = v.silu = false;
  DS_RETURN_IF_ERROR(report("only attention", a, a, false, true, v));
  for (size_t mb : {2, 8}) {
    v = V{}, v.pf_norm = mb << 20;
    DS_RETURN_IF_ERROR(report("auto, pf norm " + std::to_string(mb) + "M", a, a, true, true, v));
  }
  for (size_t mb : {8}) {
    v = V{}, v.pf_rope = mb << 20;
    DS_RETURN_IF_ERROR(report("auto, pf rope " + std::to_string(mb) + "M", a, a, true, true, v));
  }
  out[m.name] = mj;
  return Status::Ok();
}

Status run(const std::string& which, const Options& opt, const std::string& json_path) {
  if (device_count() == 0) return Status::Error("no CUDA device");
  cudaDeviceProp prop;
  DS_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs; PDL %s\n", prop.name, prop.multiProcessorCount,
              pdl_supported(0) ? "supported" : "off (DSRT_PDL=0 or sm < 90)");
  double copy_gbps = 0;
  {
    DS_ASSIGN_OR_RETURN(Stream s, Stream::create());
    const size_t bytes = size_t{1} << 30;
    DS_ASSIGN_OR_RETURN(DeviceBuffer a, DeviceBuffer::allocate(bytes));
    DS_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::allocate(bytes));
    DS_ASSIGN_OR_RETURN(Event e0, Event::create());
    DS_ASSIGN_OR_RETURN(Event e1, Event::create());
    std::vector<float> ms;
    for (int i = 0; i < 12; ++i) {
      DS_RETURN_IF_ERROR(e0.record(s));
      DS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, s.get()));
      DS_RETURN_IF_ERROR(e1.record(s));
      DS_RETURN_IF_ERROR(e1.synchronize());
      DS_ASSIGN_OR_RETURN(float t, e1.elapsed_ms_since(e0));
      if (i >= 2) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    copy_gbps = 2.0 * bytes / (ms[ms.size() / 2] * 1e6);
    std::printf("copy bandwidth %.1f GB/s (1 GiB D2D, read + write)\n", copy_gbps);
  }
  nlohmann::json out;
  out["device"] = prop.name;
  out["copy_GBps"] = copy_gbps;
  const bool pdl_ok = pdl_supported(0);
  if (!pdl_ok) std::printf("note: the PDL columns run without the attribute\n");
  for (const Model& m : kModels) {
    if (which != "all" && which != m.name) continue;
    DS_RETURN_IF_ERROR(run_model(m, opt, copy_gbps, out).with_context(m.name));
  }
  // Written whole (temporary file, then rename) or not at all.
  if (!json_path.empty()) DS_RETURN_IF_ERROR(write_file_atomic(json_path, out.dump(2) + "\n"));
  return Status::Ok();
}

}  // namespace
}  // namespace ds::cuda::bench

int main(int argc, char** argv) {
  CLI::App app{"ds_decode_layer_bench: batch-1 decode layers (7B/32B shapes) in CUDA graphs, PDL off/on"};
  std::string which = "all", json_path;
  ds::cuda::bench::Options opt;
  app.add_option("--model", which, "7B, 32B or all")->check(CLI::IsMember({"7B", "32B", "all"}));
  app.add_option("--layers", opt.layers, "layers (distinct weights) per graph")->check(CLI::Range(2, 64));
  app.add_option("--reps", opt.reps, "timed replays (median)")->check(CLI::Range(5, 1000));
  app.add_option("--linears", opt.linears, "chain table rows: qkv, o, gate_up, down (default: all)")
      ->check(CLI::IsMember({"qkv", "o", "gate_up", "down"}))
      ->delimiter(',');
  app.add_option("--kernels", opt.kernels, "chain table kernels (default: all)")
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(ds::cuda::bench::kKernels), std::end(ds::cuda::bench::kKernels))))
      ->delimiter(',');
  app.add_flag("--chain-only", opt.chain_only, "stop after the chain table (for Nsight Compute)");
  app.add_option("--json", json_path, "also write JSON here");
  CLI11_PARSE(app, argc, argv);
  ds::Status st = ds::cuda::bench::run(which, opt, json_path);
  if (!st.ok()) {
    std::fprintf(stderr, "ds_decode_layer_bench: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
