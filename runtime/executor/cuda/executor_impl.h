// CudaExecutor internals shared by its translation units (not a public header).
#pragma once

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/attention/paged_attention.h"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/sampling/device_sampler.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/kernel_library.h"
#include "runtime/cuda/pinned_buffer.h"
#include "runtime/dist/cuda/custom_all_reduce.h"
#include "runtime/dist/cuda/device_communicator.h"
#include "runtime/executor/cuda/cuda_executor.h"
#include "runtime/executor/cuda/step_metadata.h"

namespace ds::cuda {

// One program instruction bound to device pointers.
struct BoundOp {
  enum class Kind { kEmbedding, kLinear, kLogits, kAttention, kFused, kAllReduce, kAllGather };
  Kind kind = Kind::kFused;
  std::string where;  // "program[3] kernel 'x' (linear)"
  std::string name;   // the plan kernel's name ("l0.attn", "linear", ...)
  // kEmbedding
  const void* table = nullptr;
  DType table_dtype = DType::kBF16;
  int64_t table_rows = 0, hidden = 0;
  int64_t vocab_start = 0;  // vocab-parallel: this rank's first id (rank * table_rows)
  void* out = nullptr;
  // kLinear / kLogits (gemm.m is set per step; logits gather x rows first)
  GemmArgs gemm;
  const void* x = nullptr;
  // A fused group may be computed by another instruction, program[absorbed_by],
  // and is then not launched in the steps where that one does it
  // (CudaExecutor::Impl::absorbs, by `absorb`):
  //  - kNormPrologue: a kLinear with gemm.norm.src set (dscc ds-gemv-prologue,
  //    opt-in) computes the RMSNorm group writing its x inside its GEMV;
  //  - kSwigluEpilogue: a kLinear with gemm.swiglu_out set (dscc
  //    ds-gemv-epilogue) writes the SiLU*mul group that reads its output;
  //  - kAttentionRope: a kAttention with rope linked (dscc ds-attention-rope)
  //    ropes q and the new key and writes the KV cache in pure decode steps.
  //  - kDeferredNorm: a kLinear L with gemm.norm_in set (an RMSNorm prologue
  //    mark, CudaExecutorOptions::deferred_norm) scales by the norm whose x its
  //    producer program[L.norm_producer] wrote (gemm.norm_out) at batch 1.
  // Each holds only when the absorbing kernel supports the step's shape.
  enum class Absorb { kNone, kNormPrologue, kSwigluEpilogue, kAttentionRope, kDeferredNorm };
  static constexpr size_t kNone = static_cast<size_t>(-1);
  size_t absorbed_by = kNone;
  Absorb absorb = Absorb::kNone;
  // kLinear in a deferred-norm pair: its partner (P: the reading L; L: the
  // writing P) and the pair's slot (index into CudaExecutor::Impl::norm_slots).
  size_t norm_consumer = kNone, norm_producer = kNone;
  size_t norm_out_slot = kNone, norm_in_slot = kNone;
  bool swiglu_marked = false;  // kLinear: plan attr epilogue = "swiglu"
  // kLinear: its RMSNorm prologue is linked only together with its SwiGLU
  // epilogue (CudaExecutorOptions::gemv_prologue_swiglu): without the one, not the other.
  bool prologue_with_swiglu = false;
  // kAttention
  const void* q = nullptr;
  int layer = -1;
  PagedAttentionParams attn;
  // kAttention with rope linked (rope.inv_freq set): in pure decode steps it
  // reads the raw q at rope_q (row stride rope_q_ld) instead of q, and `rope`
  // (its pools filled in per launch) instead of the absorbed group's output.
  PagedAttentionRope rope;
  const void* rope_q = nullptr;
  int64_t rope_q_ld = 0;
  // kFused
  const LoadedKernel* kernel = nullptr;
  std::vector<void*> pointers;
  // kAllReduce / kAllGather: x -> out, `hidden` elements per row of `dtype`;
  // per_logit_row: the operand holds the step's logit rows (R), not its tokens (T).
  DType dtype = DType::kBF16;
  bool per_logit_row = false;
  const void* residual = nullptr;  // kAllReduce: out = residual + sum over ranks
};

// Opt-in profile of eager steps (env DSRT_PROFILE=1): a cudaEvent pair around
// every instruction, summed per (kind, kernel name without its layer prefix);
// graph replays are timed as a whole. Printed to stderr every
// DSRT_PROFILE_EVERY steps (default 0: only at exit) and when the executor is destroyed.
class StepProfiler {
 public:
  static Result<std::unique_ptr<StepProfiler>> create(const std::vector<BoundOp>& program);
  bool active = false;  // false during create() (warm-up, capture)
  Status before(size_t op, cudaStream_t s) { return record(events_[2 * op], s); }
  Status after(size_t op, cudaStream_t s) { return record(events_[2 * op + 1], s); }
  Status eager_step(std::chrono::steady_clock::time_point t0, const Stream& s);
  // Graph steps (no synchronization added: each step's events are read two
  // steps later): step_begin() before the step's upload, graph_begin/_end()
  // around the replay, sampled() after its device sampling (if any). The
  // report splits a step into upload, replay, sampling and the gap before
  // the next step's upload (host latency), next to the host's launch period.
  Status step_begin(const Stream& s);
  Status graph_begin(const Stream& s);
  Status graph_end(const Stream& s);
  Status sampled(const Stream& s);
  void print();

