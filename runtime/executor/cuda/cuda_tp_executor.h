// Tensor parallelism on the GPUs of one process: one Executor over the ranks of
// a plan with tp_size N that this process runs, local rank r on GPU devices[r]
// (default base_gpu_id + r). Alone (one process), those are all N ranks, with
// collectives over an in-process NCCL group (runtime/dist/cuda). In a group of
// K processes (--nnodes K, `process_group`), each runs L = N / K of them:
// global ranks process_rank * L + r, with NCCL communicators spanning the
// processes, the steps arriving from rank 0's process (dist_executor.h).
//
//   create  one thread per rank loads that rank's weight slices onto its GPU
//           (DeviceWeights, tp_rank r) and creates its CudaExecutor, all ranks
//           concurrently: create() runs eager warm-up collectives and captures
//           the same decode graphs on every rank.
//   step    the same StepBatch goes to every rank; rank 0 runs in the caller's
//           thread, ranks 1..N-1 in their own (they spin briefly, then sleep,
//           waiting for the next step). Every rank ends the step with its
//           communicator's bounded wait, so a rank that fails or stalls turns
//           into an error on every rank within dist_timeout, never a hang.
//   logits  rank 0's (after the plan's all_gather every rank holds all of them).
//   samples only rank 0 samples (the other ranks run the step without its
//           sampling): one sampler, one answer, nothing to keep in agreement.
//           With pipelined sampling (CudaExecutorOptions::pipelined_with_comm)
//           every rank samples the all-gathered logits with the same rows, so
//           each holds the ids a queued step's previous_sample_token reads;
//           the draws are reproducible, and rank 0 checks after every sampling
//           that all ranks drew the same ids (a difference is an error and
//           leaves the executor broken: the ranks' KV caches disagree).
//
// One KvCache serves every rank: it only keeps the page bookkeeping (the device
// pools, with per-rank KV heads, live in each rank's executor), and every rank
// indexes its own pools with rank 0's page tables.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/dist/communicator.h"
#include "runtime/dist/cuda/custom_all_reduce.h"
#include "runtime/executor/cuda/cuda_executor.h"
#include "runtime/executor/executor.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/cuda/device_weights.h"
#include "runtime/weights/weight_loader.h"

namespace ds::cuda {

struct CudaTpOptions {
  // Per-rank executor options (device, comm are set per rank; dist_timeout
  // also bounds communicator creation).
  CudaExecutorOptions exec;
  // GPU of each rank; empty: base_gpu_id, base_gpu_id + 1, ... (one per rank).
  std::vector<int> devices;
  int base_gpu_id = 0;
  // Checkpoint / dummy options of the weights; tp_rank is set per rank.
  WeightLoadOptions weights;
  LoadProgressFn progress;  // rank 0's weight upload only
  bool check_p2p = false;   // --enable-p2p-check: every pair of this process's GPUs must reach each other
  // Small all_reduces (decode): CustomAllReduce's one-shot NVLink kernel when
  // every pair of GPUs has peer access, else NCCL alone. kMeasured keeps the
  // kernel only if it is not slower than NCCL on these GPUs (all_reduce_choice.h;
  // decided once per process and GPU set); kCustom keeps it unmeasured; kNccl
  // never builds it. Env DSRT_CUSTOM_ALLREDUCE=0 / =1 overrides with kNccl /
  // kCustom. In-process groups only: its buffers are shared between the GPUs of
  // one process.
  enum class AllReduceBackend { kMeasured, kCustom, kNccl };
  AllReduceBackend all_reduce = AllReduceBackend::kMeasured;
  // Multi-process: this process's member of the process group (null: one process).
  Communicator* process_group = nullptr;
};

class CudaTpExecutor : public Executor {
 public:
  // `plan` and `kv` must outlive the executor; `kv` has host_storage = false.
  static Result<std::unique_ptr<CudaTpExecutor>> create(const LoadedPlan& plan, KvCache& kv,
                                                        const CudaTpOptions& options);
  ~CudaTpExecutor() override;
  CudaTpExecutor(const CudaTpExecutor&) = delete;
  CudaTpExecutor& operator=(const CudaTpExecutor&) = delete;

  int64_t token_capacity() const override;
  int64_t vocab_size() const override;
  Status step(const StepBatch& batch, float* logits) override;
  bool samples_on_device() const override { return true; }
  Status step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                     std::vector<RowSample>* out) override;
  // Pipelined sampling: when every rank's executor offers it (pipelined_with_comm).
  bool pipelines_sampling() const override;
  Status enqueue_step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows) override;
  Status collect_samples(std::vector<RowSample>* out) override;

  bool broken() const override;
  int local_ranks() const { return static_cast<int>(ranks_.size()); }
  int first_rank() const { return first_rank_; }  // global rank of local rank 0
  bool uses_custom_all_reduce() const { return custom_ar_ != nullptr; }
  const std::vector<int>& devices() const { return devices_; }
  // Rank r's executor and weights (startup figures: every rank holds the same amounts).
  const CudaExecutor& rank_executor(int r) const { return *ranks_.at(static_cast<size_t>(r))->executor; }
  size_t weight_bytes_per_gpu() const { return ranks_.at(0)->weights->total_bytes(); }
  double weights_load_seconds() const { return weights_load_s_; }

 private:
  // Destroyed in reverse: the executor (its graphs hold collectives) before the
  // weights it reads and before the communicator.
  struct Rank {
    std::unique_ptr<DeviceCommunicator> comm;
    std::unique_ptr<DeviceWeights> weights;
    std::unique_ptr<CudaExecutor> executor;
    Status status;
    std::vector<RowSample> samples;  // ranks > 0: what this rank drew (agreement check)
    std::thread thread;
  };
  // kStep: step without sampling; kSample: step_sample (rank 0 alone unless
  // every rank samples); kEnqueue / kCollect: the pipelined pair, every rank.
  enum class Job { kStep, kSample, kEnqueue, kCollect };
  CudaTpExecutor() = default;
  void worker(size_t r);
  // Rank r's part of `job` (rank 0 in the caller's thread, the others in theirs).
  Status run_rank(size_t r, Job job, const StepBatch* batch, float* logits, const std::vector<RowSampling>* rows,
                  std::vector<RowSample>* out);
  Status run(Job job, const StepBatch* batch, float* logits, const std::vector<RowSampling>* rows,
             std::vector<RowSample>* out);
  // After a sampling on every rank: the other ranks drew rank 0's ids.
  Status check_agreement(const std::vector<RowSample>& rank0);
  void teardown();

  std::unique_ptr<CustomAllReduce> custom_ar_;  // outlives the executors (declared first: destroyed last)
  std::vector<std::unique_ptr<Rank>> ranks_;
  std::vector<int> devices_;
  int first_rank_ = 0;
  double weights_load_s_ = 0;

  // Step hand-off to ranks 1..N-1: `generation_` bumps once per step; workers
  // spin on it briefly (back-to-back decode steps), then sleep on cv_start_.
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  const StepBatch* batch_ = nullptr;
  const std::vector<RowSampling>* rows_ = nullptr;
  Job job_ = Job::kStep;
  bool all_ranks_sample_ = false;     // pipelined sampling: every rank samples
  std::atomic<bool> diverged_{false};  // the ranks drew different ids once: broken
  std::atomic<uint64_t> generation_{0};
  std::atomic<size_t> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace ds::cuda
