// Sampling on the GPU for the CUDA executor: takes float32 logits [rows, vocab]
// in device memory and the host-side RowSampling of each row, uploads the
// per-row parameters and penalty histories in one copy, runs the sampling
// kernels on `stream`, and copies back only the chosen ids and logprobs.
//
// Semantics are the CPU sampler's (token_sampler.cpp, sampler.cpp): same
// penalties (bit-exact), same order and tie rules for top-k / top-p / min-p,
// raw logprobs. The draw is an inverse CDF with one Philox4x32-10 uniform keyed
// by (seed, counter), so it is reproducible but not the CPU's mt19937 stream.
// Device memory: a [min(max_rows, 256), vocab] int32 penalty scratch plus
// small per-row buffers; penalty histories grow on demand (64M tokens a call).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/common/status.h"
#include "runtime/executor/batch.h"

namespace ds::cuda {

class DeviceSampler {
 public:
  // max_rows: most rows per call; vocab: row length.
  static Result<std::unique_ptr<DeviceSampler>> create(int64_t vocab, int64_t max_rows);
  ~DeviceSampler();
  DeviceSampler(const DeviceSampler&) = delete;
  DeviceSampler& operator=(const DeviceSampler&) = delete;

  // logits: device f32 [rows.size(), vocab], row stride vocab; may be modified in
  // place (penalties, temperature). Synchronizes `stream` before returning.
  Status sample(float* logits, const std::vector<RowSampling>& rows, std::vector<RowSample>* out,
                cudaStream_t stream);

  // Device memory the sampler holds (for the memory plan).
  size_t device_bytes() const;

 private:
  DeviceSampler();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds::cuda
