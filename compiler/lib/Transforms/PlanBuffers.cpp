//===- PlanBuffers.cpp - activation arena planning --------------*- C++ -*-===//
//
// --ds-plan-buffers: bytes-per-token offsets for every activation of
// @forward, sharing space between values whose live ranges do not overlap
// (the inputs of a group whose linear has a GEMV prologue, or whose attention
// has a rope prologue, live through it; the results of a group whose linear
// has a GEMV epilogue live from it).
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"
#include "ds/Transforms/GemvMarks.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/Support/MathExtras.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSPLANBUFFERS
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

namespace {

struct Buffer {
  Value value;
  int64_t first; // index of the defining op
  int64_t last;  // index of the last top-level op that uses it
  int64_t size;  // bytes per token, aligned
  int64_t offset = -1;
};

/// Weights and the step output (a ds.logits result, or under tensor
/// parallelism the ds.all_gather of it, that @forward returns) are not in the
/// arena; a ds.logits result that is gathered is.
bool inArena(Operation *op, Operation *terminator) {
  if (isa<GetWeightOp>(op))
    return false;
  if (!isa<LogitsOp, AllGatherOp>(op))
    return true;
  return llvm::none_of(op->getResults(), [&](Value v) {
    return llvm::is_contained(terminator->getOperands(), v);
  });
}

struct PlanBuffersPass : public mlir::ds::impl::DsPlanBuffersBase<PlanBuffersPass> {
  using DsPlanBuffersBase::DsPlanBuffersBase;

  /// Bytes per token of `value`, or failure with a diagnostic.
  FailureOr<int64_t> bytesPerToken(Operation *op, Value value) {
    auto type = dyn_cast<RankedTensorType>(value.getType());
    if (!type || type.getRank() < 1)
      return op->emitOpError("ds-plan-buffers: result is not a ranked tensor "
                             "with a token dimension");
    if (!type.isDynamicDim(0))
      return op->emitOpError()
             << "ds-plan-buffers: result type " << type
             << " must have a dynamic leading (token) dimension";
    ArrayRef<int64_t> row = type.getShape().drop_front();
    if (ShapedType::isDynamicShape(row))
      return op->emitOpError() << "ds-plan-buffers: result type " << type
                               << " must have a static row shape";
    if (!type.getElementType().isIntOrFloat())
      return op->emitOpError() << "ds-plan-buffers: result type " << type
                               << " has no integer or float element type";
    unsigned bits = type.getElementType().getIntOrFloatBitWidth();
    int64_t bytes = ShapedType::getNumElements(row) * llvm::divideCeil(bits, 8);
    return static_cast<int64_t>(llvm::alignTo(bytes, alignment));
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (alignment <= 0 || !llvm::isPowerOf2_64(alignment)) {
      module.emitError() << "ds-plan-buffers: alignment must be a power of "
                            "two, got "
                         << alignment;
      return signalPassFailure();
    }
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward || forward.isExternal() || !forward.getBody().hasOneBlock()) {
      module.emitError("ds-plan-buffers: expects a func.func @forward with a "
                       "body of one block");
      return signalPassFailure();
    }
    Block &body = forward.getBody().front();

    DenseMap<Operation *, int64_t> index;
    for (Operation &op : body)
      index[&op] = index.size();

    // Buffers in program order, with their live ranges.
    SmallVector<Buffer> buffers;
    for (Operation &op : body) {
      if (op.getNumResults() == 0 || !inArena(&op, body.getTerminator()) ||
          op.hasTrait<OpTrait::IsTerminator>())
        continue;
      for (Value result : op.getResults()) {
        FailureOr<int64_t> size = bytesPerToken(&op, result);
        if (failed(size))
          return signalPassFailure();
        int64_t last = index[&op];
        for (Operation *user : result.getUsers())
          if (Operation *top = body.findAncestorOpInBlock(*user))
            last = std::max(last, index[top]);
        buffers.push_back({result, index[&op], last, *size});
      }
    }

