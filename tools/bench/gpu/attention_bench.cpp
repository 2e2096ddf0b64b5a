// ds_attention_bench: paged attention speed on the current GPU.
//   decode   batch x kv_len grid on the 7B (28/4) and 32B (40/8) head shapes,
//            head_dim 128: microseconds and K/V bytes / time (GB/s); --decode
//            SHAPE:BATCH:KV_LEN (repeatable) times only those points (for profilers)
//   prefill  causal prefill of one sequence (and a chunk over a cached prefix):
//            microseconds and TFLOP/s, flops = 4 * head_dim * heads * sum(ctx)
// Pages of every sequence are shuffled across the pool (as a long-running
// server's would be). Each point: 3 warm-ups, then the mean of --reps launches
// replayed from one captured CUDA graph, between two CUDA events. A pool smaller than ~4x L2 is replicated into
// several "layers" that the launches rotate through, so K/V come from HBM.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "tools/bench/gpu/attention_timing.h"

namespace ds::cuda {
namespace {

// One decode point of --decode SHAPE:BATCH:KV_LEN.
struct DecodePoint {
  std::string shape;
  int batch = 0, kv_len = 0;
};

int run(int reps, const std::vector<DecodePoint>& only) {
  if (device_count() == 0) {
    std::fprintf(stderr, "ds_attention_bench: no CUDA device\n");
    return 1;
  }
  Result<Stream> stream = Stream::create();
  if (!stream.ok()) return std::fprintf(stderr, "%s\n", stream.status().message().c_str()), 1;
  const AttnShape shapes[] = {{"7B", 28, 4, 128}, {"32B", 40, 8, 128}};
  std::printf("%-5s %-8s %6s %7s %10s %9s\n", "shape", "path", "batch", "kv_len", "us", "GB/s");
  // The decode points: the grid, or (--decode) the listed ones alone, e.g. under Nsight Compute.
  std::vector<DecodePoint> points = only;
  if (points.empty())
    for (const AttnShape& s : shapes)
      for (int batch : {1, 8, 32, 64, 128, 256})
        for (int kv_len : {512, 2048, 8192}) points.push_back({s.name, batch, kv_len});
  for (const DecodePoint& d : points) {
    const AttnShape* s = nullptr;
    for (const AttnShape& c : shapes)
      if (d.shape == c.name) s = &c;
    if (s == nullptr) return std::fprintf(stderr, "--decode: unknown shape '%s' (7B or 32B)\n", d.shape.c_str()), 2;
    Result<AttnTiming> r =
        time_paged_attention(*s, std::vector<int>(d.batch, 1), std::vector<int>(d.batch, d.kv_len), reps, stream.value());
    if (!r.ok()) return std::fprintf(stderr, "%s\n", r.status().message().c_str()), 1;
    std::printf("%-5s %-8s %6d %7d %10.1f %9.1f\n", s->name, "decode", d.batch, d.kv_len, r.value().us,
                r.value().gbps());
  }
  if (!only.empty()) return 0;
  std::printf("\n%-5s %-8s %6s %7s %10s %9s\n", "shape", "path", "q_len", "kv_len", "us", "TFLOP/s");
  const int prefill[][2] = {{1024, 1024}, {2048, 2048}, {4096, 4096}, {8192, 8192}, {512, 4096}, {2048, 8192}};
  for (const AttnShape& s : shapes)
    for (const auto& qk : prefill) {
      Result<AttnTiming> r = time_paged_attention(s, {qk[0]}, {qk[1]}, reps, stream.value());
      if (!r.ok()) return std::fprintf(stderr, "%s\n", r.status().message().c_str()), 1;
      std::printf("%-5s %-8s %6d %7d %10.1f %9.1f\n", s.name, "prefill", qk[0], qk[1], r.value().us,
                  r.value().tflops());
    }
  return 0;
}

}  // namespace
}  // namespace ds::cuda

int main(int argc, char** argv) {
  int reps = 20;
  std::vector<ds::cuda::DecodePoint> only;
  for (int i = 1; i < argc; ++i) {
    ds::cuda::DecodePoint d;
    char shape[16] = {0};
    char tail = 0;
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--decode") == 0 && i + 1 < argc &&
               std::sscanf(argv[i + 1], "%15[^:]:%d:%d%c", shape, &d.batch, &d.kv_len, &tail) == 3 &&
               d.batch >= 1 && d.batch <= 4096 && d.kv_len >= 1 && d.kv_len <= (1 << 20)) {
      d.shape = shape;
      only.push_back(d);
      ++i;
    } else {
      std::fprintf(stderr, "usage: %s [--reps N] [--decode SHAPE:BATCH:KV_LEN ...]  (SHAPE: 7B or 32B)\n", argv[0]);
      return 2;
    }
  }
  return ds::cuda::run(reps, only);
}
