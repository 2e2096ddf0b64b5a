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

// What rank 0 tells the followers before any step, so that every rank builds
// the same executor (GPU ranks also capture the same CUDA graphs, whose warm-up
// collectives must match across ranks).
struct FollowerSetup {
  int64_t token_capacity = 0;
  int64_t num_pages = 0;          // KV pages: rank 0's page tables index every rank's pools
  int64_t max_seqs = 0;           // CUDA: sequences per step
  int64_t max_model_len = 0;      // CUDA: page-table width and KV buckets
  int64_t max_logit_rows = 0;     // CUDA: logit rows per step (bounds the graph sizes too)
  int64_t cuda_graph_max_bs = 0;  // CUDA: graphs captured (0 with graphs off)
  bool enable_cuda_graph = false;
};

// Builds a rank's local executor on `kv` (sized from the setup); called by the
// leader after the setup broadcast and by each follower after receiving it, so
// that a factory may itself run collectives over the host group (NCCL id exchange).
using RankExecutorFactory = std::function<Result<std::unique_ptr<Executor>>(const FollowerSetup&, KvCache&)>;

class LeaderExecutor : public Executor {
 public:
  // Rank 0 of `comm`. Tells the followers the token capacity and KV page count
  // (they size their arenas and caches to match). All references must outlive it.
  static Result<std::unique_ptr<LeaderExecutor>> create(const LoadedPlan& plan, const LoadedWeights& weights, KvCache& kv,
                                                        int64_t token_capacity, Communicator& comm);
  // Same with the local executor built by `make_local` (GPU ranks); setup.num_pages
  // is kv's page count.
  static Result<std::unique_ptr<LeaderExecutor>> create(KvCache& kv, const FollowerSetup& setup, Communicator& comm,
                                                        const RankExecutorFactory& make_local);
  // Called (once) when a step fails because the group broke (a peer died or
  // timed out); a server sets it to end the process, since no later step can run.
  void set_on_group_failure(std::function<void(const Status&)> fn) { on_group_failure_ = std::move(fn); }
  ~LeaderExecutor() override;  // tells the followers to stop (best effort)

  int64_t token_capacity() const override { return local_->token_capacity(); }
  int64_t vocab_size() const override { return local_->vocab_size(); }
  Status step(const StepBatch& batch, float* logits) override;
  // The local executor samples on its device (CUDA): followers only run the step.
  bool samples_on_device() const override { return local_->samples_on_device(); }
  Status step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                     std::vector<RowSample>* out) override;
  bool broken() const override { return comm_->broken() || local_->broken(); }

 private:
  LeaderExecutor() = default;
  Status broadcast_step(const StepBatch& batch);
  Status finish(Status s);
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
// Same with the local executor built by `make_local` from rank 0's setup (GPU
// ranks: steps run without logits; a broken executor ends the follower).
Status run_follower(const LoadedPlan& plan, Communicator& comm, const RankExecutorFactory& make_local,
                    std::chrono::milliseconds idle_wait = std::chrono::hours(24 * 365));

// StepBatch <-> bytes (exposed for tests).
void encode_step(const StepBatch& batch, std::string& out);
Result<StepBatch> decode_step(std::string_view bytes);

}  // namespace ds