 private:
  static Status record(const Event& e, cudaStream_t s);
  void maybe_print();
  struct Row {
    std::string label;
    int64_t calls = 0;
    double ms = 0;
  };
  std::vector<Event> events_;       // 2 per instruction
  std::vector<size_t> row_of_;      // instruction -> row
  std::vector<Row> rows_;
  struct GraphStepEvents {
    Event begin, graph_begin, graph_end, sampled;
    bool recorded = false, has_graph = false, has_sampled = false;
  };
  static constexpr int kRing = 4;
  Status collect_graph_step(int slot);  // reads ring_[slot] (complete), with ring_[slot - 1] for the gap
  GraphStepEvents ring_[kRing];
  int64_t step_index_ = -1;           // ring_[step_index_ % kRing] is the current step
  std::chrono::steady_clock::time_point last_graph_start_{};
  int64_t eager_steps_ = 0, graph_steps_ = 0, graph_periods_ = 0, sampled_steps_ = 0, gap_steps_ = 0;
  double eager_wall_ms_ = 0, eager_span_ms_ = 0, graph_gpu_ms_ = 0, graph_period_ms_ = 0, upload_ms_ = 0,
         sample_ms_ = 0, gap_ms_ = 0;
  int64_t every_ = 0;
};

// What a launch of the program needs to know on the host.
struct StepShape {
  int64_t num_tokens = 0;
  int64_t num_logit_rows = 0;
  int64_t num_seqs = 0;
  int64_t max_q_len = 0;
  int64_t max_kv_len = 0;
};

struct CudaExecutor::Impl {
  CudaExecutorOptions opt;
  const LoadedPlan* plan = nullptr;
  KvCache* kv = nullptr;
  int64_t vocab = 0;
  int64_t hidden_for_logits = 0;
  int64_t page_size = 16;
  int64_t max_pages_per_seq = 0;

  Stream stream;
  DeviceBuffer arena;
  std::vector<DeviceBuffer> k_pools, v_pools;
  DeviceBuffer logits;          // f32 [max_logit_rows, vocab]
  DeviceBuffer logit_hidden;    // bf16 [max_logit_rows, hidden]: gathered rows for the lm_head GEMM
  DeviceBuffer meta;            // fixed step buffers (StepMetaBuffers) + DsStepArgs
  DeviceBuffer blob;            // device copy of the packed step
  PinnedBuffer staging;         // host packed step (mapped: launch_copy_step reads it)
  Event staging_done;           // recorded after the copy of `staging` to `blob`
  bool staging_pending = false;
  StepMetaBuffers m;
  std::unique_ptr<GemmRunner> gemm;
  DeviceBuffer attn_workspace;
  std::unique_ptr<DeviceSampler> sampler;
  // Rows of the most recent device sampling whose ids a step may take as
  // previous_sample_token(r) (0 while none, or while one is being rewritten).
  int64_t last_sample_rows = 0;

