// The CPU reference executor: allocates the activation arena for a fixed token
// capacity, binds every instruction's operands once, and per step runs the
// builtin kernels (kernels/ref) by op name and interprets fused groups op by op.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/executor/executor.h"
#include "runtime/executor/ops.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/weight_loader.h"

namespace ds {

class CpuExecutor : public Executor {
 public:
  // `plan`, `weights`, `kv` and `comm` must outlive the executor. A plan with
  // tp_size N > 1 needs `comm` with N ranks; `weights` must be loaded for
  // comm->rank() and `kv` sized from the same plan (per-rank heads).
  static Result<std::unique_ptr<CpuExecutor>> create(const LoadedPlan& plan, const LoadedWeights& weights,
                                                     KvCache& kv, int64_t token_capacity,
                                                     Communicator* comm = nullptr);

  int64_t token_capacity() const override { return capacity_; }
  int64_t vocab_size() const override { return vocab_; }
  Status step(const StepBatch& batch, float* logits) override;

  // Executor::step_sample on the host (runtime/engine/row_sampler.h: the
  // RowSampling semantics of the device sampler). samples_on_device() reports
  // set_sample_in_step(), so a scheduler over this executor takes the same
  // path as over the CUDA executor.
  bool samples_on_device() const override { return sample_in_step_; }
  void set_sample_in_step(bool on) { sample_in_step_ = on; }
  Status step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                     std::vector<RowSample>* out) override;
  // Executor's pipelined sampling, with set_sample_in_step (and
  // set_pipelined_sampling, on by default): each queued step runs at once and
  // its samples wait, at most two calls deep; a step token
  // previous_sample_token(r) is the id the last sampling drew for row r (any
  // step, as in the CUDA executor).
  bool pipelines_sampling() const override { return sample_in_step_ && pipelined_; }
  void set_pipelined_sampling(bool on) { pipelined_ = on; }
  Status enqueue_step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows) override;
  Status collect_samples(std::vector<RowSample>* out) override;

  size_t arena_bytes() const { return arena_.size() * sizeof(float); }

 private:
  CpuExecutor() = default;
  struct Instr {
    std::vector<PreparedOp> ops;  // one for a builtin kernel; the group's ops for a fused kernel
  };
  Status prepare(const LoadedPlan& plan, const LoadedWeights& weights);
  Status run_step(const StepBatch& batch, float* logits);
  Status sample(const StepBatch& batch, const std::vector<RowSampling>& rows, std::vector<RowSample>* out);

  KvCache* kv_ = nullptr;
  Communicator* comm_ = nullptr;
  TpInfo tp_;
  int64_t capacity_ = 0;
  int64_t vocab_ = 0;
  bool sample_in_step_ = false;
  bool pipelined_ = true;
  std::deque<std::vector<RowSample>> queued_;  // enqueue_step_sample's, oldest first
  std::vector<int32_t> last_ids_;              // the last sampling's ids (previous_sample_token)
  std::vector<float> sample_logits_, sample_scratch_;  // step_sample
  std::vector<float> arena_;
  std::vector<std::vector<float>> scratch_;  // fused-group intermediates
  std::vector<Instr> program_;
  std::vector<ref::PagedKvLayer> kv_layers_;
};

}  // namespace ds
