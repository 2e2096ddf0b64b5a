// A hand-written kernel with the generated-kernel ABI, for the loader tests.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <string>
#include <vector>

#include "runtime/plan/plan_generated.h"

namespace ds::cuda::testing {

// y[t, c] = 2 * x[t, c] + 1 for t < num_tokens, c < kCols; rows_per_block rows
// per block, one thread per column.
constexpr int kCols = 96;
inline const char* kScaleSource = R"(
struct DsStepArgs { long long num_tokens; const int* slot_mapping; };
extern "C" __global__ void ds_test_scale(const DsStepArgs* args, const float* x, float* y) {
  const int rows_per_block = 3;
  const int cols = 96;
  for (int r = 0; r < rows_per_block; ++r) {
    long long t = (long long)blockIdx.x * rows_per_block + r;
    if (t >= args->num_tokens) return;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[t * cols + c] = 2.0f * x[t * cols + c] + 1.0f;
  }
}
)";
constexpr int kRowsPerBlock = 3;

// A plan GeneratedKernel table for kScaleSource (no cubin unless given).
inline std::string build_generated_kernel(const std::string& arch, const std::string& cubin,
                                          int block_dim = 64) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint8_t> bin(cubin.begin(), cubin.end());
  std::vector<flatbuffers::Offset<flatbuffers::String>> opts = {fbb.CreateString("--std=c++17")};
  auto gen = plan::CreateGeneratedKernelDirect(fbb, kScaleSource, "ds_test_scale", arch.c_str(),
                                               cubin.empty() ? nullptr : &bin, &opts, block_dim,
                                               kRowsPerBlock);
  fbb.Finish(gen);
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

inline const plan::GeneratedKernel& as_generated(const std::string& bytes) {
  return *flatbuffers::GetRoot<plan::GeneratedKernel>(bytes.data());
}

}  // namespace ds::cuda::testing
