// CudaExecutor internals: the binder that resolves every plan instruction to
// device pointers once (cuda_executor_bind.cpp: operands, embedding,
// attention, fused groups; cuda_executor_bind_gemm.cpp: linears, logits,
// collectives and the GEMV prologue links; cuda_executor_bind_rope.cpp: rope
// inside decode attention). Not a public header.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/executor/cuda/executor_impl.h"
#include "runtime/plan/plan_attrs.h"

namespace ds::cuda {

// A resolved operand.
struct Operand {
  enum Kind { kArena, kWeight, kKv, kInput, kOutput } kind = kArena;
  void* ptr = nullptr;
  DType dtype = DType::kBF16;
  int64_t width = 0;                // arena: elements per token row
  const DeviceTensor* weight = nullptr;
  int index = -1;                   // kv layer, input/output index, arena buffer
  std::string name;                 // for errors
};

// "arena buffer", "weight", ... for errors.
const char* kind_name(Operand::Kind k);

// A fused group's body in the plan (cuda_executor_bind_gemm.cpp): the fused op
// computing group value `v` (v >= num_inputs), or null; whether `f` is op `name`
// with `operands` operands; the offset of `f` as a slice of group input 0 of
// `size` columns, or -1.
const plan::FusedOp* fused_value(const plan::Kernel& k, int v);
bool is_fused_op(const plan::FusedOp* f, const char* name, size_t operands);
int64_t input_slice_offset(const plan::FusedOp* f, int64_t size);

class Binder {
 public:
  Binder(CudaExecutor::Impl& x, const std::vector<DeviceTensor>& w) : x_(x), w_(w), p_(x.plan->plan()) {}
  Result<Operand> resolve(const plan::ValueRef& r, const std::string& ctx) const;
  // Binds the whole program into x.program, then links GEMV prologues.
  Status bind_all();

 private:
  Status err(const std::string& m) const { return Status::Error(where_ + ": " + m); }
  Status counts(size_t in_min, size_t in_max, size_t outs) const;
  // `f32_ok`: an f32 buffer is accepted too (a GEMM writing into an f32 residual stream, dscc --proj-out-dtype f32).
  Status act(const Operand& o, int64_t width, const char* role, bool f32_ok = false) const;
  Status weight(const Operand& o, size_t rank, bool bf16_only, const char* role) const;

  Status embedding(const PlanAttrs* attrs, BoundOp& op) const;
  Status attention(const PlanAttrs* attrs, BoundOp& op);
  Status fused(const plan::Kernel& k, BoundOp& op);
  // cuda_executor_bind_gemm.cpp
  Status linear(const PlanAttrs* attrs, BoundOp& op);
  Status logits(BoundOp& op);
  Status all_reduce(const PlanAttrs* attrs, BoundOp& op);
  Status all_gather(const PlanAttrs* attrs, BoundOp& op);
  // A linear with the `prologue` attribute ("rms_norm", dscc ds-gemv-prologue):
  // checks that the group writing its x is one RMSNorm of (src, gamma) and
  // points the GEMV's NormPrologue at them; run_program then skips the group
  // in steps where the GEMV computes it.
  Status link_prologue(const PlanAttrs* attrs, BoundOp& op, size_t pos);
  // The deferred RMSNorm instead (prologue off, deferred_norm on): pairs the
  // linear writing the norm's input with op when the shapes allow, else nothing.
  Status link_deferred_norm(BoundOp& op, size_t pos);
  // A SiLU*mul group (op, at pos) reading a linear marked epilogue = swiglu.
  Status link_swiglu(const plan::Kernel& k, BoundOp& op, size_t pos);
  // An attention (op, at pos) with the `rope_prologue` attribute (dscc
  // ds-attention-rope): checks that the group writing its q slices a qkv row,
  // ropes q and k and writes k, v into this layer's cache, and points op.rope
  // at the raw rows (cuda_executor_bind_rope.cpp); run_program then skips the
  // group in pure decode steps.
  Status link_attention_rope(const PlanAttrs* attrs, BoundOp& op, size_t pos);
  struct NormGroup {
    Operand src, gamma;
    float eps = 0;
  };
  bool pure_rms_norm(size_t g, NormGroup* out) const;

  CudaExecutor::Impl& x_;
  const std::vector<DeviceTensor>& w_;
  const plan::Plan& p_;
  std::string where_;
  std::vector<Operand> ins_, outs_;
  std::set<int> per_row_;  // arena buffers holding the step's logit rows (vocab-parallel logits and what follows)
  // Arena buffer -> program position of the instruction that last wrote it, and
  // the operands and kernel of fused instructions (for prologue links).
  std::map<int, size_t> writer_;
  std::map<size_t, std::vector<Operand>> fused_ins_;
  std::map<size_t, const plan::Kernel*> fused_kernel_;
};

}  // namespace ds::cuda
