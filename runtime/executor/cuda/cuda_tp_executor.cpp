#include "runtime/executor/cuda/cuda_tp_executor.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "runtime/common/parallel_for.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/dist/cuda/all_reduce_choice.h"
#include "runtime/dist/cuda/device_communicator.h"

namespace ds::cuda {
namespace {

using Clock = std::chrono::steady_clock;

// How long a waiting thread spins (yielding) before it sleeps: covers the gap
// between back-to-back decode steps without a wake-up on the critical path.
constexpr auto kSpin = std::chrono::milliseconds(2);

// The first error of each failed rank, joined; ranks that failed on their own
// come before the ones that only timed out (or were aborted) waiting for them.
Status join_errors(const std::vector<Status>& status, const std::string& what, int first_rank) {
  std::vector<std::string> own, waited;
  for (size_t r = 0; r < status.size(); ++r) {
    if (status[r].ok()) continue;
    std::string m = StrCat() << "tensor-parallel rank " << first_rank + static_cast<int>(r) << ": " << status[r].message();
    const bool secondary = m.find("within") != std::string::npos || m.find("aborted") != std::string::npos;
    (secondary ? waited : own).push_back(std::move(m));
  }
  if (own.empty() && waited.empty()) return Status::Ok();
  own.insert(own.end(), waited.begin(), waited.end());
  std::string msg = what;
  for (size_t i = 0; i < own.size(); ++i) msg += (i ? "; " : ": ") + own[i];
  return Status::Error(msg);
}

}  // namespace

Result<std::unique_ptr<CudaTpExecutor>> CudaTpExecutor::create(const LoadedPlan& plan, KvCache& kv,
                                                               const CudaTpOptions& options) {
  const int total = plan->tp_size();
  if (total < 1) return Status::Error(StrCat() << "plan " << plan.origin() << " has tp_size " << total);
  if (kv.has_host_storage())
    return Status::Error("tensor-parallel CUDA executor: the KV cache must have host_storage = false");
  if (options.exec.dist_timeout.count() <= 0)
    return Status::Error(StrCat() << "--dist-timeout must be positive, got " << options.exec.dist_timeout.count() << " ms");
  // This process's ranks: all of them, or its share of a process group.
  Communicator* group = options.process_group;
  const int processes = group ? group->size() : 1;
  if (total < processes || total % processes != 0)
    return Status::Error(StrCat() << "plan " << plan.origin() << " is sharded for " << total << " ranks, which do not "
                                  << "split evenly over " << processes << " processes");
  const int n = total / processes;
  const int first = group ? group->rank() * n : 0;
  std::vector<int> devices = options.devices;
  if (devices.empty())
    for (int r = 0; r < n; ++r) devices.push_back(options.base_gpu_id + r);
  if (static_cast<int>(devices.size()) != n)
    return Status::Error(StrCat() << "plan " << plan.origin() << " is sharded for " << total << " ranks, " << n
                                  << " per process; " << devices.size() << " GPUs were given");
  const int visible = device_count();
  std::set<int> seen;
  for (int d : devices) {
    if (d < 0 || d >= visible)
      return Status::Error(StrCat() << "--tp " << total << " needs GPU " << d << " (" << n
                                    << " per process, one per rank from --base-gpu-id " << devices.front() << "), but "
                                    << visible << " CUDA device(s) are visible");
    if (!seen.insert(d).second) return Status::Error(StrCat() << "GPU " << d << " is given to two tensor-parallel ranks");
  }
  if (options.check_p2p) DS_RETURN_IF_ERROR(check_p2p(devices).with_context("--enable-p2p-check"));
  std::vector<std::unique_ptr<DeviceCommunicator>> comms;
  if (group) {
    DS_ASSIGN_OR_RETURN(comms, create_process_device_group(*group, devices, options.exec.dist_timeout));
  } else {
    DS_ASSIGN_OR_RETURN(comms, create_local_device_group(devices, options.exec.dist_timeout));
  }

  std::unique_ptr<CudaTpExecutor> e(new CudaTpExecutor());
  e->devices_ = devices;
  e->first_rank_ = first;
  using Backend = CudaTpOptions::AllReduceBackend;
  Backend backend = options.all_reduce;
  const char* env = std::getenv("DSRT_CUSTOM_ALLREDUCE");
  const std::string forced = env ? env : "";
  if (forced == "0") backend = Backend::kNccl;
  if (forced == "1") backend = Backend::kCustom;
  // Across processes the all-reduce spans GPUs the custom kernel cannot reach.
  if (backend != Backend::kNccl && n > 1 && !group) {
    // DSRT_CUSTOM_ALLREDUCE_LL=0: every message through the staged protocol (A/B of the LL one).
    const char* ll_env = std::getenv("DSRT_CUSTOM_ALLREDUCE_LL");
    const size_t ll_bytes = ll_env && std::string(ll_env) == "0" ? 0 : CustomAllReduce::kDefaultLlMaxBytes;
    auto ar = CustomAllReduce::create(devices, CustomAllReduce::kDefaultMaxBytes, options.exec.dist_timeout, ll_bytes);
    if (ar.ok()) {
      e->custom_ar_ = std::move(ar).value();
    } else {
      std::fprintf(stderr, "dsrt: tensor parallelism: all-reduce through NCCL only (%s)\n", ar.status().message().c_str());
    }
  }
  // Custom kernel or NCCL for the decode all-reduces: measured on these GPUs
  // (all_reduce_choice.h) unless the kernel is asked for (kCustom).
  if (e->custom_ar_ && backend == Backend::kMeasured) {
    std::vector<DeviceCommunicator*> raw;
    for (auto& c : comms) raw.push_back(c.get());
    AllReduceTimingOptions to;  // one f32 row of the hidden state: a batch-1 decode all-reduce
    const int hidden = plan->model() ? plan->model()->hidden_size() : 0;
    if (hidden > 0) to.bytes = (static_cast<size_t>(hidden) * sizeof(float) + 15) / 16 * 16;
    to.bytes = std::min(to.bytes, e->custom_ar_->max_bytes());
    to.timeout = options.exec.dist_timeout;
    bool measured = false;
    Result<AllReduceTiming> timed = decode_all_reduce_timing(*e->custom_ar_, raw, devices, to, &measured);
    if (!timed.ok()) return timed.status().with_context("tensor parallelism: choosing the decode all-reduce");
    const AllReduceTiming t = *timed;
    const bool custom = prefer_custom_all_reduce(t);
    if (measured)
      std::fprintf(stderr,
                   "dsrt: tensor parallelism: decode all-reduce of %zu bytes: custom kernel %.1f us, NCCL %.1f us -> %s\n",
                   to.bytes, t.custom_us, t.nccl_us, custom ? "custom kernel" : "NCCL");
    if (!custom) e->custom_ar_.reset();
  }
  for (int r = 0; r < n; ++r) {
    auto rank = std::make_unique<Rank>();
    rank->comm = std::move(comms[static_cast<size_t>(r)]);
    e->ranks_.push_back(std::move(rank));
  }
  // Every rank loads and creates concurrently: the executors' warm-up
  // collectives need all ranks at once.
  std::vector<Status> status(static_cast<size_t>(n));
  std::vector<double> load_s(static_cast<size_t>(n), 0.0);
  parallel_for_each(static_cast<size_t>(n), [&](size_t r) {
    Rank& rank = *e->ranks_[r];
    Status s = [&]() -> Status {
      DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices[r]));
      WeightLoadOptions wo = options.weights;
      wo.tp_rank = first + static_cast<int>(r);
      const auto t0 = Clock::now();
      {
        DS_ASSIGN_OR_RETURN(Stream stream, Stream::create());
        DS_ASSIGN_OR_RETURN(rank.weights,
                            DeviceWeights::load(plan, wo, stream.get(), r == 0 ? options.progress : LoadProgressFn()));
      }
      load_s[r] = std::chrono::duration<double>(Clock::now() - t0).count();
      CudaExecutorOptions eo = options.exec;
      eo.device = devices[r];
      eo.comm = rank.comm.get();
      eo.custom_all_reduce = e->custom_ar_.get();
      DS_ASSIGN_OR_RETURN(rank.executor, CudaExecutor::create(plan, *rank.weights, kv, eo));
      return Status::Ok();
    }();
    status[r] = std::move(s);
  });
  if (Status s = join_errors(status, "tensor-parallel CUDA executor", first); !s.ok()) {
    e->teardown();
    return s;
  }
  e->weights_load_s_ = *std::max_element(load_s.begin(), load_s.end());
  e->all_ranks_sample_ = std::all_of(e->ranks_.begin(), e->ranks_.end(),
                                     [](const std::unique_ptr<Rank>& r) { return r->executor->pipelines_sampling(); });
  for (size_t r = 1; r < e->ranks_.size(); ++r) e->ranks_[r]->thread = std::thread(&CudaTpExecutor::worker, e.get(), r);
  return e;
}

