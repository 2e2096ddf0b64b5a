// Tensor-parallel step fan-out: one Executor over the N ranks of a plan with
// tp_size N, running in this process (one thread per rank, collectives over a
// local Gloo group), or over this process's share of them when several
// processes run the plan (--tp N --nnodes K: N / K ranks each, on rank groups
// from connect_local_ranks). Rank 0 runs in the caller's thread on the caller's weights
// and KV cache; ranks 1..N-1 own their weight slices, KV caches (same page
// count: the caller's page tables index every rank's cache) and executors.
// step() hands the same StepBatch to every rank, runs them in lockstep and
// returns rank 0's logits (after the plan's all_gather every rank holds them).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/dist/communicator.h"
#include "runtime/executor/executor.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/weight_loader.h"

namespace ds {

class TpExecutor : public Executor {
 public:
  // `weights0` are rank 0's (tp_rank 0); the other ranks load theirs with the
  // same options. `plan`, `weights0` and `kv0` must outlive the executor.
  static Result<std::unique_ptr<TpExecutor>> create(const LoadedPlan& plan, const LoadedWeights& weights0, KvCache& kv0,
                                                    int64_t token_capacity, const CommOptions& comm_options);
  // This process's ranks of a larger group (several processes, connect_local_ranks):
  // comms[i] is rank comms[0]->rank() + i of the plan's tp_size; weights0 are
  // comms[0]'s rank's. Several ranks per process across --nnodes processes.
  static Result<std::unique_ptr<TpExecutor>> create(const LoadedPlan& plan, const LoadedWeights& weights0, KvCache& kv0,
                                                    int64_t token_capacity,
                                                    std::vector<std::unique_ptr<Communicator>> comms);
  ~TpExecutor() override;
  TpExecutor(const TpExecutor&) = delete;
  TpExecutor& operator=(const TpExecutor&) = delete;

  int64_t token_capacity() const override;
  int64_t vocab_size() const override;
  Status step(const StepBatch& batch, float* logits) override;
  int local_ranks() const { return static_cast<int>(ranks_.size()); }
  // A rank's group failed (peer gone, timeout): no later step can run.
  bool broken() const override;

 private:
  struct Rank {
    std::unique_ptr<Communicator> comm;
    std::unique_ptr<LoadedWeights> weights;  // null for rank 0 (the caller's)
    std::unique_ptr<KvCache> kv;             // null for rank 0
    std::unique_ptr<Executor> executor;
    std::vector<float> logits;               // ranks > 0: their copy, discarded
    Status status;
    std::thread thread;
  };
  TpExecutor() = default;
  void worker(size_t r);

  std::vector<std::unique_ptr<Rank>> ranks_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  const StepBatch* batch_ = nullptr;
  uint64_t generation_ = 0;  // bumped per step
  size_t pending_ = 0;       // ranks > 0 still running the current step
  bool stop_ = false;
};

}  // namespace ds
