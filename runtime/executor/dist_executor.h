// Multi-process tensor parallelism (one process per rank, --nnodes). Rank 0
// drives the engine through a LeaderExecutor: each step's StepBatch is
// broadcast to the other ranks, then rank 0 runs its own shard. Ranks > 0 run
// `run_follower`, which executes every broadcast step in lockstep until rank 0
// says stop (or the group fails: a dead peer ends it within the timeout).
#pragma once

#include <memory>
#include <string>

#include "runtime/cache/kv_cache.h"
#include "runtime/dist/communicator.h"
#include "runtime/executor/executor.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/weight_loader.h"

namespace ds {

class LeaderExecutor : public Executor {
 public:
  // Rank 0 of `comm`. Tells the followers the token capacity and KV page count
  // (they size their arenas and caches to match). All references must outlive it.
  static Result<std::unique_ptr<LeaderExecutor>> create(const LoadedPlan& plan, const LoadedWeights& weights, KvCache& kv,
                                                        int64_t token_capacity, Communicator& comm);
  ~LeaderExecutor() override;  // tells the followers to stop (best effort)

  int64_t token_capacity() const override { return local_->token_capacity(); }
  int64_t vocab_size() const override { return local_->vocab_size(); }
  Status step(const StepBatch& batch, float* logits) override;

 private:
  LeaderExecutor() = default;
  Communicator* comm_ = nullptr;
  std::unique_ptr<Executor> local_;
  std::string buf_;
};

// Ranks > 0: loads nothing itself (weights given, for this rank), builds the KV
// cache and executor from rank 0's announcement, then serves steps. Returns OK
// when rank 0 stops the group, an error when the group fails.
Status run_follower(const LoadedPlan& plan, const LoadedWeights& weights, Communicator& comm);

// StepBatch <-> bytes (exposed for tests).
void encode_step(const StepBatch& batch, std::string& out);
Result<StepBatch> decode_step(std::string_view bytes);

}  // namespace ds