CudaTpExecutor::~CudaTpExecutor() { teardown(); }

void CudaTpExecutor::teardown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& r : ranks_)
    if (r->thread.joinable()) r->thread.join();
  // Executors first, in rank order (their DSRT_PROFILE reports print in that
  // order), then each rank's weights and communicator on its own thread, all at
  // once: finalizing an NCCL communicator may wait for its peers.
  for (size_t r = 0; r < ranks_.size(); ++r) {
    if (r < devices_.size()) (void)cudaSetDevice(devices_[r]);
    ranks_[r]->executor.reset();
  }
  parallel_for_each(ranks_.size(), [&](size_t r) {
    Rank& rank = *ranks_[r];
    if (r < devices_.size()) (void)cudaSetDevice(devices_[r]);
    rank.weights.reset();
    rank.comm.reset();
  });
}

bool CudaTpExecutor::broken() const {
  if (diverged_.load()) return true;
  for (const auto& r : ranks_)
    if (r->executor && r->executor->broken()) return true;
  return false;
}

int64_t CudaTpExecutor::token_capacity() const { return ranks_[0]->executor->token_capacity(); }
int64_t CudaTpExecutor::vocab_size() const { return ranks_[0]->executor->vocab_size(); }

Status CudaTpExecutor::run_rank(size_t r, Job job, const StepBatch* batch, float* logits,
                                const std::vector<RowSampling>* rows, std::vector<RowSample>* out) {
  CudaExecutor& e = *ranks_[r]->executor;
  std::vector<RowSample>* mine = r == 0 ? out : &ranks_[r]->samples;
  switch (job) {
    case Job::kStep: return e.step(*batch, r == 0 ? logits : nullptr);
    case Job::kSample:
      // Without pipelining only rank 0 samples; the others run the step and wait for its collectives.
      if (r != 0 && !all_ranks_sample_) return e.step(*batch, nullptr);
      return e.step_sample(*batch, *rows, mine);
    case Job::kEnqueue: return e.enqueue_step_sample(*batch, *rows);
    case Job::kCollect: return e.collect_samples(mine);
  }
  return Status::Error("internal: unknown tensor-parallel job");
}

