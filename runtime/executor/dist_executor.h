// Multi-process tensor parallelism (one process per rank, --nnodes). Rank 0
// drives the engine through a LeaderExecutor: each step's StepBatch is
// broadcast to the other ranks, then rank 0 runs its own shard. Ranks > 0 run
// `run_follower`, which executes every broadcast step in lockstep until rank 0
// says stop (or the group fails: a dead peer ends it within the timeout).
#pragma once

#include <chrono>
#include <functional>
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
  // Called (once) when a step fails because the group broke (a peer died or
  // timed out); a server sets it to end the process, since no later step can run.
  void set_on_group_failure(std::function<void(const Status&)> fn) { on_group_failure_ = std::move(fn); }
  ~LeaderExecutor() override;  // tells the followers to stop (best effort)

  int64_t token_capacity() const override { return local_->token_capacity(); }
  int64_t vocab_size() const override { return local_->vocab_size(); }
  Status step(const StepBatch& batch, float* logits) override;

 private:
  LeaderExecutor() = default;
  Communicator* comm_ = nullptr;
  std::unique_ptr<Executor> local_;
  std::string buf_;
  std::function<void(const Status&)> on_group_failure_;
};

// Ranks > 0: loads nothing itself (weights given, for this rank), builds the KV
// cache and executor from rank 0's announcement, then serves steps. Returns OK
// when rank 0 stops the group, an error when the group fails.
// `idle_wait`: how long a follower waits for rank 0's next step (a server may
// be idle for long; rank 0 dying closes the connections and ends the wait at once).
Status run_follower(const LoadedPlan& plan, const LoadedWeights& weights, Communicator& comm,
                    std::chrono::milliseconds idle_wait = std::chrono::hours(24 * 365));

// StepBatch <-> bytes (exposed for tests).
void encode_step(const StepBatch& batch, std::string& out);
Result<StepBatch> decode_step(std::string_view bytes);

}  // namespace ds
