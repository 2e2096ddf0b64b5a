// The engine drives an executor for whole requests: it owns the KV cache and
// the executor, prefills prompts in chunks of the token capacity, then decodes
// one token per step. `generate` samples; `score` is teacher-forced.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/dist/communicator.h"
#include "runtime/engine/sampler.h"
#include "runtime/executor/executor.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/weight_loader.h"

namespace ds {

// The device knobs the commands pass through unchanged to the executor
// (EngineOptions and ServingOptions hold one, ExecutorOptions too).
struct DeviceOptions {
  bool enable_cuda_graph = true;  // CUDA: decode steps replay captured graphs
  int64_t cuda_graph_max_bs = 0;  // CUDA: largest captured decode batch; 0: default_cuda_graph_max_bs
  int device = 0;                 // CUDA device ordinal (tensor parallelism: rank 0's, rank r on device + r)
  // Tensor parallelism on GPUs: bound of every collective and of the group's
  // creation (--dist-timeout), --enable-p2p-check, --disable-custom-all-reduce
  // (NCCL for every all-reduce).
  std::chrono::milliseconds dist_timeout{20000};
  bool enable_p2p_check = false;
  bool disable_custom_all_reduce = false;
  // CUDA: weight upload progress (bytes done, bytes total).
  std::function<void(size_t, size_t)> weight_progress;
};

// How make_executor builds the executor for the plan's target.
struct ExecutorOptions {
  int64_t token_capacity = 0;     // most tokens per step (> 0)
  int64_t max_seqs = 0;           // most sequences per step; 0: token_capacity
  // CUDA: rows of the f32 logits buffer (and of the gathered lm_head input):
  // the most logit rows a step may ask for; 0: token_capacity.
  int64_t max_logit_rows = 0;
  int64_t max_model_len = 0;      // 0: the plan's
  DeviceOptions gpu;
  // Multi-process TP group (this process is rank 0); null: in-process. With it,
  // on_group_failure runs when a step fails because the group broke.
  Communicator* dist = nullptr;
  std::function<void(const Status&)> on_group_failure;
};

// Where the executor's startup time went (zeros for the CPU executor's parts it has not).
struct ExecutorStartup {
  double weights_load_s = 0;      // CUDA: DeviceWeights::load
  size_t weight_bytes = 0;        // device bytes of the weights
  double kernel_load_s = 0;       // CUDA: generated kernels (cubin or NVRTC)
  double graph_capture_s = 0;     // CUDA graphs
  size_t activation_bytes = 0;    // CUDA: device bytes besides weights and KV pools (arena, logits, workspaces, graphs)
  size_t kv_pool_bytes = 0;       // CUDA: device KV pools
};

// Device memory of a CUDA GPU, as cudaMemGetInfo reports it.
struct DeviceMemoryInfo {
  size_t total = 0;
  size_t free = 0;
};

// True for plans compiled for a CUDA target ("sm_*").
bool is_cuda_plan(const LoadedPlan& plan);
// Whether this dsrt has the CUDA executor (built with the CUDA toolkit).
bool have_cuda_executor();
// Memory of `device`; an error without the CUDA executor or without a GPU.
Result<DeviceMemoryInfo> query_device_memory(int device);
// Device bytes the plan's weights take on the GPU (an error without the CUDA executor).
Result<size_t> device_weight_bytes(const LoadedPlan& plan);
// Largest decode batch captured in a CUDA graph by default, by the card's memory
// (SGLang's choice for one GPU): < 20 GiB: 8, < 35 GiB: 32, < 60 GiB: 128,
// < 90 GiB (H100 80 GB): 256, larger (H200): 512.
int64_t default_cuda_graph_max_bs(size_t device_total_bytes);

// Logit rows per step by default (Engine, ServingEngine): a CUDA logits buffer
// of 256 x 152k vocab x 4 bytes = 156 MB instead of one row per token of the
// step (1.2 GB at 2048 tokens); steps that want more rows (prompt logprobs,
// score) are cut into chunks.
constexpr int64_t kDefaultMaxLogitRows = 256;

struct EngineOptions {
  int64_t token_capacity = 0;  // tokens per step (chunked prefill size); 0: min(512, max_model_len)
  int64_t kv_tokens = 0;       // KV cache capacity in tokens; 0: max_model_len
  Communicator* dist = nullptr;  // multi-process TP group (this process is rank 0); null: in-process
  // CUDA plans.
  double mem_fraction_static = 0;  // > 0: check the device memory plan (memory_plan.h) before loading
  // gpu.cuda_graph_max_bs 0: 1 (at most 1 sequence runs).
  DeviceOptions gpu;
  // Logit rows per step (the CUDA logits buffer); score() feeds chunks of at
  // most this many tokens. 0: min(token capacity, kDefaultMaxLogitRows).
  int64_t max_logit_rows = 0;
};

struct GenerateOptions {
  int64_t max_new_tokens = 16;
  SamplingParams sampling;
  bool ignore_eos = false;
  std::vector<int32_t> eos_token_ids;  // empty: the plan's generation/tokenizer eos ids
};

struct GenerateResult {
  std::vector<int32_t> output_ids;
  std::string finish_reason;  // "stop" (eos) or "length"
  // Wall-clock timings around the engine's steps (host sampling included).
  double prefill_ms = 0;      // the prompt's steps
  double ttft_ms = 0;         // prompt steps + the first token's sampling
  double decode_ms = 0;       // every later step and sample
  int64_t decode_tokens = 0;  // tokens produced by decode steps (output_ids.size() - 1, or 0)
};

struct PositionScore {
  std::vector<int32_t> top_ids;      // by decreasing logit (ties: lower id first)
  std::vector<float> top_logits;
  double logsumexp = 0.0;
};

class Engine {
 public:
  // `plan` and `weights` must outlive the engine.
  static Result<std::unique_ptr<Engine>> create(const LoadedPlan& plan, const LoadedWeights& weights,
                                                const EngineOptions& options);

