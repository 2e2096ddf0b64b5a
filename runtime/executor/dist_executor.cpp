#include "runtime/executor/dist_executor.h"

#include <cstdio>
#include <cstring>

#include "runtime/executor/cpu_executor.h"

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

Result<std::unique_ptr<LeaderExecutor>> LeaderExecutor::create(const LoadedPlan& plan, const LoadedWeights& weights,
                                                               KvCache& kv, int64_t token_capacity, Communicator& comm) {
  if (comm.rank() != 0) return Status::Error("the leader executor runs on rank 0");
  std::unique_ptr<LeaderExecutor> e(new LeaderExecutor());
  e->comm_ = &comm;
  DS_ASSIGN_OR_RETURN(auto local, CpuExecutor::create(plan, weights, kv, token_capacity, &comm));
  e->local_ = std::move(local);
  std::string setup(1, kSetup);
  put_i64(setup, token_capacity);
  put_i64(setup, kv.config().num_pages);
  DS_RETURN_IF_ERROR(comm.broadcast(setup, 0));
  return e;
}

LeaderExecutor::~LeaderExecutor() {
  std::string stop(1, kStop);
  (void)comm_->broadcast(stop, 0);
}

Status LeaderExecutor::step(const StepBatch& batch, float* logits) {
  encode_step(batch, buf_);
  Status s = comm_->broadcast(buf_, 0);
  if (s.ok()) s = local_->step(batch, logits);
  if (!s.ok() && comm_->broken() && on_group_failure_) {
    auto fn = std::move(on_group_failure_);
    on_group_failure_ = nullptr;
    fn(s);
  }
  return s;
}

Status run_follower(const LoadedPlan& plan, const LoadedWeights& weights, Communicator& comm,
                    std::chrono::milliseconds idle_wait) {
  const std::string who = StrCat() << "rank " << comm.rank() << "/" << comm.size();
  std::string msg;
  DS_RETURN_IF_ERROR(comm.broadcast(msg, 0, idle_wait));  // rank 0 may still be loading
  if (msg.size() != 17 || msg[0] != kSetup)
    return Status::Error(who + ": expected the setup message from rank 0");
  Reader r{msg, 1};
  const int64_t capacity = r.i64(), num_pages = r.i64();
  DS_ASSIGN_OR_RETURN(KvCacheConfig cfg, KvCacheConfig::from_plan(*plan->kv_cache(), num_pages));
  DS_ASSIGN_OR_RETURN(auto kv, KvCache::create(cfg));
  DS_ASSIGN_OR_RETURN(auto ex, CpuExecutor::create(plan, weights, *kv, capacity, &comm));
  std::vector<float> logits;
  for (;;) {
    DS_RETURN_IF_ERROR(comm.broadcast(msg, 0, idle_wait));
    if (!msg.empty() && msg[0] == kStop) return Status::Ok();
    DS_ASSIGN_OR_RETURN(StepBatch b, decode_step(msg));
    logits.resize(static_cast<size_t>(b.num_logit_rows() * ex->vocab_size()));
    // A bad step fails the same way on rank 0, which reports it; keep serving.
    Status s = ex->step(b, logits.data());
    if (!s.ok()) std::fprintf(stderr, "dsrt: %s: step failed: %s\n", who.c_str(), s.message().c_str());
  }
}

}  // namespace ds
