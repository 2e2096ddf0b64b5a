// The executor interface: runs the plan's program for one step. The CPU
// reference executor implements it today; the CUDA executor plugs in later.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/common/status.h"
#include "runtime/executor/batch.h"

namespace ds {

class Executor {
 public:
  virtual ~Executor() = default;
  // Most tokens one step may carry (fixed at load: the arena is sized for it).
  virtual int64_t token_capacity() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Runs one step; writes float32 logits [batch.logit_rows.size(), vocab_size()].
  // The KV cache must already hold pages for every sequence's new tokens.
  virtual Status step(const StepBatch& batch, float* logits) = 0;

  // Device-side sampling (the CUDA executor): runs the step and samples one
  // token for each logit row, rows[i] describing batch.logit_rows[i]; only the
  // sampled ids (and requested logprobs) come back to the host.
  virtual bool samples_on_device() const { return false; }
  virtual Status step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                             std::vector<RowSample>* out) {
    (void)batch, (void)rows, (void)out;
    return Status::Error("this executor does not sample on the device");
  }

  // Pipelined device sampling (decode without a host round trip between
  // steps): enqueue_step_sample() queues the step and the sampling of its
  // logit rows and returns without waiting for them; collect_samples() waits
  // for the oldest queued step and returns its samples, in order. At most
  // two steps may wait to be collected. A token of a queued step may be
  // previous_sample_token(r) (batch.h): the id sampled for row r of the step
  // queued just before it, which the host does not need to know. Errors of a
  // queued step may surface in a later call.
  virtual bool pipelines_sampling() const { return false; }
  virtual Status enqueue_step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows) {
    (void)batch, (void)rows;
    return Status::Error("this executor does not pipeline device sampling");
  }
  virtual Status collect_samples(std::vector<RowSample>* out) {
    (void)out;
    return Status::Error("this executor does not pipeline device sampling");
  }
  // True once the executor's collectives failed (tensor parallelism: a peer
  // died or timed out and the communicator was aborted): no later step can run.
  virtual bool broken() const { return false; }
};

}  // namespace ds