void CudaTpExecutor::worker(size_t r) {
  Rank& rank = *ranks_[r];
  uint64_t seen = 0;
  for (;;) {
    // Spin briefly, then sleep until the next job (or stop).
    const auto spin_until = Clock::now() + kSpin;
    while (generation_.load() == seen && !stop_.load() && Clock::now() < spin_until) std::this_thread::yield();
    if (generation_.load() == seen && !stop_.load()) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_start_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
    }
    if (stop_.load()) return;
    seen = generation_.load();
    rank.status = run_rank(r, job_, batch_, nullptr, rows_, nullptr);
    if (pending_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_one();
    }
  }
}

Status CudaTpExecutor::run(Job job, const StepBatch* batch, float* logits, const std::vector<RowSampling>* rows,
                           std::vector<RowSample>* out) {
  if (diverged_.load())
    return Status::Error("tensor-parallel executor: the ranks drew different tokens earlier; no later step can run");
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch_ = batch;
    rows_ = rows;
    job_ = job;
    pending_ = ranks_.size() - 1;
    generation_.fetch_add(1);
  }
  cv_start_.notify_all();
  ranks_[0]->status = run_rank(0, job, batch, logits, rows, out);
  const auto spin_until = Clock::now() + kSpin;
  while (pending_.load() != 0 && Clock::now() < spin_until) std::this_thread::yield();
  if (pending_.load() != 0) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, [&] { return pending_.load() == 0; });
  }
  batch_ = nullptr;
  rows_ = nullptr;
  std::vector<Status> status;
  for (auto& r : ranks_) status.push_back(r->status);
  DS_RETURN_IF_ERROR(join_errors(status, "tensor-parallel step", first_rank_));
  const bool sampled_everywhere = job == Job::kCollect || (job == Job::kSample && all_ranks_sample_);
  return sampled_everywhere && out ? check_agreement(*out) : Status::Ok();
}

Status CudaTpExecutor::check_agreement(const std::vector<RowSample>& rank0) {
  for (size_t r = 1; r < ranks_.size(); ++r) {
    const std::vector<RowSample>& other = ranks_[r]->samples;
    for (size_t i = 0; i < rank0.size(); ++i) {
      const int32_t theirs = i < other.size() ? other[i].id : -1;
      if (theirs == rank0[i].id) continue;
      diverged_ = true;
      return Status::Error(StrCat() << "tensor-parallel sampling: rank " << first_rank_ + static_cast<int>(r)
                                    << " drew token " << theirs << " for row " << i << " where rank " << first_rank_
                                    << " drew " << rank0[i].id << " (" << other.size() << " vs " << rank0.size()
                                    << " rows); the ranks' inputs diverged, no later step can run");
    }
  }
  return Status::Ok();
}

Status CudaTpExecutor::step(const StepBatch& batch, float* logits) {
  return run(Job::kStep, &batch, logits, nullptr, nullptr);
}

Status CudaTpExecutor::step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                                   std::vector<RowSample>* out) {
  if (!out) return Status::Error("step_sample: no output vector");
  return run(Job::kSample, &batch, nullptr, &rows, out);
}

bool CudaTpExecutor::pipelines_sampling() const { return all_ranks_sample_; }

Status CudaTpExecutor::enqueue_step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows) {
  if (!all_ranks_sample_)
    return Status::Error(
        "enqueue_step_sample: not offered here (pipelined_with_comm off on the tensor-parallel ranks): use step_sample");
  return run(Job::kEnqueue, &batch, nullptr, &rows, nullptr);
}

Status CudaTpExecutor::collect_samples(std::vector<RowSample>* out) {
  if (!out) return Status::Error("collect_samples: no output vector");
  if (!all_ranks_sample_)
    return Status::Error("collect_samples: pipelined sampling is off on the tensor-parallel ranks");
  return run(Job::kCollect, nullptr, nullptr, nullptr, out);
}

}  // namespace ds::cuda
