// Plan ops prepared for the CPU executor: operands resolved to storage, attributes
// parsed and checked once at load, so that a step only runs kernels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ref/paged_attention.h"
#include "kernels/ref/rope.h"
#include "runtime/dist/communicator.h"
#include "runtime/plan/plan_attrs.h"
#include "runtime/weights/weight_loader.h"

namespace ds {

enum class OpKind { kEmbedding, kRmsNorm, kLinear, kSlice, kRope, kKvCacheWrite, kPagedAttention, kSilu, kMul, kAdd, kLogits,
                    kAllReduce, kAllGather };

// A resolved operand.
struct Val {
  enum Kind { kAct, kWeight, kKv, kTokens, kPositions, kLogitRows, kLogits } kind = kAct;
  float* act = nullptr;                 // kAct: [capacity, width] float32 rows
  const WeightTensor* weight = nullptr; // kWeight
  int kv_layer = -1;                    // kKv
  int64_t width = 0;                    // elements per token row (kAct, kLogits)
  bool per_logit_row = false;           // kAct written by logits: [num_logit_rows, width], not [T, width]
};

// What a step passes to every op.
struct StepContext {
  int64_t num_tokens = 0;
  const int32_t* tokens = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* logit_rows = nullptr;
  int64_t num_logit_rows = 0;
  float* logits = nullptr;
  const ref::AttnSequence* seqs = nullptr;
  int64_t num_seqs = 0;
  std::vector<ref::PagedKvLayer>* kv_layers = nullptr;
  Communicator* comm = nullptr;         // tensor-parallel group (null: one rank)
};

// The executing rank within its tensor-parallel group.
struct TpInfo {
  int rank = 0;
  int size = 1;
};

struct PreparedOp {
  OpKind kind = OpKind::kAdd;
  std::string where;                    // "program[3] kernel 'x' (linear)" for errors
  std::vector<Val> ins, outs;
  double eps = 0;
  int64_t slice_offset = 0, slice_size = 0;
  ref::RopeParams rope;
  ref::RopeTables rope_tables;
  ref::PagedAttentionParams attn;
  int64_t layer = -1;
  int64_t vocab = 0;
  bool vocab_parallel = false;          // embedding: table rows are ids [vocab_start, +rows)
  int64_t vocab_start = 0;
  int64_t total_vocab = 0;
  bool has_residual = false;            // linear / all_reduce: the last input is added to the result (attr residual)
  mutable std::vector<float> scratch;   // all_gather / in-place residual all_reduce staging (one step at a time)

  // Runs the op over ctx.num_tokens rows.
  Status run(const StepContext& ctx) const;
};

// Per-layer KV geometry the ops check against.
struct KvGeometryView {
  std::vector<int64_t> num_kv_heads, k_dim, v_dim;
};

Result<OpKind> op_kind_from_name(const std::string& op);

// Parses attributes, checks operand kinds and widths, and sets the width of an
// activation output whose width is 0 (fused intermediates). `expected_width`
// of outputs already set must match.
Status prepare_op(PreparedOp& op, const PlanAttrs* attrs, const KvGeometryView& kv, int64_t vocab,
                  const TpInfo& tp = TpInfo{});

}  // namespace ds
