//===- Shard.cpp - tensor-parallel sharding ---------------------*- C++ -*-===//
//
// --ds-shard{tp=N}: Megatron-style tensor parallelism (see TP_CONTRACT.md).
// Analysis first (find the attention / MLP / embedding / logits structure and
// check every split), then the rewrite, so a failing module is left intact.
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/MapVector.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSSHARD
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

namespace {

/// How one ds.weight is sliced per rank (a single-source weight).
struct WeightSlice {
  int64_t axis = -1, size = 0, stride = 0, divisor = 1;
  bool operator==(const WeightSlice &o) const {
    return axis == o.axis && size == o.size && stride == o.stride &&
           divisor == o.divisor;
  }
};

/// One attention block, found from its ds.paged_attention.
struct Attention {
  PagedAttentionOp attn;
  KvCacheWriteOp write;
  LinearOp q, k, v, o;
  RopeOp qRope, kRope; // may be null (no rotary embedding)
};

/// One MLP block: down(silu(gate) * up).
struct Mlp {
  LinearOp gate, up, down;
  SiluOp act;
  MulOp mul;
};

RankedTensorType withDim(Type type, int64_t dim, int64_t size) {
  auto t = cast<RankedTensorType>(type);
  SmallVector<int64_t> shape(t.getShape());
  shape[dim] = size;
  return RankedTensorType::get(shape, t.getElementType());
}

/// `loc` named "<name>.<suffix>" when it has a name ("l0.o_proj" ->
/// "l0.o_proj.all_reduce"), so plan buffers and kernels get readable names.
Location suffixed(Location loc, StringRef suffix) {
  if (auto named = dyn_cast<NameLoc>(loc))
    return NameLoc::get(
        StringAttr::get(loc.getContext(), named.getName().str() + "." +
                                              suffix.str()),
        named.getChildLoc());
  return loc;
}

struct ShardPass : public mlir::ds::impl::DsShardBase<ShardPass> {
  using DsShardBase::DsShardBase;

  ModuleOp module;
  int64_t ranks = 1; // the `tp` option
  llvm::MapVector<WeightOp, WeightSlice> slices;

  /// Records that the weight read by `value` is sliced as `slice`.
  LogicalResult sliceWeight(Operation *user, Value value, StringRef role,
                            WeightSlice slice) {
    auto get = value.getDefiningOp<GetWeightOp>();
    WeightOp weight =
        get ? module.lookupSymbol<WeightOp>(get.getName()) : WeightOp();
    if (!weight)
      return user->emitOpError() << "ds-shard: the " << role
                                 << " is not a ds.weight";
    if (weight.getSources().size() != 1)
      return user->emitOpError()
             << "ds-shard: the " << role << " @" << weight.getSymName()
             << " is built from " << weight.getSources().size()
             << " sources; only a single whole checkpoint tensor can be sharded";
    auto src = cast<SourceAttr>(weight.getSources()[0]);
    if (src.getSliceAxis() != -1 ||
        ArrayRef<int64_t>(src.getShape()) !=
            weight.getTensorType().getShape())
      return user->emitOpError()
             << "ds-shard: the " << role << " @" << weight.getSymName()
             << " is already sliced or reshaped";
    auto [it, inserted] = slices.insert({weight, slice});
    if (!inserted && !(it->second == slice))
      return user->emitOpError()
             << "ds-shard: @" << weight.getSymName()
             << " is used with two different tensor-parallel splits";
    return success();
  }

  LogicalResult divisible(Operation *op, StringRef what, int64_t value) {
    if (value % ranks != 0)
      return op->emitOpError() << "ds-shard: " << what << " " << value
                               << " is not divisible by tp " << ranks;
    return success();
  }

  /// The linear behind `value`, looking through a ds.rope.
  LinearOp linearBehind(Value value, RopeOp &rope) {
    rope = value.getDefiningOp<RopeOp>();
    if (rope)
      value = rope.getX();
    return value.getDefiningOp<LinearOp>();
  }

