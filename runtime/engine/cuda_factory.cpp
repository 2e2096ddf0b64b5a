// make_executor for sm_* plans: the weights are built on the GPU and owned,
// together with the CudaExecutor that reads them, by one Executor.
// Compiled only when the CUDA executor exists (DS_HAVE_CUDA_EXECUTOR).
#include <algorithm>
#include <chrono>
#include <memory>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/engine/engine.h"
#include "runtime/executor/cuda/cuda_executor.h"
#include "runtime/executor/cuda/cuda_tp_executor.h"
#include "runtime/executor/dist_executor.h"
#include "runtime/weights/cuda/device_weights.h"

namespace ds {
namespace {

// Owns what a single-GPU CudaExecutor reads: its device weights (destroyed
// after the executor).
class CudaOwningExecutor : public Executor {
 public:
  CudaOwningExecutor(std::unique_ptr<cuda::DeviceWeights> weights, std::unique_ptr<cuda::CudaExecutor> exec)
      : weights_(std::move(weights)), exec_(std::move(exec)) {}
  ~CudaOwningExecutor() override {
    exec_.reset();
    weights_.reset();
  }

  int64_t token_capacity() const override { return exec_->token_capacity(); }
  int64_t vocab_size() const override { return exec_->vocab_size(); }
  Status step(const StepBatch& batch, float* logits) override { return exec_->step(batch, logits); }
  bool samples_on_device() const override { return exec_->samples_on_device(); }
  Status step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                     std::vector<RowSample>* out) override {
    return exec_->step_sample(batch, rows, out);
  }
  bool pipelines_sampling() const override { return exec_->pipelines_sampling(); }
  Status enqueue_step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows) override {
    return exec_->enqueue_step_sample(batch, rows);
  }
  Status collect_samples(std::vector<RowSample>* out) override { return exec_->collect_samples(out); }
  bool broken() const override { return exec_->broken(); }

 private:
  std::unique_ptr<cuda::DeviceWeights> weights_;
  std::unique_ptr<cuda::CudaExecutor> exec_;
};

// Device weights of `plan` (with the load time, for the startup breakdown).
struct TimedWeights {
  std::unique_ptr<cuda::DeviceWeights> weights;
  double seconds = 0;
};
Result<TimedWeights> load_device_weights(const LoadedPlan& plan, const WeightLoadOptions& wo,
                                         const cuda::LoadProgressFn& progress) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point t0 = Clock::now();
  DS_ASSIGN_OR_RETURN(cuda::Stream stream, cuda::Stream::create());
  TimedWeights tw;
  DS_ASSIGN_OR_RETURN(tw.weights, cuda::DeviceWeights::load(plan, wo, stream.get(), progress));
  tw.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return tw;
}

void fill_startup(ExecutorStartup* startup, double weights_s, size_t weight_bytes, const cuda::CudaExecutor& exec) {
  if (!startup) return;
  startup->weights_load_s = weights_s;
  startup->weight_bytes = weight_bytes;
  startup->kernel_load_s = exec.kernel_load_seconds();
  startup->graph_capture_s = exec.graph_capture_seconds();
  startup->activation_bytes = exec.activation_bytes();
  startup->kv_pool_bytes = exec.kv_pool_bytes();
}

Status check_device(int device) {
  const int n = cuda::device_count();
  if (n == 0) return Status::Error("no CUDA GPU is visible (no device or no driver)");
  if (device < 0 || device >= n)
    return Status::Error(StrCat() << "CUDA device " << device << " does not exist (" << n << " visible)");
  DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  return Status::Ok();
}

}  // namespace

bool have_cuda_executor() { return true; }

Result<DeviceMemoryInfo> query_device_memory(int device) {
  DS_RETURN_IF_ERROR(check_device(device));
  DeviceMemoryInfo info;
  DS_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&info.free, &info.total));
  return info;
}

Result<size_t> device_weight_bytes(const LoadedPlan& plan) { return cuda::DeviceWeights::plan_bytes(plan); }

namespace {

// The tensor-parallel options both paths below take from the command's device knobs.
cuda::CudaTpOptions base_tp_options(const DeviceOptions& gpu) {
  cuda::CudaTpOptions to;
  to.base_gpu_id = gpu.device;
  to.check_p2p = gpu.enable_p2p_check;
  to.all_reduce = gpu.disable_custom_all_reduce ? cuda::CudaTpOptions::AllReduceBackend::kNccl
                                                : cuda::CudaTpOptions::AllReduceBackend::kMeasured;
  return to;
}

// Tensor parallelism in this process: rank r on GPU options.gpu.device + r.
Result<std::unique_ptr<Executor>> make_cuda_tp_executor(const LoadedPlan& plan, const LoadedWeights& weights,
                                                        KvCache& kv, const cuda::CudaExecutorOptions& co,
                                                        const ExecutorOptions& options, ExecutorStartup* startup) {
  cuda::CudaTpOptions to = base_tp_options(options.gpu);
  to.exec = co;
  to.weights = weights.load_options();
  to.weights.tp_rank = 0;
  if (options.gpu.weight_progress) to.progress = options.gpu.weight_progress;
  DS_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaTpExecutor> exec, cuda::CudaTpExecutor::create(plan, kv, to));
  fill_startup(startup, exec->weights_load_seconds(), exec->weight_bytes_per_gpu(), exec->rank_executor(0));
  return std::unique_ptr<Executor>(std::move(exec));
}

