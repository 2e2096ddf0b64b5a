#include "runtime/executor/tp_executor.h"

#include "runtime/executor/cpu_executor.h"

namespace ds {

Result<std::unique_ptr<TpExecutor>> TpExecutor::create(const LoadedPlan& plan, const LoadedWeights& weights0, KvCache& kv0,
                                                       int64_t token_capacity, const CommOptions& comm_options) {
  const int n = plan->tp_size();
  if (n < 1) return Status::Error(StrCat() << "plan " << plan.origin() << " has tp_size " << n);
  DS_ASSIGN_OR_RETURN(auto comms, create_local_group(n, comm_options));
  return create(plan, weights0, kv0, token_capacity, std::move(comms));
}

Result<std::unique_ptr<TpExecutor>> TpExecutor::create(const LoadedPlan& plan, const LoadedWeights& weights0, KvCache& kv0,
                                                       int64_t token_capacity,
                                                       std::vector<std::unique_ptr<Communicator>> comms) {
  const int n = plan->tp_size();
  if (comms.empty()) return Status::Error("tensor-parallel executor: no ranks");
  const int first = comms[0]->rank();
  for (size_t i = 0; i < comms.size(); ++i)
    if (comms[i]->size() != n || comms[i]->rank() != first + static_cast<int>(i))
      return Status::Error(StrCat() << "plan " << plan.origin() << " is sharded for " << n << " ranks; local rank " << i
                                    << " is rank " << comms[i]->rank() << " of " << comms[i]->size()
                                    << ", expected rank " << first + static_cast<int>(i) << " of " << n);
  if (weights0.load_options().tp_rank != first)
    return Status::Error(StrCat() << "tensor-parallel rank " << first << " was given the weights of rank "
                                  << weights0.load_options().tp_rank);
  const std::string target = plan->target() ? plan->target()->str() : "";
  if (target != "cpu")
    return Status::Error(StrCat() << "plan " << plan.origin() << " targets '" << target
                                  << "'; tensor parallelism runs on the CPU executor only");
  std::unique_ptr<TpExecutor> e(new TpExecutor());
  for (size_t r = 0; r < comms.size(); ++r) {
    auto rank = std::make_unique<Rank>();
    rank->comm = std::move(comms[r]);
    const int global = rank->comm->rank();
    const LoadedWeights* w = &weights0;
    KvCache* kv = &kv0;
    if (r > 0) {
      WeightLoadOptions wo = weights0.load_options();
      wo.tp_rank = global;
      auto lw = LoadedWeights::load(plan, wo);
      if (!lw.ok()) return lw.status().with_context(StrCat() << "tensor-parallel rank " << global);
      rank->weights = std::move(lw).value();
      DS_ASSIGN_OR_RETURN(rank->kv, KvCache::create(kv0.config()));
      w = rank->weights.get();
      kv = rank->kv.get();
    }
    auto ex = CpuExecutor::create(plan, *w, *kv, token_capacity, rank->comm.get());
    if (!ex.ok()) return ex.status().with_context(StrCat() << "tensor-parallel rank " << global);
    rank->executor = std::move(ex).value();
    e->ranks_.push_back(std::move(rank));
  }
  for (size_t r = 1; r < e->ranks_.size(); ++r) e->ranks_[r]->thread = std::thread(&TpExecutor::worker, e.get(), r);
  return e;
}

TpExecutor::~TpExecutor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& r : ranks_)
    if (r->thread.joinable()) r->thread.join();
}

bool TpExecutor::broken() const {
  for (const auto& r : ranks_)
    if (r->comm->broken()) return true;
  return false;
}

int64_t TpExecutor::token_capacity() const { return ranks_[0]->executor->token_capacity(); }
int64_t TpExecutor::vocab_size() const { return ranks_[0]->executor->vocab_size(); }

void TpExecutor::worker(size_t r) {
  Rank& rank = *ranks_[r];
  uint64_t seen = 0;
  for (;;) {
    const StepBatch* batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      batch = batch_;
    }
    rank.logits.resize(static_cast<size_t>(batch->num_logit_rows() * vocab_size()));
    Status s = rank.executor->step(*batch, rank.logits.data());
    {
      std::lock_guard<std::mutex> lock(mu_);
      rank.status = std::move(s);
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }
}

Status TpExecutor::step(const StepBatch& batch, float* logits) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch_ = &batch;
    pending_ = ranks_.size() - 1;
    ++generation_;
  }
  cv_start_.notify_all();
  Status s0 = ranks_[0]->executor->step(batch, logits);
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, [&] { return pending_ == 0; });
    batch_ = nullptr;
  }
  if (!s0.ok()) return s0.with_context("tensor-parallel rank 0");
  for (size_t r = 1; r < ranks_.size(); ++r)
    if (!ranks_[r]->status.ok()) return ranks_[r]->status.with_context(StrCat() << "tensor-parallel rank " << r);
  return Status::Ok();
}

}  // namespace ds