  /// Column-parallel `linear`: rows (and bias) sliced on axis 0.
  LogicalResult columnParallel(LinearOp linear, StringRef role, int64_t rows,
                               int64_t stride, int64_t divisor) {
    WeightSlice s{0, rows, stride, divisor};
    if (failed(sliceWeight(linear, linear.getWeight(), role.str() + " weight",
                           s)))
      return failure();
    if (linear.getBias() &&
        failed(sliceWeight(linear, linear.getBias(), role.str() + " bias", s)))
      return failure();
    return success();
  }

  /// Row-parallel `linear`: columns sliced on axis 1.
  LogicalResult rowParallel(LinearOp linear, StringRef role) {
    if (linear.getBias())
      return linear.emitOpError()
             << "ds-shard: the row-parallel " << role
             << " has a bias, which tensor parallelism does not support yet";
    auto w = cast<RankedTensorType>(linear.getWeight().getType());
    if (failed(divisible(linear, (role + " input size").str(),
                         w.getDimSize(1))))
      return failure();
    int64_t cols = w.getDimSize(1) / ranks;
    return sliceWeight(linear, linear.getWeight(), role.str() + " weight",
                       {1, cols, cols, 1});
  }

  LogicalResult analyzeAttention(PagedAttentionOp attn,
                                 DenseMap<int64_t, KvCacheWriteOp> &writes,
                                 Attention &a) {
    a.attn = attn;
    int64_t hq = attn.getNumHeads(), hkv = attn.getNumKvHeads();
    int64_t d = attn.getHeadDim(), dv = attn.getVHeadDim();
    if (failed(divisible(attn, "num_heads", hq)))
      return failure();
    if (ranks <= hkv && failed(divisible(attn, "num_kv_heads", hkv)))
      return failure();
    if (ranks > hkv && ranks % hkv != 0)
      return attn.emitOpError() << "ds-shard: tp " << ranks
                                << " is larger than num_kv_heads " << hkv
                                << " but not a multiple of it";
    a.write = writes.lookup(attn.getLayer());
    if (!a.write)
      return attn.emitOpError() << "ds-shard: no ds.kv_cache_write of layer "
                                << attn.getLayer();
    a.q = linearBehind(attn.getQ(), a.qRope);
    a.k = linearBehind(a.write.getK(), a.kRope);
    RopeOp none;
    a.v = linearBehind(a.write.getV(), none);
    if (!a.q || !a.k || !a.v || none)
      return attn.emitOpError("ds-shard: q, k and v must come from ds.linear "
                              "(q and k optionally through ds.rope)");
    if (!attn.getResult().hasOneUse() ||
        !isa<LinearOp>(*attn.getResult().getUsers().begin()))
      return attn.emitOpError("ds-shard: the attention output must feed one "
                              "ds.linear (o_proj)");
    a.o = cast<LinearOp>(*attn.getResult().getUsers().begin());
    if (a.o.getX() != attn.getResult())
      return attn.emitOpError("ds-shard: the attention output must be the "
                              "input of o_proj");
    auto rowsOf = [](LinearOp l) { return l.getType().getDimSize(1); };
    if (rowsOf(a.q) != hq * d || rowsOf(a.k) != hkv * d ||
        rowsOf(a.v) != hkv * dv)
      return attn.emitOpError("ds-shard: q/k/v sizes do not match the head "
                              "counts and head dims");

    int64_t qRows = hq / ranks * d;
    int64_t kvHeads = ranks <= hkv ? hkv / ranks : 1;
    int64_t divisor = ranks <= hkv ? 1 : ranks / hkv;
    if (failed(columnParallel(a.q, "q projection", qRows, qRows, 1)) ||
        failed(columnParallel(a.k, "k projection", kvHeads * d, kvHeads * d,
                              divisor)) ||
        failed(columnParallel(a.v, "v projection", kvHeads * dv, kvHeads * dv,
                              divisor)))
      return failure();
    return rowParallel(a.o, "o_proj");
  }

