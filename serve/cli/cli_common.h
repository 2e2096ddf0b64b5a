// Shared pieces of the dsrt subcommands: loading a plan + weights, id lists,
// the tokenizer bridge.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/common/status.h"
#include "runtime/dist/communicator.h"
#include "runtime/engine/engine.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/weight_loader.h"

namespace ds::cli {

struct LoadOptions {
  std::string plan_path;
  std::string model_path;
  std::string load_format = "auto";
  uint64_t dummy_seed = 0;
  int tp = 1;  // tensor-parallel ranks; must equal the plan's tp_size
  // Multi-process tensor parallelism: one process per rank.
  int nnodes = 1;
  int node_rank = 0;
  std::string dist_init_addr;  // HOST:PORT of rank 0's rendezvous store
  double dist_timeout = 20;    // seconds, per collective and for the rendezvous: a dead peer ends every rank within ~20 s
  // CUDA plans: first GPU (rank r of an in-process group runs on base_gpu_id + r;
  // with --nnodes each process drives base_gpu_id), and --enable-p2p-check.
  int base_gpu_id = 0;
  bool enable_p2p_check = false;
  bool disable_custom_all_reduce = false;  // --disable-custom-all-reduce: every all-reduce through NCCL
  // --dtype (vLLM's): "auto", or the dtype the plan must compute in (dscc compiles it in).
  std::string dtype = "auto";
  // --kv-cache-dtype (SGLang / vLLM): "auto", or the KV cache dtype the plan
  // holds; the FP8 caches (fp8_e5m2, fp8_e4m3) are refused with a clear error.
  std::string kv_cache_dtype = "auto";
  // --quantization (SGLang / vLLM): empty or "none"; a plan runs the weights dscc
  // compiled into it (bf16), so fp8 and the others are refused with a clear error.
  std::string quantization;
  bool trust_remote_code = false;  // accepted for SGLang/vLLM commands; dsrt runs no checkpoint code
  bool enable_torch_compile = false;  // accepted for SGLang commands; plans are compiled ahead of time
};

// CUDA executor knobs shared by generate, score and serve (sm_* plans).
struct CudaArgs {
  double mem_fraction_static = 0;  // 0: not given (serve: 0.88 on one GPU)
  bool disable_cuda_graph = false;
  int64_t cuda_graph_max_bs = 0;   // 0: by the card's memory (default_cuda_graph_max_bs)
};

struct LoadedModel {
  std::unique_ptr<LoadedPlan> plan;
  std::unique_ptr<LoadedWeights> weights;
  std::unique_ptr<Communicator> dist;  // nnodes > 1: this process's rank of the group
  LoadOptions options;                 // as given to load_model
  bool follower() const { return dist && dist->rank() > 0; }
};

// The executor options a follower rank (--nnodes, --node-rank > 0) builds its
// executor with: --base-gpu-id, --dist-timeout (the rest comes from rank 0).
ExecutorOptions follower_executor_options(const LoadOptions& options);

// Loads the plan and its weights: for sm_* plans only the checkpoint headers are
// checked here (the CUDA executor builds the weights on the GPU).
Result<LoadedModel> load_model(const LoadOptions& options);

// GPU weight upload progress: a one-line bar on stderr when stderr is a terminal, else nothing.
std::function<void(size_t, size_t)> weight_progress_printer();
// The executor's device knobs from the command line (--disable-cuda-graph,
// --cuda-graph-max-bs, --base-gpu-id, --dist-timeout, --enable-p2p-check,
// --disable-custom-all-reduce) and the weight upload progress bar.
DeviceOptions device_options(const LoadOptions& load, const CudaArgs& cuda);
// "dsrt: loaded 15.2 GiB of weights in 3.4 s (4.8 GB/s)" on stderr (CUDA plans).
void print_weight_load(size_t bytes, double seconds);

// "1,2,3" (spaces allowed) -> ids.
Result<std::vector<int32_t>> parse_id_list(const std::string& text, const std::string& flag);

// Tokenizer of the plan (ds_tokenizer); an error if this dsrt was built without it.
class PlanTokenizer {
 public:
  static Result<std::unique_ptr<PlanTokenizer>> create(const LoadedPlan& plan);
  ~PlanTokenizer();
  Result<std::vector<int32_t>> encode(const std::string& text) const;
  Result<std::string> decode(const std::vector<int32_t>& ids) const;

 private:
  PlanTokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

bool tokenizer_available();

}  // namespace ds::cli