  Result<GenerateResult> generate(const std::vector<int32_t>& prompt, const GenerateOptions& options);
  // One entry per input id: the logits after reading ids[0..i] (predicting ids[i+1]).
  Result<std::vector<PositionScore>> score(const std::vector<int32_t>& ids, int64_t top_k);

  int64_t token_capacity() const { return executor_->token_capacity(); }
  const ExecutorStartup& startup() const { return startup_; }
  int64_t vocab_size() const { return executor_->vocab_size(); }
  int64_t max_model_len() const { return max_model_len_; }
  int64_t max_logit_rows() const { return max_logit_rows_; }
  const KvCache& kv_cache() const { return *kv_; }
  // The executor (e.g. for tests: the CPU executor's sampling switches).
  Executor& executor() { return *executor_; }
  // eos ids from the plan (generation defaults, else tokenizer).
  std::vector<int32_t> default_eos_ids() const;

 private:
  Engine() = default;
  struct Sequence {
    PageTable pages;
    int64_t num_cached = 0;
  };
  // Feeds `tokens` to the sequence in steps of at most the token capacity. With
  // all_logits, returns logits for every token; otherwise for the last one only.
  // The step of one chunk of `len` tokens following the sequence's history (no logit rows).
  static StepBatch chunk_batch(const Sequence& seq, const int32_t* tokens, int64_t len);
  Status feed(Sequence& seq, const int32_t* tokens, int64_t n, bool all_logits, std::vector<float>* logits);
  // Same, but the executor samples the next token on its device from the last
  // token's logits (no logits cross to the host). token null: the last chunk's
  // sampling is queued (Executor::enqueue_step_sample) for collect_samples.
  Status feed_sample(Sequence& seq, const int32_t* tokens, int64_t n, const RowSampling& sampling, int32_t* token);
  // generate() on an executor that pipelines device sampling: the decode step
  // after token k is queued before token k comes back (its input is the id the
  // device drew), so the device does not wait for the host between steps.
  Status generate_pipelined(Sequence& seq, const std::vector<int32_t>& prompt, RowSampling rs, int64_t budget,
                            const std::vector<int32_t>& eos, bool ignore_eos, GenerateResult* out);
  Status check_ids(const std::vector<int32_t>& ids) const;

  const LoadedPlan* plan_ = nullptr;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<Executor> executor_;
  int64_t max_model_len_ = 0;
  int64_t max_logit_rows_ = 0;  // logit rows per step (<= token capacity)
  ExecutorStartup startup_;
};

// The executor for the plan's target.
//   "cpu"   CpuExecutor; tp_size N > 1: a TpExecutor running N in-process ranks
//           (rank 0 on `weights` and `kv`); with options.dist (a multi-process
//           group of tp_size ranks, this process rank 0) a LeaderExecutor that
//           broadcasts each step to the other processes.
//   "sm_*"  CudaExecutor on options.device: the weights are built on the GPU
//           (DeviceWeights::load with weights.load_options(): `weights` may be
//           loaded with materialize = false) and owned by the returned executor;
//           `kv` must have host_storage = false. An error when this dsrt was
//           built without CUDA or no GPU is visible.
Result<std::unique_ptr<Executor>> make_executor(const LoadedPlan& plan, const LoadedWeights& weights, KvCache& kv,
                                                const ExecutorOptions& options, ExecutorStartup* startup = nullptr);
// Ranks > 0 of a multi-process tensor-parallel group (--nnodes): run rank 0's
// steps until it stops (OK) or the group fails (an error). CPU plans: run_follower
// (dist_executor.h); sm_* plans: a CudaExecutor on options.device over an NCCL
// group whose id travels over `dist`, sized by rank 0's setup (options: device,
// dist_timeout, enable_p2p_check unused).
Status run_rank_follower(const LoadedPlan& plan, const LoadedWeights& weights, Communicator& dist,
                         const ExecutorOptions& options);

// Shorthand for the CPU targets (kept for the executor tests).
Result<std::unique_ptr<Executor>> make_executor(const LoadedPlan& plan, const LoadedWeights& weights, KvCache& kv,
                                                int64_t token_capacity, Communicator* dist = nullptr,
                                                std::function<void(const Status&)> on_group_failure = nullptr);

}  // namespace ds