    // The decode marks (GemvMarks.h): a marked linear whose group is skipped
    // at decode reads the group's inputs (ds.prologue) or writes its results
    // (ds.epilogue) itself, so they are live through / from the linear; a
    // marked attention (ds.rope_prologue) reads its q group's inputs.
    for (Operation &op : body) {
      if (auto attention = dyn_cast<PagedAttentionOp>(op);
          attention && attention->hasAttr("ds.rope_prologue") &&
          !attention.getQ().getDefiningOp<FusedGroupOp>()) {
        attention.emitOpError("ds-plan-buffers: has ds.rope_prologue but its "
                              "q is not the result of a ds.fused_group");
        return signalPassFailure();
      }
      auto linear = dyn_cast<LinearOp>(op);
      if (!linear)
        continue;
      if (linear->hasAttr("ds.prologue") &&
          !linear.getX().getDefiningOp<FusedGroupOp>()) {
        linear.emitOpError("ds-plan-buffers: has ds.prologue but its input is "
                           "not the result of a ds.fused_group");
        return signalPassFailure();
      }
      Value y = linear.getResult();
      if (linear->hasAttr("ds.epilogue") &&
          !(y.hasOneUse() && isa<FusedGroupOp>(*y.getUsers().begin()))) {
        linear.emitOpError("ds-plan-buffers: has ds.epilogue but its result "
                           "is not read by exactly one ds.fused_group");
        return signalPassFailure();
      }
    }
    for (Buffer &buf : buffers) {
      for (Operation *reader : gemvPrologueReaders(buf.value))
        buf.last = std::max(buf.last, index[reader]);
      for (Operation *reader : attentionRopeReaders(buf.value))
        buf.last = std::max(buf.last, index[reader]);
      if (Operation *writer = gemvEpilogueWriter(buf.value))
        buf.first = std::min(buf.first, index[writer]);
    }

    // Greedy by size: largest first (ties in program order), lowest offset
    // that does not overlap a placed buffer with an intersecting live range.
    SmallVector<unsigned> order(buffers.size());
    for (unsigned i = 0; i < order.size(); ++i)
      order[i] = i;
    llvm::stable_sort(order, [&](unsigned a, unsigned b) {
      return buffers[a].size > buffers[b].size;
    });
    SmallVector<unsigned> placed;
    int64_t arenaBytes = 0;
    for (unsigned i : order) {
      Buffer &buf = buffers[i];
      SmallVector<std::pair<int64_t, int64_t>> busy; // [offset, end)
      for (unsigned j : placed) {
        const Buffer &other = buffers[j];
        if (other.first <= buf.last && buf.first <= other.last)
          busy.push_back({other.offset, other.offset + other.size});
      }
      llvm::sort(busy);
      int64_t offset = 0;
      for (auto [begin, end] : busy) {
        if (begin >= offset + buf.size)
          break;
        offset = std::max(offset, end);
      }
      buf.offset = offset;
      arenaBytes = std::max(arenaBytes, offset + buf.size);
      placed.push_back(i);
    }

    // Attach per-op attributes (one entry per result).
    Builder builder(&getContext());
    DenseMap<Operation *, std::pair<SmallVector<int64_t>, SmallVector<int64_t>>>
        perOp;
    for (const Buffer &buf : buffers) {
      auto &entry = perOp[buf.value.getDefiningOp()];
      entry.first.push_back(buf.offset);
      entry.second.push_back(buf.size);
    }
    for (Operation &op : body) {
      auto it = perOp.find(&op);
      if (it == perOp.end())
        continue;
      op.setAttr("ds.offsets", builder.getDenseI64ArrayAttr(it->second.first));
      op.setAttr("ds.sizes", builder.getDenseI64ArrayAttr(it->second.second));
    }
    module->setAttr("ds.arena_bytes_per_token",
                    builder.getI64IntegerAttr(arenaBytes));
    module->setAttr("ds.arena_alignment", builder.getI64IntegerAttr(alignment));
  }
};

} // namespace
