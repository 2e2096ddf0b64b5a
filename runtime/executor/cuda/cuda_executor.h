// The CUDA executor: runs a plan compiled for an sm_* target on one GPU.
//
//   create   weights (DeviceWeights), KV pools for every page of `kv` (the host
//            KvCache only does page bookkeeping), activation arena of
//            token_capacity rows, generated kernels (LoadedKernel), cuBLASLt
//            runner, attention workspace, device sampler; binds every
//            instruction's operands to device pointers once.
//   step     one H2D copy of the step description (tokens, positions, logit
//            rows, per-sequence q_start/kv_len, page tables) into fixed device
//            buffers, slot mapping computed on the GPU, then the program's
//            launches on one stream; decode steps of <= cuda_graph_max_bs
//            sequences replay a CUDA graph captured at load for the padded size.
//   TP       a plan sharded for N ranks (tp_size N) runs one CudaExecutor per
//            rank, each given its DeviceCommunicator (NCCL): all_reduce ->
//            out-of-place all_reduce_sum on the step's (padded) rows, the logits
//            all_gather -> all_gather_rows, vocab-parallel embedding over the
//            rank's ids; every rank must be created and stepped concurrently
//            (create() runs eager warm-up collectives before capturing graphs)
//            with the same StepBatch, and each step ends with
//            comm->wait(stream, dist_timeout): a dead peer is an error, not a hang.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/executor/executor.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/cuda/device_weights.h"

namespace ds::cuda {

class DeviceCommunicator;
class CustomAllReduce;

struct CudaExecutorOptions {
  int device = 0;
  int64_t token_capacity = 0;     // most tokens per step (arena rows), > 0
  int64_t max_seqs = 0;           // most sequences per step (metadata buffers), > 0
  int64_t max_model_len = 0;      // page-table width = ceil(max_model_len / page_size)
  int64_t max_logit_rows = 0;     // 0: token_capacity
  bool enable_cuda_graph = true;
  int64_t cuda_graph_max_bs = 256;  // decode batch sizes captured: 1,2,4,8,16,24,...,max
  // Tensor parallelism (plans with tp_size > 1): this rank's communicator, not
  // owned; it must outlive the executor (which destroys its graphs first). Its
  // rank selects the vocab-parallel embedding rows; its device must be `device`.
  DeviceCommunicator* comm = nullptr;
  std::chrono::milliseconds dist_timeout{60000};  // a step's collectives complete within this
  // Optional (ranks of one process with peer access): all_reduce messages it
  // supports (small: decode steps) run as its one-shot NVLink kernel instead of
  // NCCL; every rank of the group must be given it. Not owned.
  CustomAllReduce* custom_all_reduce = nullptr;
  // Linears marked with an RMSNorm prologue (dscc ds-gemv-prologue) compute the
  // norm inside their GEMV at decode batch sizes (m <= 2), and the norm's group
  // is not launched. Off by default: on the H200 the prologue GEMVs cost more
  // than the launches they save (docs/PERF.md, session 4). DSRT_GEMV_PROLOGUE=1
  // (or 0) in the environment overrides it.
  bool gemv_prologue = false;
  // The same only on the linears that also carry the SwiGLU epilogue (gate_up)
  // and only at batch 1, where the bulk GEMV (sm_90+) stages the normed x once
  // per block and writes silu(gate) * up: one kernel instead of norm + GEMV. On
  // by default (H200, 32B decode 61.7-61.8 vs 61.3-61.4 tok/s, 7B within noise;
  // docs/PERF.md, session 15). DSRT_GEMV_PROLOGUE=swiglu / =1 / =0 in the
  // environment: this one, gemv_prologue, neither.
  bool gemv_prologue_swiglu = true;
  // Linears marked with a SwiGLU epilogue (dscc ds-gemv-epilogue: gate_up) write
  // silu(gate) * up themselves at decode batch sizes, and the SiLU*mul group is
  // not launched. DSRT_GEMV_SWIGLU=0 turns it off.
  bool gemv_swiglu = true;
  // Attentions marked rope_prologue (dscc ds-attention-rope) rope q and the new
  // key and write the KV cache themselves in pure decode steps, and the rope +
  // KV-write group before them is not launched. DSRT_ATTN_ROPE=0 turns it off.
  bool attention_rope = true;
  // Deferred RMSNorm at batch 1 (GemmArgs::norm_out / norm_in): an RMSNorm
  // group between a residual linear P that writes its input h and a linear L
  // marked with the RMSNorm prologue (dscc ds-gemv-prologue: q/k/v, gate_up) is
  // not launched; P also writes bf16(h * gamma) and the sum of h^2, and L
  // scales its dots by rsqrt(mean + eps). Ignored while gemv_prologue is on.
  // Off by default: on the H200 the GEMVs that do it (warp-row kernels only,
  // the producer's atomics, the reader's scale) cost about what the norm
  // launches they remove did (docs/PERF.md, session 11).
  // DSRT_GEMV_DEFERRED_NORM=1 (or 0) in the environment overrides it.
  bool deferred_norm = false;
  // Pipelined device sampling (Executor::enqueue_step_sample): offered on one
  // GPU without a communicator. DSRT_PIPELINED_SAMPLING=0 turns it off (A/B:
  // callers then take the synchronous step_sample path).
  bool pipelined_sampling = true;
  // The same on a tensor-parallel rank (with a communicator): every rank samples
  // the all-gathered logits with the same rows (the draws are reproducible, so
  // all ranks hold the same ids for the next step's previous_sample_token), and
  // collect_samples() first waits for the oldest queued step through the
  // communicator's bounded wait (a dead peer is an error, not a hang). Off by
  // default until measured on a multi-GPU machine (docs/PERF.md);
  // DSRT_TP_PIPELINED_SAMPLING=1 (or 0) in the environment overrides it.
  bool pipelined_with_comm = false;
  // The packed step goes to the device by a kernel reading mapped pinned
  // staging (launch_copy_step) instead of a cudaMemcpyAsync. DSRT_ZERO_COPY=0
  // turns this and the sampler's mapped parameters / results off (A/B).
  bool zero_copy_upload = true;

