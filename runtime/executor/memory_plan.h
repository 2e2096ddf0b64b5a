// Device memory plan of the CUDA executor (SGLang-like), decided before anything
// is allocated so that a model that does not fit is a clear error naming the
// knob to change, never an out-of-memory crash half-way through loading.
//
//   static  = total x mem_fraction_static   holds the weights and the KV pool
//   KV pool = static - weights              (less if the free memory at start is short)
//   rest    = total - static                holds activations: the arena, logits,
//             sampler, cuBLASLt and attention workspaces, CUDA graphs
//   weights + KV pool + activations <= free memory at start
//
// Pure host arithmetic: unit-tested on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/common/status.h"

namespace ds {

// Defaults and fixed reserves.
constexpr double kDefaultMemFractionStatic = 0.88;         // one GPU, as SGLang
constexpr size_t kCublasLtWorkspaceBytes = size_t{32} << 20;
// CUDA graphs of the decode batch sizes (their private memory pools and the
// executor's padded metadata), kept out of the KV pool.
constexpr size_t kCudaGraphReserveBytes = size_t{512} << 20;
// Attention split-KV partial results and scheduler metadata for one step.
constexpr size_t kAttentionWorkspaceBytes = size_t{256} << 20;

struct MemoryPlanInput {
  size_t device_total = 0;            // bytes of the GPU
  size_t device_free = 0;             // bytes free before loading
  double mem_fraction_static = kDefaultMemFractionStatic;  // (0, 1)
  size_t weight_bytes = 0;            // DeviceWeights::plan_bytes
  // Activations.
  int64_t arena_bytes_per_token = 0;  // plan.arena.bytes_per_token
  int64_t chunked_prefill_size = 0;   // token capacity of a step (> 0)
  int64_t max_logit_rows = 0;         // f32 logits rows; 0: chunked_prefill_size
  int64_t vocab_size = 0;
  size_t sampler_bytes = 0;           // 0: one f32 [max_logit_rows, vocab] buffer
  size_t attention_workspace_bytes = kAttentionWorkspaceBytes;
  bool enable_cuda_graph = true;
  // KV cache.
  int64_t kv_bytes_per_page = 0;      // all layers, K and V
  int64_t page_size = 16;
  int64_t max_model_len = 0;
  int64_t max_running_requests = 0;
  int tp_size = 1;                    // for the "--tp N" hint

  Status validate() const;
};

struct MemoryPlan {
  size_t static_bytes = 0;
  size_t weight_bytes = 0;
  size_t kv_pool_bytes = 0;
  size_t activation_bytes = 0;
  int64_t kv_pages = 0;
  int64_t kv_tokens = 0;
  int64_t max_running_requests = 0;   // capped to what the pool holds
  std::vector<std::string> notes;     // decisions worth a log line (caps, shrinking)

  // "weights 3.1 GiB, KV pool 60.2 GiB (3,942,000 tokens), activations 2.4 GiB of 79.1 GiB".
  std::string summary(size_t device_total) const;
};

// Activation bytes for a step of `chunked_prefill_size` tokens.
size_t activation_bytes(const MemoryPlanInput& in, int64_t chunked_prefill_size);

// The plan, or an error naming the flag to change and by how much.
Result<MemoryPlan> plan_device_memory(const MemoryPlanInput& in);

// "61.0 GiB"
std::string format_gib(size_t bytes);

}  // namespace ds