  std::map<std::string, LoadedKernel> kernels;  // by entry + source hash (same kernel loaded once)
  std::vector<DeviceBuffer> rope_inv_freq;       // device inv_freq tables of the linked attention ropes
  std::vector<BoundOp> program;
  DeviceBuffer norm_slots;  // DeferredNormSlot per deferred-norm pair, zeroed at the start of batch-1 steps
  size_t num_norm_slots = 0;

  // CUDA graphs of decode steps, by (padded batch size, KV-length bucket). Decode
  // attention is launched with the bucket's bound (kv_buckets: 512, 2048, 8192, ...
  // x4, capped by max_model_len, which is last), eager or not, so that the split-KV
  // geometry fits the actual lengths.
  std::vector<int64_t> graph_sizes;  // ascending
  std::vector<int64_t> kv_buckets;   // ascending, last == max_model_len
  std::map<std::pair<int64_t, int64_t>, GraphExec> graphs;
  int32_t scratch_page = -1;         // page of the padded sequences: id kv->num_pages(), device pools only

  double kernel_load_s = 0, graph_capture_s = 0;
  std::unique_ptr<StepProfiler> profiler;  // DSRT_PROFILE=1

  // Tensor parallelism: the rank's communicator (not owned) and the all_gather scratch.
  DeviceCommunicator* comm = nullptr;
  CustomAllReduce* custom_ar = nullptr;  // small all_reduces (same choice on every rank)
  int tp_rank = 0, tp_size = 1;
  DeviceBuffer gather_scratch;

  ~Impl();
  // Waits for the stream: comm->wait (bounded by dist_timeout; a dead peer is
  // an error) under tensor parallelism, else a plain synchronize.
  Status sync();
  // Waits for the work recorded before `event`: bounded by the communicator's
  // wait under tensor parallelism (a dead peer is an error), else a plain wait.
  Status wait_event(cudaEvent_t event);
  // The previous step's staging copy is done (before the staging is rewritten).
  Status wait_staging();
  Status bind(const std::vector<DeviceTensor>& weights);
  // Sets gemm.prefetch_weights on every kLinear whose next launched instruction
  // is an all-reduce, when DSRT_GEMV_PREFETCH_BEFORE_AR=1 (opt-in experiment).
  void mark_weight_prefetch();
  Status run_program(const StepShape& shape);
  // The GEMM arguments of a kLinear at `m` rows: the norm prologue kept only
  // when the GEMV runs it at this m (then the norm group is skipped).
  GemmArgs linear_args(const BoundOp& op, int64_t m) const;
  // Whether the deferred-norm pair (producer, consumer: both in `program`) runs at m rows.
  bool deferred_norm_on(const BoundOp& producer, const BoundOp& consumer, int64_t m) const;
  Status all_reduce(const BoundOp& op, int64_t rows, cudaStream_t stream);
  // Whether program[group.absorbed_by] computes `group` in a step of shape `sh`.
  bool absorbs(const BoundOp& group, const StepShape& sh) const;
  // Whether attention `op` ropes q and writes the new K/V itself in a step of shape `sh`.
  bool attention_rope_on(const BoundOp& op, const StepShape& sh) const;
  Status capture_graphs();
  // Index of the smallest KV bucket >= max_kv_len.
  size_t kv_bucket(int64_t max_kv_len) const;
  // Copies `words` of `staging` to `blob` on the stream (opt.zero_copy_upload: launch_copy_step).
  Status copy_staging(size_t words);
  // Packs the step into `staging` (padding to `padded_seqs` decode sequences
  // when > 0) and copies it to the device; returns the shape to launch.
  Result<StepShape> upload(const StepBatch& batch, int64_t padded_seqs);
  Status upload_padding_only(int64_t size);
  Status launch_step(const StepBatch& batch);
};

}  // namespace ds::cuda
