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
#include <functional>
#include <memory>
#include <vector>

#include "runtime/common/status.h"
#include "runtime/executor/batch.h"

namespace ds::cuda {

class DeviceSampler {
 public:
  // max_rows: most rows per call; vocab: row length. zero_copy: the kernels
  // read the row parameters from mapped pinned staging (when no histories are
  // uploaded) and write the host's results into mapped pinned memory, instead
  // of a copy each way on the stream. cluster: calls of few rows without
  // logprobs, penalties or a small top-k run several CTAs per row on an sm_90+
  // device (split_sampling_kernel.cu; the same ids; DSRT_SAMPLING_SPLIT=0 also
  // turns it off).
  static Result<std::unique_ptr<DeviceSampler>> create(int64_t vocab, int64_t max_rows, bool zero_copy = true,
                                                       bool cluster = true);
  ~DeviceSampler();
  DeviceSampler(const DeviceSampler&) = delete;
  DeviceSampler& operator=(const DeviceSampler&) = delete;

  // logits: device f32 [rows.size(), vocab], row stride vocab; may be modified in
  // place (penalties, temperature). Synchronizes `stream` before returning.
  // Same as enqueue() then collect().
  Status sample(float* logits, const std::vector<RowSampling>& rows, std::vector<RowSample>* out,
                cudaStream_t stream);

  // Pipelined use: enqueue() queues the upload, the kernels and the copy back
  // of one call on `stream` and returns without waiting for them (each queued
  // call has its own pinned staging; it waits only when the penalty history
  // buffers must grow while calls are queued); collect() waits for the oldest
  // queued call and returns its samples. At most kMaxQueued calls may wait to
  // be collected.
  // The rows' host histories are read during enqueue() only.
  static constexpr int kMaxQueued = 2;
  Status enqueue(float* logits, const std::vector<RowSampling>& rows, cudaStream_t stream);
  Status collect(std::vector<RowSample>* out);
  int queued() const;
  // The event collect() waits on next (recorded after the oldest queued call's
  // kernels and copies); null when nothing is queued. A caller that must bound
  // the wait (tensor parallelism: the step before it ran collectives) waits on
  // it first, then collect() returns at once.
  cudaEvent_t oldest_done_event() const;
  // How enqueue() waits for the stream's queued work when it must (the penalty
  // history grows while calls are queued, or a launch failed): by default
  // cudaStreamSynchronize; a tensor-parallel rank sets its communicator's
  // bounded wait, so a dead peer is an error there too, not a hang.
  using StreamWait = std::function<Status(cudaStream_t)>;
  void set_stream_wait(StreamWait wait);

  // The ids of the most recently enqueued call, on the device: row r's id is
  // ids[r * stride] (int32 words), written by that call's kernels in stream
  // order (a later kernel on the same stream may read them, e.g. to feed the
  // next decode step without a round trip through the host).
  const int32_t* device_ids() const;
  static int device_ids_stride();

  // Device memory the sampler holds (for the memory plan).
  size_t device_bytes() const;

 private:
  DeviceSampler();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds::cuda
