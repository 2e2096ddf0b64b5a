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
#include "runtime/weights/cuda/device_weights.h"

namespace ds {
namespace {

// Owns the device weights; the CudaExecutor (declared last) is destroyed first.
class CudaModelExecutor : public Executor {
 public:
  CudaModelExecutor(std::unique_ptr<cuda::DeviceWeights> weights, std::unique_ptr<cuda::CudaExecutor> exec)
      : weights_(std::move(weights)), exec_(std::move(exec)) {}
  ~CudaModelExecutor() override { exec_.reset(); }

  int64_t token_capacity() const override { return exec_->token_capacity(); }
  int64_t vocab_size() const override { return exec_->vocab_size(); }
  Status step(const StepBatch& batch, float* logits) override { return exec_->step(batch, logits); }
  bool samples_on_device() const override { return exec_->samples_on_device(); }
  Status step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                     std::vector<RowSample>* out) override {
    return exec_->step_sample(batch, rows, out);
  }

 private:
  std::unique_ptr<cuda::DeviceWeights> weights_;
  std::unique_ptr<cuda::CudaExecutor> exec_;
};

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
  const int n = cuda::device_count();
  if (n == 0) return Status::Error("no CUDA GPU is visible (no device or no driver)");
  if (device < 0 || device >= n)
    return Status::Error(StrCat() << "CUDA device " << device << " does not exist (" << n << " visible)");
  DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  DeviceMemoryInfo info;
  DS_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&info.free, &info.total));
  return info;
}

Result<size_t> device_weight_bytes(const LoadedPlan& plan) { return cuda::DeviceWeights::plan_bytes(plan); }

Result<std::unique_ptr<Executor>> make_cuda_executor(const LoadedPlan& plan, const LoadedWeights& weights, KvCache& kv,
                                                     const ExecutorOptions& options, ExecutorStartup* startup) {
  if (options.dist && options.dist->size() > 1)
    return Status::Error("multi-process tensor parallelism is not supported by the CUDA executor yet");
  DS_RETURN_IF_ERROR(check_device(options.device));
  cuda::CudaExecutorOptions co;
  co.device = options.device;
  co.token_capacity = options.token_capacity;
  co.max_seqs = options.max_seqs > 0 ? options.max_seqs : options.token_capacity;
  co.max_model_len = options.max_model_len > 0 ? options.max_model_len : plan->model()->max_model_len();
  co.enable_cuda_graph = options.enable_cuda_graph;
  if (options.cuda_graph_max_bs > 0) {
    co.cuda_graph_max_bs = options.cuda_graph_max_bs;
  } else {
    DS_ASSIGN_OR_RETURN(DeviceMemoryInfo mem, query_device_memory(options.device));
    co.cuda_graph_max_bs = default_cuda_graph_max_bs(mem.total);
  }
  co.cuda_graph_max_bs = std::min(co.cuda_graph_max_bs, co.max_seqs);  // no graph is larger than a batch
  DS_RETURN_IF_ERROR(co.validate());

  using Clock = std::chrono::steady_clock;
  const Clock::time_point t0 = Clock::now();
  std::unique_ptr<cuda::DeviceWeights> dw;
  {
    DS_ASSIGN_OR_RETURN(cuda::Stream stream, cuda::Stream::create());
    cuda::LoadProgressFn progress;
    if (options.weight_progress) progress = options.weight_progress;
    DS_ASSIGN_OR_RETURN(dw, cuda::DeviceWeights::load(plan, weights.load_options(), stream.get(), progress));
  }
  const double weights_s = std::chrono::duration<double>(Clock::now() - t0).count();
  DS_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaExecutor> exec, cuda::CudaExecutor::create(plan, *dw, kv, co));
  if (startup) {
    startup->weights_load_s = weights_s;
    startup->weight_bytes = dw->total_bytes();
    startup->kernel_load_s = exec->kernel_load_seconds();
    startup->graph_capture_s = exec->graph_capture_seconds();
    startup->activation_bytes = exec->activation_bytes();
    startup->kv_pool_bytes = exec->kv_pool_bytes();
  }
  return std::unique_ptr<Executor>(new CudaModelExecutor(std::move(dw), std::move(exec)));
}

}  // namespace ds