  LogicalResult analyzeMlp(LinearOp down, Mlp &m, bool &found) {
    found = false;
    auto mul = down.getX().getDefiningOp<MulOp>();
    if (!mul)
      return success();
    Value lhs = mul.getLhs(), rhs = mul.getRhs();
    if (!lhs.getDefiningOp<SiluOp>())
      std::swap(lhs, rhs);
    auto act = lhs.getDefiningOp<SiluOp>();
    if (!act)
      return success();
    auto gate = act.getX().getDefiningOp<LinearOp>();
    auto up = rhs.getDefiningOp<LinearOp>();
    if (!gate || !up)
      return success();
    found = true;
    m = {gate, up, down, act, mul};
    int64_t inter = gate.getType().getDimSize(1);
    if (failed(divisible(gate, "intermediate size", inter)))
      return failure();
    int64_t rows = inter / ranks;
    if (failed(columnParallel(gate, "gate projection", rows, rows, 1)) ||
        failed(columnParallel(up, "up projection", rows, rows, 1)))
      return failure();
    return rowParallel(down, "down_proj");
  }

  LogicalResult vocabParallel(Operation *op, Value table) {
    auto t = cast<RankedTensorType>(table.getType());
    if (failed(divisible(op, "vocab size", t.getDimSize(0))))
      return failure();
    int64_t rows = t.getDimSize(0) / ranks;
    return sliceWeight(op, table, "vocabulary table", {0, rows, rows, 1});
  }

  /// Inserts `ds.all_reduce` after `op` and redirects its other users.
  void allReduceAfter(OpBuilder &builder, Operation *op) {
    Value v = op->getResult(0);
    builder.setInsertionPointAfter(op);
    auto reduce = builder.create<AllReduceOp>(suffixed(op->getLoc(), "all_reduce"), v.getType(), v,
                                              builder.getStringAttr("tp"));
    v.replaceAllUsesExcept(reduce.getResult(), reduce);
  }

  void runOnOperation() override {
    module = getOperation();
    ranks = tp;
    Builder b(&getContext());
    if (ranks < 1) {
      module.emitError() << "ds-shard: tp must be at least 1, got " << ranks;
      return signalPassFailure();
    }
    module->setAttr("ds.tp_size", b.getI64IntegerAttr(ranks));
    if (ranks == 1)
      return;
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward || forward.isExternal() || !forward.getBody().hasOneBlock()) {
      module.emitError("ds-shard: expects a func.func @forward with a body "
                       "of one block");
      return signalPassFailure();
    }
    Block &body = forward.getBody().front();

    // Analysis.
    DenseMap<int64_t, KvCacheWriteOp> writes;
    for (auto w : body.getOps<KvCacheWriteOp>())
      writes[w.getLayer()] = w;
    SmallVector<Attention> attentions;
    SmallVector<Mlp> mlps;
    SmallVector<EmbeddingOp> embeddings;
    SmallVector<LogitsOp> logits;
    DenseSet<Operation *> oProjs;
    for (Operation &op : body) {
      if (auto attn = dyn_cast<PagedAttentionOp>(op)) {
        Attention a;
        if (failed(analyzeAttention(attn, writes, a)))
          return signalPassFailure();
        attentions.push_back(a);
        oProjs.insert(a.o);
      } else if (auto e = dyn_cast<EmbeddingOp>(op)) {
        if (failed(vocabParallel(e, e.getTable())))
          return signalPassFailure();
        embeddings.push_back(e);
      } else if (auto l = dyn_cast<LogitsOp>(op)) {
        if (failed(vocabParallel(l, l.getWeight())))
          return signalPassFailure();
        logits.push_back(l);
      }
    }
    for (auto linear : body.getOps<LinearOp>()) {
      Mlp m;
      bool found = false;
      if (failed(analyzeMlp(linear, m, found)))
        return signalPassFailure();
      if (found)
        mlps.push_back(m);
    }
    // Every linear must have a place in the scheme: a replicated linear
    // after a column-parallel one would read a per-rank slice.
    DenseSet<Operation *> covered(oProjs.begin(), oProjs.end());
    for (const Attention &a : attentions)
      for (LinearOp l : {a.q, a.k, a.v})
        covered.insert(l);
    for (const Mlp &m : mlps)
      for (LinearOp l : {m.gate, m.up, m.down})
        covered.insert(l);
    for (auto linear : body.getOps<LinearOp>()) {
      // A fused residual would be summed over the ranks (row-parallel) or
      // no longer match a column-parallel result.
      if (linear.getResidual()) {
        linear.emitOpError("ds-shard: this linear has a fused residual; run "
                           "ds-shard before ds-fuse-residual-add");
        return signalPassFailure();
      }
      if (!covered.contains(linear)) {
        linear.emitOpError("ds-shard: this linear is neither part of an "
                           "attention block nor of a gated MLP; cannot shard");
        return signalPassFailure();
      }
    }

