#include "runtime/executor/dist_executor.h"

#include <cstdio>
#include <cstring>

#include "runtime/executor/cpu_executor.h"
#include "runtime/executor/tp_executor.h"

namespace ds {
namespace {

// Message kinds of the leader's broadcasts.
enum : char { kStop = 'Q', kSetup = 'I', kStep = 'S' };

void put_i64(std::string& out, int64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
void put_ints(std::string& out, const std::vector<int32_t>& v) {
  put_i64(out, static_cast<int64_t>(v.size()));
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

struct Reader {
  std::string_view b;
  size_t pos = 0;
  bool ok = true;
  int64_t i64() {
    int64_t v = 0;
    if (pos + 8 > b.size()) {
      ok = false;
      return 0;
    }
    std::memcpy(&v, b.data() + pos, 8);
    pos += 8;
    return v;
  }
  void ints(std::vector<int32_t>& v) {
    const int64_t n = i64();
    if (!ok || n < 0 || static_cast<uint64_t>(n) * 4 > b.size() - pos) {
      ok = false;
      return;
    }
    v.resize(static_cast<size_t>(n));
    std::memcpy(v.data(), b.data() + pos, static_cast<size_t>(n) * 4);
    pos += static_cast<size_t>(n) * 4;
  }
};

}  // namespace

void encode_step(const StepBatch& b, std::string& out) {
  out.clear();
  out.push_back(kStep);
  put_ints(out, b.tokens);
  put_ints(out, b.positions);
  put_ints(out, b.logit_rows);
  put_i64(out, static_cast<int64_t>(b.sequences.size()));
  for (const StepSequence& s : b.sequences) {
    put_i64(out, s.first_token);
    put_i64(out, s.num_tokens);
    put_i64(out, s.num_cached);
    put_ints(out, s.page_table);
  }
}

Result<StepBatch> decode_step(std::string_view bytes) {
  if (bytes.empty() || bytes[0] != kStep) return Status::Error("step message: wrong kind");
  Reader r{bytes, 1};
  StepBatch b;
  r.ints(b.tokens);
  r.ints(b.positions);
  r.ints(b.logit_rows);
  const int64_t n = r.i64();
  if (!r.ok || n < 0 || n > static_cast<int64_t>(bytes.size())) return Status::Error("step message: truncated");
  for (int64_t i = 0; i < n && r.ok; ++i) {
    StepSequence s;
    s.first_token = r.i64();
    s.num_tokens = r.i64();
    s.num_cached = r.i64();
    r.ints(s.page_table);
    b.sequences.push_back(std::move(s));
  }
  if (!r.ok || r.pos != bytes.size()) return Status::Error("step message: truncated or trailing bytes");
  return b;
}

namespace {

// Setup message: kind, token capacity, page count (all followers read these),
// then the CUDA fields (max_seqs, max_model_len, max_logit_rows, graph max bs, graphs on).
std::string encode_setup(const FollowerSetup& s) {
  std::string out(1, kSetup);
  put_i64(out, s.token_capacity);
  put_i64(out, s.num_pages);
  put_i64(out, s.max_seqs);
  put_i64(out, s.max_model_len);
  put_i64(out, s.max_logit_rows);
  put_i64(out, s.cuda_graph_max_bs);
  put_i64(out, s.enable_cuda_graph ? 1 : 0);
  return out;
}

Result<FollowerSetup> decode_setup(const std::string& msg, const std::string& who) {
  if (msg.size() != 1 + 7 * 8 || msg[0] != kSetup) return Status::Error(who + ": expected the setup message from rank 0");
  Reader r{msg, 1};
  FollowerSetup s;
  s.token_capacity = r.i64();
  s.num_pages = r.i64();
  s.max_seqs = r.i64();
  s.max_model_len = r.i64();
  s.max_logit_rows = r.i64();
  s.cuda_graph_max_bs = r.i64();
  s.enable_cuda_graph = r.i64() != 0;
  if (!r.ok || s.token_capacity <= 0 || s.num_pages <= 0)
    return Status::Error(who + ": malformed setup message from rank 0");
  return s;
}

}  // namespace

namespace {

// A CPU process's executor: its one rank on the process group, or, when the
// plan has more ranks than there are processes (--tp N over --nnodes K < N),
// its N / K ranks (one thread each) with their own rank groups.
Result<std::unique_ptr<Executor>> make_cpu_rank_executor(const LoadedPlan& plan, const LoadedWeights& weights,
                                                         KvCache& kv, int64_t token_capacity, Communicator& comm) {
  const int n = plan->tp_size();
  if (n == comm.size()) {
    DS_ASSIGN_OR_RETURN(auto local, CpuExecutor::create(plan, weights, kv, token_capacity, &comm));
    return std::unique_ptr<Executor>(std::move(local));
  }
  if (n < comm.size() || n % comm.size() != 0)
    return Status::Error(StrCat() << "plan " << plan.origin() << " is sharded for " << n << " ranks, which do not split "
                                  << "evenly over " << comm.size() << " processes");
  DS_ASSIGN_OR_RETURN(auto comms, connect_local_ranks(comm, n / comm.size()));
  DS_ASSIGN_OR_RETURN(auto local, TpExecutor::create(plan, weights, kv, token_capacity, std::move(comms)));
  return std::unique_ptr<Executor>(std::move(local));
}

}  // namespace

Result<std::unique_ptr<LeaderExecutor>> LeaderExecutor::create(const LoadedPlan& plan, const LoadedWeights& weights,
                                                               KvCache& kv, int64_t token_capacity, Communicator& comm) {
  FollowerSetup setup;
  setup.token_capacity = token_capacity;
  setup.num_pages = kv.config().num_pages;
  return create(kv, setup, comm, [&](const FollowerSetup& s, KvCache& k) {
    return make_cpu_rank_executor(plan, weights, k, s.token_capacity, comm);
  });
}

Result<std::unique_ptr<LeaderExecutor>> LeaderExecutor::create(KvCache& kv, const FollowerSetup& setup,
                                                               Communicator& comm,
                                                               const RankExecutorFactory& make_local) {
  if (comm.rank() != 0) return Status::Error("the leader executor runs on rank 0");
  if (setup.num_pages != kv.config().num_pages)
    return Status::Error("leader setup: page count differs from the KV cache's");
  std::string msg = encode_setup(setup);
  DS_RETURN_IF_ERROR(comm.broadcast(msg, 0));
  std::unique_ptr<LeaderExecutor> e(new LeaderExecutor());
  e->comm_ = &comm;
  DS_ASSIGN_OR_RETURN(e->local_, make_local(setup, kv));
  return e;
}

LeaderExecutor::~LeaderExecutor() {
  std::string stop(1, kStop);
  if (comm_ && !comm_->broken()) (void)comm_->broadcast(stop, 0);
  local_.reset();  // before the group it may use
}

Status LeaderExecutor::broadcast_step(const StepBatch& batch) {
  encode_step(batch, buf_);
  return comm_->broadcast(buf_, 0);
}

Status LeaderExecutor::finish(Status s) {
  if (!s.ok() && broken() && on_group_failure_) {
    auto fn = std::move(on_group_failure_);
    on_group_failure_ = nullptr;
    fn(s);
  }
  return s;
}

Status LeaderExecutor::step(const StepBatch& batch, float* logits) {
  Status s = broadcast_step(batch);
  if (s.ok()) s = local_->step(batch, logits);
  return finish(std::move(s));
}

Status LeaderExecutor::step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                                   std::vector<RowSample>* out) {
  Status s = broadcast_step(batch);
  if (s.ok()) s = local_->step_sample(batch, rows, out);
  return finish(std::move(s));
}

Status run_follower(const LoadedPlan& plan, const LoadedWeights& weights, Communicator& comm,
                    std::chrono::milliseconds idle_wait) {
  return run_follower(
      plan, comm,
      [&](const FollowerSetup& s, KvCache& kv) {
        return make_cpu_rank_executor(plan, weights, kv, s.token_capacity, comm);
      },
      idle_wait);
}

Status run_follower(const LoadedPlan& plan, Communicator& comm, const RankExecutorFactory& make_local,
                    std::chrono::milliseconds idle_wait) {
  const std::string who = StrCat() << "rank " << comm.rank() << "/" << comm.size();
  std::string msg;
  DS_RETURN_IF_ERROR(comm.broadcast(msg, 0, idle_wait));  // rank 0 may still be loading
  DS_ASSIGN_OR_RETURN(FollowerSetup setup, decode_setup(msg, who));
  DS_ASSIGN_OR_RETURN(KvCacheConfig cfg, KvCacheConfig::from_plan(*plan->kv_cache(), setup.num_pages));
  const bool cuda = plan->target() && plan->target()->str().rfind("sm_", 0) == 0;
  cfg.host_storage = !cuda;  // GPU ranks keep the pools on the device
  DS_ASSIGN_OR_RETURN(auto kv, KvCache::create(cfg));
  DS_ASSIGN_OR_RETURN(std::unique_ptr<Executor> ex, make_local(setup, *kv));
  std::vector<float> logits;
  for (;;) {
    DS_RETURN_IF_ERROR(comm.broadcast(msg, 0, idle_wait));
    if (!msg.empty() && msg[0] == kStop) return Status::Ok();
    DS_ASSIGN_OR_RETURN(StepBatch b, decode_step(msg));
    // Device executors run the step without logits (rank 0 reads or samples its own).
    Status s;
    if (ex->samples_on_device()) {
      s = ex->step(b, nullptr);
    } else {
      logits.resize(static_cast<size_t>(b.num_logit_rows() * ex->vocab_size()));
      s = ex->step(b, logits.data());
    }
    if (!s.ok() && ex->broken()) return s.with_context(who);
    // A bad step fails the same way on rank 0, which reports it; keep serving.
    if (!s.ok()) std::fprintf(stderr, "dsrt: %s: step failed: %s\n", who.c_str(), s.message().c_str());
  }
}

}  // namespace ds
