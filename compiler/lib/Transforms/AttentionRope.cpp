//===- AttentionRope.cpp - rope + KV write in decode attention --*- C++ -*-===//
//
// --ds-attention-rope: on CUDA targets, a ds.paged_attention whose q is the
// only result of the layer's rope group (slice q/k/v of the qkv row, rope q
// and k, write k/v into the attention's cache layer, yield q), read by nothing
// else, gets ds.rope_prologue: in decode steps the executor may skip the group
// and let the attention kernel rope q and the new key and write the new K/V
// itself, reading the group's qkv row.
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSATTENTIONROPE
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

namespace {

/// True if `type` is tensor<?xWxbf16> for some static W.
bool isBf16Rows(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && tensor.getRank() == 2 && tensor.isDynamicDim(0) &&
         !tensor.isDynamicDim(1) && tensor.getElementType().isBF16();
}

/// True if `value` is a tensor<?xi32> and argument 1 of its func.func, the
/// step positions of @forward (tokens, positions, logit_rows): the attention
/// kernel reads the step's positions, not a computed value.
bool isPositions(Value value) {
  auto tensor = dyn_cast<RankedTensorType>(value.getType());
  auto arg = dyn_cast<BlockArgument>(value);
  return tensor && tensor.getRank() == 1 && tensor.isDynamicDim(0) &&
         tensor.getElementType().isSignlessInteger(32) && arg &&
         arg.getArgNumber() == 1 && arg.getOwner()->isEntryBlock() &&
         isa<func::FuncOp>(arg.getOwner()->getParentOp());
}

/// True if `group`, the producer of `attention`'s q, has the inputs
/// (qkv: tensor<?xWxbf16>, the step positions), one result and a body
/// of exactly
///   %q  = ds.slice %arg0 {size = num_heads * head_dim}
///   %k  = ds.slice %arg0 {size = num_kv_heads * head_dim}
///   %v  = ds.slice %arg0 {size = num_kv_heads * head_dim}
///   %qr = ds.rope %q, %arg1 {num_heads, head_dim, rope = R}
///   %kr = ds.rope %k, %arg1 {num_kv_heads, head_dim, rope = R}
///   ds.kv_cache_write %kr, %v {cache, layer}   (the attention's)
///   ds.yield %qr
/// in any order, with num_heads, num_kv_heads and head_dim the attention's.
bool isRopeGroup(FusedGroupOp group, PagedAttentionOp attention) {
  Block &body = group.getBodyBlock();
  if (group.getNumResults() != 1 || group.getInputs().size() != 2 ||
      body.getNumArguments() != 2 ||
      !isBf16Rows(group.getInputs()[0].getType()) ||
      !isPositions(group.getInputs()[1]) ||
      !isBf16Rows(group.getResult(0).getType()))
    return false;
  const int64_t headDim = attention.getHeadDim();
  if (attention.getVHeadDim() != headDim)
    return false;

  Value qkv = body.getArgument(0), positions = body.getArgument(1);
  SmallVector<SliceOp, 3> slices;
  SmallVector<RopeOp, 2> ropes;
  KvCacheWriteOp write;
  for (Operation &op : body.without_terminator()) {
    if (auto slice = dyn_cast<SliceOp>(op); slice && slices.size() < 3) {
      if (slice.getX() != qkv)
        return false;
      slices.push_back(slice);
    } else if (auto rope = dyn_cast<RopeOp>(op); rope && ropes.size() < 2) {
      if (rope.getPositions() != positions)
        return false;
      ropes.push_back(rope);
    } else if (auto w = dyn_cast<KvCacheWriteOp>(op); w && !write) {
      write = w;
    } else {
      return false;
    }
  }
  if (slices.size() != 3 || ropes.size() != 2 || !write)
    return false;

  // The q rope is the yielded one, the k rope the one the cache write reads.
  ValueRange yielded = group.getYield().getValues();
  if (yielded.size() != 1)
    return false;
  RopeOp qRope = ropes[0], kRope = ropes[1];
  if (yielded.front() == kRope.getResult())
    std::swap(qRope, kRope);
  if (yielded.front() != qRope.getResult() ||
      write.getK() != kRope.getResult())
    return false;
  auto qSlice = qRope.getX().getDefiningOp<SliceOp>();
  auto kSlice = kRope.getX().getDefiningOp<SliceOp>();
  auto vSlice = write.getV().getDefiningOp<SliceOp>();
  if (!qSlice || !kSlice || !vSlice || qSlice == kSlice || qSlice == vSlice ||
      kSlice == vSlice)
    return false;

  // Shapes and attributes agree with the attention.
  const int64_t numHeads = attention.getNumHeads();
  const int64_t numKvHeads = attention.getNumKvHeads();
  return qRope.getNumHeads() == numHeads && qRope.getHeadDim() == headDim &&
         kRope.getNumHeads() == numKvHeads && kRope.getHeadDim() == headDim &&
         qRope.getRope() == kRope.getRope() &&
         qSlice.getSize() == numHeads * headDim &&
         kSlice.getSize() == numKvHeads * headDim &&
         vSlice.getSize() == numKvHeads * headDim &&
         write.getCache() == attention.getCache() &&
         write.getLayer() == attention.getLayer();
}

struct AttentionRopePass
    : public mlir::ds::impl::DsAttentionRopeBase<AttentionRopePass> {
  using DsAttentionRopeBase::DsAttentionRopeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<std::string> target =
        resolveTarget(module, "", "ds-attention-rope");
    if (failed(target))
      return signalPassFailure();
    if (!isCudaTarget(*target))
      return;
    auto mark = UnitAttr::get(&getContext());
    module.walk([&](PagedAttentionOp attention) {
      Value q = attention.getQ();
      auto group = q.getDefiningOp<FusedGroupOp>();
      if (!group || !q.hasOneUse() || !isRopeGroup(group, attention))
        return;
      attention->setAttr("ds.rope_prologue", mark);
      ++numMarked;
    });
  }
};

} // namespace