  Status validate() const;
};

// Decode batch sizes captured for a maximum: 1, 2, 4, 8, 16, 24, ..., 256
// (step 8), then step 16, and the maximum itself last.
std::vector<int64_t> cuda_graph_batch_sizes(int64_t max_bs);

class CudaExecutor : public Executor {
 public:
  // `plan`, `weights` and `kv` must outlive the executor.
  static Result<std::unique_ptr<CudaExecutor>> create(const LoadedPlan& plan, const DeviceWeights& weights,
                                                      KvCache& kv, const CudaExecutorOptions& options);
  // Same with the weights as device tensors in plan order (DeviceWeights::get(i)
  // for every i); the tensors' memory must outlive the executor.
  static Result<std::unique_ptr<CudaExecutor>> create(const LoadedPlan& plan, const std::vector<DeviceTensor>& weights,
                                                      KvCache& kv, const CudaExecutorOptions& options);
  ~CudaExecutor() override;

  int64_t token_capacity() const override;
  int64_t vocab_size() const override;
  // `logits` may be null: the step is then only queued (no host synchronization).
  Status step(const StepBatch& batch, float* logits) override;
  bool samples_on_device() const override { return true; }
  Status step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows,
                     std::vector<RowSample>* out) override;
  // Pipelined sampling (Executor): when CudaExecutorOptions::pipelined_sampling
  // (and, on a tensor-parallel rank, pipelined_with_comm); a step's
  // previous_sample_token(r) tokens (any step, once a sampling ran) are read by
  // its unpack kernel.
  bool pipelines_sampling() const override;
  Status enqueue_step_sample(const StepBatch& batch, const std::vector<RowSampling>& rows) override;
  Status collect_samples(std::vector<RowSample>* out) override;

  // Device bytes held besides weights and KV pools (arena, logits, workspaces, graphs).
  size_t activation_bytes() const;
  // Device KV pools: kv.num_pages() pages, plus one scratch page when decode graphs are on.
  size_t kv_pool_bytes() const;
  // Seconds spent loading kernels and capturing graphs in create() (startup breakdown).
  double kernel_load_seconds() const;
  double graph_capture_seconds() const;
  // True once the rank's communicator was aborted (a peer failed or timed out).
  bool broken() const override;
  // Instructions a decode step of `batch` sequences launches: the program less
  // the groups another instruction computes at that batch (fusions, logs, tests).
  int64_t decode_launches(int64_t batch) const;
  // Tensor-parallel rank and size (0 and 1 without a communicator).
  int tp_rank() const;
  int tp_size() const;

  struct Impl;  // internal (executor_impl.h)

 private:
  CudaExecutor();
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds::cuda