// This process's ranks of a multi-process group (plan tp_size N over the
// group's K processes: N / K GPUs from options.gpu.device on), sized by rank 0's
// setup (every rank captures the same graphs). One GPU per process is the
// N = K case of the same executor.
Result<std::unique_ptr<Executor>> make_cuda_ranks(const LoadedPlan& plan, const WeightLoadOptions& weight_options,
                                                  KvCache& kv, const FollowerSetup& s, Communicator& dist,
                                                  const ExecutorOptions& options, ExecutorStartup* startup) {
  const std::string who = StrCat() << "tensor-parallel process " << dist.rank() << " of " << dist.size();
  DS_RETURN_IF_ERROR(check_device(options.gpu.device).with_context(who));
  cuda::CudaTpOptions to = base_tp_options(options.gpu);
  to.exec.device = options.gpu.device;
  to.exec.token_capacity = s.token_capacity;
  to.exec.max_seqs = s.max_seqs;
  to.exec.max_model_len = s.max_model_len;
  to.exec.max_logit_rows = s.max_logit_rows;
  to.exec.enable_cuda_graph = s.enable_cuda_graph;
  to.exec.cuda_graph_max_bs = s.cuda_graph_max_bs;
  to.exec.dist_timeout = options.gpu.dist_timeout;
  to.weights = weight_options;
  to.process_group = &dist;
  if (options.gpu.weight_progress && dist.rank() == 0) to.progress = options.gpu.weight_progress;
  auto exec = cuda::CudaTpExecutor::create(plan, kv, to);
  if (!exec.ok()) return exec.status().with_context(who);
  fill_startup(startup, (*exec)->weights_load_seconds(), (*exec)->weight_bytes_per_gpu(), (*exec)->rank_executor(0));
  return std::unique_ptr<Executor>(std::move(exec).value());
}

// The per-rank executor options (one GPU, or each GPU of a tensor-parallel group).
Result<cuda::CudaExecutorOptions> cuda_options(const LoadedPlan& plan, const ExecutorOptions& options) {
  cuda::CudaExecutorOptions co;
  co.device = options.gpu.device;
  co.token_capacity = options.token_capacity;
  co.max_seqs = options.max_seqs > 0 ? options.max_seqs : options.token_capacity;
  co.max_logit_rows = std::min(options.max_logit_rows, options.token_capacity);  // 0: token_capacity
  co.max_model_len = options.max_model_len > 0 ? options.max_model_len : plan->model()->max_model_len();
  co.enable_cuda_graph = options.gpu.enable_cuda_graph;
  if (options.gpu.cuda_graph_max_bs > 0) {
    co.cuda_graph_max_bs = options.gpu.cuda_graph_max_bs;
  } else {
    DS_ASSIGN_OR_RETURN(DeviceMemoryInfo mem, query_device_memory(options.gpu.device));
    co.cuda_graph_max_bs = default_cuda_graph_max_bs(mem.total);
  }
  co.cuda_graph_max_bs = std::min(co.cuda_graph_max_bs, co.max_seqs);  // no graph is larger than a batch
  co.dist_timeout = options.gpu.dist_timeout;
  DS_RETURN_IF_ERROR(co.validate());
  return co;
}

}  // namespace

Status run_cuda_follower(const LoadedPlan& plan, const LoadedWeights& weights, Communicator& dist,
                         const ExecutorOptions& options) {
  const WeightLoadOptions wo = weights.load_options();
  return run_follower(plan, dist, [&](const FollowerSetup& s, KvCache& kv) {
    return make_cuda_ranks(plan, wo, kv, s, dist, options, nullptr);
  });
}

Result<std::unique_ptr<Executor>> make_cuda_executor(const LoadedPlan& plan, const LoadedWeights& weights, KvCache& kv,
                                                     const ExecutorOptions& options, ExecutorStartup* startup) {
  DS_RETURN_IF_ERROR(check_device(options.gpu.device));
  DS_ASSIGN_OR_RETURN(cuda::CudaExecutorOptions co, cuda_options(plan, options));
  if (options.dist && options.dist->size() > 1) {
    // Multi-process: this process is rank 0; rank 0's setup sizes every rank's executor.
    Communicator& dist = *options.dist;
    if (plan->tp_size() < dist.size() || plan->tp_size() % dist.size() != 0)
      return Status::Error(StrCat() << "plan is sharded for " << plan->tp_size() << " ranks, which do not split evenly "
                                    << "over the process group's " << dist.size() << " processes");
    FollowerSetup setup;
    setup.token_capacity = co.token_capacity;
    setup.num_pages = kv.config().num_pages;
    setup.max_seqs = co.max_seqs;
    setup.max_model_len = co.max_model_len;
    setup.max_logit_rows = co.max_logit_rows;
    setup.cuda_graph_max_bs = co.cuda_graph_max_bs;
    setup.enable_cuda_graph = co.enable_cuda_graph;
    const WeightLoadOptions wo = weights.load_options();
    DS_ASSIGN_OR_RETURN(auto e, LeaderExecutor::create(kv, setup, dist, [&](const FollowerSetup& s, KvCache& k) {
      return make_cuda_ranks(plan, wo, k, s, dist, options, startup);
    }));
    e->set_on_group_failure(options.on_group_failure);
    return std::unique_ptr<Executor>(std::move(e));
  }
  if (plan->tp_size() > 1) return make_cuda_tp_executor(plan, weights, kv, co, options, startup);

  DS_ASSIGN_OR_RETURN(TimedWeights tw, load_device_weights(plan, weights.load_options(), options.gpu.weight_progress));
  DS_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaExecutor> exec, cuda::CudaExecutor::create(plan, *tw.weights, kv, co));
  fill_startup(startup, tw.seconds, tw.weights->total_bytes(), *exec);
  return std::unique_ptr<Executor>(new CudaOwningExecutor(std::move(tw.weights), std::move(exec)));
}

}  // namespace ds