    // Rewrite the weights and every ds.get_weight of them.
    DenseMap<StringAttr, RankedTensorType> newTypes;
    for (auto &[weight, s] : slices) {
      auto src = cast<SourceAttr>(weight.getSources()[0]);
      auto sliced = SourceAttr::get(
          &getContext(), src.getName(), src.getFile(), src.getDtype(),
          src.getShape(), s.axis, /*slice_start=*/0, s.size, s.stride,
          s.divisor);
      weight.setSourcesAttr(b.getArrayAttr({sliced}));
      RankedTensorType type = withDim(weight.getType(), s.axis, s.size);
      weight.setType(type);
      newTypes[weight.getSymNameAttr()] = type;
    }
    for (auto get : body.getOps<GetWeightOp>()) {
      auto it = newTypes.find(get.getNameAttr().getAttr());
      if (it != newTypes.end())
        get.getResult().setType(it->second);
    }

    // Rewrite the activations.
    OpBuilder builder(&getContext());
    auto setRows = [](Operation *op, int64_t rows) {
      op->getResult(0).setType(withDim(op->getResult(0).getType(), 1, rows));
    };
    for (Attention &a : attentions) {
      int64_t hq = a.attn.getNumHeads() / ranks;
      int64_t hkv = std::max<int64_t>(a.attn.getNumKvHeads() / ranks, 1);
      setRows(a.q, hq * a.attn.getHeadDim());
      setRows(a.k, hkv * a.attn.getHeadDim());
      setRows(a.v, hkv * a.attn.getVHeadDim());
      if (a.qRope) {
        setRows(a.qRope, hq * a.attn.getHeadDim());
        a.qRope.setNumHeads(hq);
      }
      if (a.kRope) {
        setRows(a.kRope, hkv * a.attn.getHeadDim());
        a.kRope.setNumHeads(hkv);
      }
      a.attn.setNumHeads(hq);
      a.attn.setNumKvHeads(hkv);
      setRows(a.attn, hq * a.attn.getVHeadDim());
      allReduceAfter(builder, a.o);
      if (auto cache =
              module.lookupSymbol<KvCacheOp>(a.attn.getCacheAttr().getAttr()))
        cache.setNumKvHeads(hkv);
    }
    for (Mlp &m : mlps) {
      int64_t rows = m.gate.getType().getDimSize(1) / ranks;
      for (Operation *op : {m.gate.getOperation(), m.up.getOperation(),
                            m.act.getOperation(), m.mul.getOperation()})
        setRows(op, rows);
      allReduceAfter(builder, m.down);
    }
    for (EmbeddingOp e : embeddings) {
      e.setVocabParallel(true);
      allReduceAfter(builder, e);
    }
    for (LogitsOp l : logits) {
      RankedTensorType full = l.getType();
      setRows(l, full.getDimSize(1) / ranks);
      builder.setInsertionPointAfter(l);
      auto gather = builder.create<AllGatherOp>(
          suffixed(l.getLoc(), "all_gather"), full, l.getResult(), builder.getStringAttr("tp"),
          builder.getI64IntegerAttr(-1));
      l.getResult().replaceAllUsesExcept(gather.getResult(), gather);
    }
  }
};

} // namespace
