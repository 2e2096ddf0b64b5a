//===- DsOps.cpp - ds dialect operations ------------------------*- C++ -*-===//

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/SmallBitVector.h"

using namespace mlir;
using namespace mlir::ds;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {

/// Two dimensions agree unless both are static and differ.
bool dimsAgree(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// `[d0, d1]` for diagnostics.
std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::raw_string_ostream os(s);
  llvm::interleaveComma(shape, os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << '?';
    else
      os << d;
  });
  os << ']';
  return s;
}

/// Checks that `t` is rank 2 ([tokens, row]).
LogicalResult verifyRows(Operation *op, RankedTensorType t, StringRef what) {
  if (t.getRank() != 2)
    return op->emitOpError() << "expects " << what
                             << " of rank 2 [tokens, row], got "
                             << shapeStr(t.getShape());
  return success();
}

LogicalResult verifyPositive(Operation *op, StringRef name, int64_t value) {
  if (value <= 0)
    return op->emitOpError() << "expects positive " << name << ", got "
                             << value;
  return success();
}

} // namespace

#define GET_OP_CLASSES
#include "ds/Dialect/Ds/IR/DsOps.cpp.inc"

//===----------------------------------------------------------------------===//
// WeightOp
//===----------------------------------------------------------------------===//

LogicalResult WeightOp::verify() {
  auto type = dyn_cast<RankedTensorType>(getType());
  if (!type || !type.hasStaticShape())
    return emitOpError("expects a statically shaped tensor type");
  auto sources = getSources().getAsRange<SourceAttr>();
  if (getSources().empty())
    return emitOpError("expects at least one source");
  int64_t rank = type.getRank();
  int64_t axis = getConcatAxis();
  if (axis < 0 || axis >= rank)
    return emitOpError() << "concat_axis " << axis << " out of range for rank "
                         << rank;
  int64_t numSources = getSources().size();
  int64_t sum = 0;
  for (SourceAttr src : sources) {
    SmallVector<int64_t> shape = src.getSlicedShape();
    int64_t srcRank = shape.size();
    if (srcRank == rank - 1) {
      // Stacked along a new leading axis (one source per index).
      if (axis != 0 || type.getDimSize(0) != numSources ||
          ArrayRef<int64_t>(shape) != type.getShape().drop_front())
        return emitOpError()
               << "source '" << src.getName() << "' of shape "
               << shapeStr(shape) << " cannot be stacked into "
               << shapeStr(type.getShape())
               << " (needs concat_axis = 0 and one source per leading index)";
      continue;
    }
    if (srcRank != rank)
      return emitOpError() << "source '" << src.getName() << "' has rank "
                           << srcRank << ", weight has rank " << rank;
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis && shape[d] != type.getDimSize(d))
        return emitOpError()
               << "source '" << src.getName() << "' of shape "
               << shapeStr(shape) << " does not match "
               << shapeStr(type.getShape()) << " outside concat_axis "
               << axis;
    sum += shape[axis];
  }
  if (sum != 0 && sum != type.getDimSize(axis))
    return emitOpError() << "sources add up to " << sum << " along axis "
                         << axis << " but the weight has "
                         << type.getDimSize(axis);
  return success();
}

//===----------------------------------------------------------------------===//
// KvCacheOp
//===----------------------------------------------------------------------===//

LogicalResult KvCacheOp::verify() {
  if (failed(verifyPositive(*this, "num_layers", getNumLayers())) ||
      failed(verifyPositive(*this, "num_kv_heads", getNumKvHeads())) ||
      failed(verifyPositive(*this, "k_dim", getKDim())) ||
      failed(verifyPositive(*this, "page_size", getPageSize())))
    return failure();
  if (static_cast<int64_t>(getVDim()) < 0)
    return emitOpError("expects non-negative v_dim");
  if (!isa<FloatType>(getDtype()))
    return emitOpError() << "expects a float dtype, got " << getDtype();
  return success();
}

//===----------------------------------------------------------------------===//
// GetWeightOp
//===----------------------------------------------------------------------===//

LogicalResult
GetWeightOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto weight =
      symbolTable.lookupNearestSymbolFrom<WeightOp>(*this, getNameAttr());
  if (!weight)
    return emitOpError() << "'@" << getName()
                         << "' does not reference a ds.weight";
  if (weight.getType() != getType())
    return emitOpError() << "result type " << getType()
                         << " does not match the type of ds.weight @"
                         << getName() << ": " << weight.getType();
  return success();
}

//===----------------------------------------------------------------------===//
// EmbeddingOp
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  auto table = cast<RankedTensorType>(getTable().getType());
  auto result = getResult().getType();
  if (table.getRank() != 2)
    return emitOpError() << "expects a table of rank 2, got "
                         << shapeStr(table.getShape());
  if (failed(verifyRows(*this, result, "a result")))
    return failure();
  if (!dimsAgree(result.getDimSize(1), table.getDimSize(1)))
    return emitOpError() << "result row size " << result.getDimSize(1)
                         << " does not match the table row size "
                         << table.getDimSize(1);
  if (!dimsAgree(result.getDimSize(0), getIds().getType().getDimSize(0)))
    return emitOpError("result and ids have different token counts");
  return success();
}

//===----------------------------------------------------------------------===//
// AllReduceOp / AllGatherOp
//===----------------------------------------------------------------------===//

static LogicalResult verifyGroup(Operation *op, StringRef group) {
  if (group != "tp")
    return op->emitOpError() << "unknown communicator group \"" << group
                             << "\" (expected \"tp\")";
  return success();
}

/// The module's ds.tp_size, or 0 when it is not set.
static int64_t moduleTpSize(Operation *op) {
  auto module = op->getParentOfType<ModuleOp>();
  if (!module)
    return 0;
  auto attr = module->getAttrOfType<IntegerAttr>("ds.tp_size");
  return attr ? attr.getInt() : 0;
}

LogicalResult AllReduceOp::verify() {
  if (failed(verifyGroup(*this, getGroup())))
    return failure();
  return verifyRows(*this, getResult().getType(), "a result");
}

LogicalResult AllGatherOp::verify() {
  if (failed(verifyGroup(*this, getGroup())))
    return failure();
  auto x = getX().getType(), result = getResult().getType();
  if (getAxis() != -1 && getAxis() != x.getRank() - 1)
    return emitOpError() << "only gathers along the last axis (-1), got axis "
                         << getAxis();
  if (x.getRank() != result.getRank() || x.getRank() < 1)
    return emitOpError() << "expects input and result of the same rank, got "
                         << shapeStr(x.getShape()) << " and "
                         << shapeStr(result.getShape());
  if (x.getElementType() != result.getElementType())
    return emitOpError("expects the result element type to equal the input's");
  for (int64_t i = 0; i + 1 < x.getRank(); ++i)
    if (!dimsAgree(x.getDimSize(i), result.getDimSize(i)))
      return emitOpError() << "dimension " << i
                           << " differs between input and result";
  int64_t in = x.getShape().back(), out = result.getShape().back();
  if (ShapedType::isDynamic(in) || ShapedType::isDynamic(out))
    return emitOpError("expects a static last dimension");
  if (in <= 0 || out % in != 0)
    return emitOpError() << "result row size " << out
                         << " is not a multiple of the input row size " << in;
  if (int64_t tp = moduleTpSize(*this); tp > 0 && out != tp * in)
    return emitOpError() << "result row size " << out << " is not ds.tp_size ("
                         << tp << ") times the input row size " << in;
  return success();
}

//===----------------------------------------------------------------------===//
// RmsNormOp
//===----------------------------------------------------------------------===//

LogicalResult RmsNormOp::verify() {
  auto x = getX().getType();
  auto w = cast<RankedTensorType>(getWeight().getType());
  auto result = getResult().getType();
  if (x.getShape() != result.getShape())
    return emitOpError() << "expects the result shape to equal the input shape "
                         << shapeStr(x.getShape()) << ", got "
                         << shapeStr(result.getShape());
  if (w.getRank() != 1 || !dimsAgree(w.getDimSize(0), x.getShape().back()))
    return emitOpError() << "expects a weight of shape ["
                         << x.getShape().back() << "], got "
                         << shapeStr(w.getShape());
  if (getEps().convertToDouble() < 0)
    return emitOpError("expects non-negative eps");
  return success();
}

//===----------------------------------------------------------------------===//
// AddOp
//===----------------------------------------------------------------------===//

// `ds.add %a, %b : T` when the operands and the result are all of type T,
// otherwise `ds.add %a, %b : TA, TB -> TR`.
ParseResult AddOp::parse(OpAsmParser &parser, OperationState &result) {
  SmallVector<OpAsmParser::UnresolvedOperand, 2> operands;
  SmallVector<Type, 2> types(1);
  Type resultType;
  llvm::SMLoc loc = parser.getCurrentLocation();
  if (parser.parseOperandList(operands, /*requiredOperandCount=*/2) ||
      parser.parseOptionalAttrDict(result.attributes) || parser.parseColon() ||
      parser.parseType(types[0]))
    return failure();
  if (succeeded(parser.parseOptionalComma())) {
    types.emplace_back();
    if (parser.parseType(types[1]) || parser.parseArrow() ||
        parser.parseType(resultType))
      return failure();
  } else {
    types.push_back(types[0]);
    resultType = types[0];
  }
  result.addTypes(resultType);
  return parser.resolveOperands(operands, types, loc, result.operands);
}

void AddOp::print(OpAsmPrinter &p) {
  p << ' ' << getLhs() << ", " << getRhs();
  p.printOptionalAttrDict((*this)->getAttrs());
  p << " : ";
  Type lhs = getLhs().getType(), rhs = getRhs().getType();
  if (lhs == rhs && lhs == getType()) {
    p << lhs;
    return;
  }
  p << lhs << ", " << rhs << " -> " << getType();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::verify() {
  auto x = getX().getType();
  auto w = cast<RankedTensorType>(getWeight().getType());
  auto result = getResult().getType();
  if (failed(verifyRows(*this, x, "an input")) ||
      failed(verifyRows(*this, result, "a result")))
    return failure();
  if (w.getRank() != 2)
    return emitOpError() << "expects a weight of rank 2 [N, K], got "
                         << shapeStr(w.getShape());
  if (!dimsAgree(x.getDimSize(1), w.getDimSize(1)))
    return emitOpError() << "input row size K = " << x.getDimSize(1)
                         << " does not match the weight [N, K] = "
                         << shapeStr(w.getShape());
  if (!dimsAgree(result.getDimSize(1), w.getDimSize(0)))
    return emitOpError() << "result row size " << result.getDimSize(1)
                         << " does not match the weight's N = "
                         << w.getDimSize(0);
  if (!dimsAgree(result.getDimSize(0), x.getDimSize(0)))
    return emitOpError("result and input have different token counts");
  if (Value bias = getBias()) {
    auto b = cast<RankedTensorType>(bias.getType());
    if (b.getRank() != 1 || !dimsAgree(b.getDimSize(0), w.getDimSize(0)))
      return emitOpError() << "expects a bias of shape [" << w.getDimSize(0)
                           << "], got " << shapeStr(b.getShape());
  }
  if (Value residual = getResidual())
    if (residual.getType() != result)
      return emitOpError() << "expects a residual of the result type "
                           << result << ", got " << residual.getType();
  if (getQuant() != "none")
    return emitOpError() << "unsupported quant \"" << getQuant()
                         << "\" (supported: \"none\")";
  return success();
}

//===----------------------------------------------------------------------===//
// SliceOp
//===----------------------------------------------------------------------===//

LogicalResult SliceOp::verify() {
  auto x = getX().getType();
  auto result = getResult().getType();
  int64_t offset = static_cast<int64_t>(getOffset());
  int64_t size = static_cast<int64_t>(getSize());
  if (offset < 0 || size <= 0)
    return emitOpError() << "expects offset >= 0 and size > 0, got offset "
                         << offset << ", size " << size;
  if (x.getRank() != result.getRank() ||
      x.getElementType() != result.getElementType())
    return emitOpError("expects result of the input's rank and element type");
  int64_t row = x.getShape().back();
  if (!ShapedType::isDynamic(row) && offset + size > row)
    return emitOpError() << "slice [" << offset << ", " << offset + size
                         << ") exceeds the row size " << row;
  if (!dimsAgree(result.getShape().back(), size))
    return emitOpError() << "result row size " << result.getShape().back()
                         << " does not match size " << size;
  for (int64_t d = 0; d + 1 < x.getRank(); ++d)
    if (!dimsAgree(x.getDimSize(d), result.getDimSize(d)))
      return emitOpError("expects the leading dims of input and result to "
                         "match");
  return success();
}

OpFoldResult SliceOp::fold(FoldAdaptor) {
  // A slice covering the whole (static) row is the identity.
  if (getOffset() == 0 && getX().getType() == getType() &&
      !ShapedType::isDynamic(getType().getShape().back()))
    return getX();
  // slice(slice(x, a, _), b, n) == slice(x, a + b, n).
  if (auto inner = getX().getDefiningOp<SliceOp>()) {
    Builder b(getContext());
    setOffsetAttr(b.getI64IntegerAttr(static_cast<int64_t>(getOffset()) +
                                      static_cast<int64_t>(inner.getOffset())));
    getXMutable().assign(inner.getX());
    return getResult();
  }
  return {};
}

//===----------------------------------------------------------------------===//
// RopeOp
//===----------------------------------------------------------------------===//

LogicalResult RopeOp::verify() {
  auto x = getX().getType();
  if (failed(verifyRows(*this, x, "an input")) ||
      failed(verifyPositive(*this, "num_heads", getNumHeads())) ||
      failed(verifyPositive(*this, "head_dim", getHeadDim())))
    return failure();
  int64_t heads = getNumHeads(), headDim = getHeadDim();
  if (!dimsAgree(x.getDimSize(1), heads * headDim))
    return emitOpError() << "num_heads * head_dim = " << heads << " * "
                         << headDim << " does not match the row size "
                         << x.getDimSize(1);
  if (getRope().getRotaryDim() > headDim)
    return emitOpError() << "rotary_dim " << getRope().getRotaryDim()
                         << " exceeds head_dim " << headDim;
  if (!dimsAgree(x.getDimSize(0), getPositions().getType().getDimSize(0)))
    return emitOpError("input and positions have different token counts");
  return success();
}

//===----------------------------------------------------------------------===//
// KvCacheWriteOp
//===----------------------------------------------------------------------===//

namespace {

/// Looks up the ds.kv_cache `cache` and checks `layer` against it.
FailureOr<KvCacheOp> lookupCache(Operation *op, FlatSymbolRefAttr cache,
                                 int64_t layer,
                                 SymbolTableCollection &symbolTable) {
  auto kv = symbolTable.lookupNearestSymbolFrom<KvCacheOp>(op, cache);
  if (!kv)
    return op->emitOpError() << "'@" << cache.getValue()
                             << "' does not reference a ds.kv_cache";
  if (layer < 0 || layer >= static_cast<int64_t>(kv.getNumLayers()))
    return op->emitOpError() << "layer " << layer << " out of range: @"
                             << cache.getValue() << " has "
                             << kv.getNumLayers() << " layers";
  return kv;
}

} // namespace

LogicalResult KvCacheWriteOp::verify() {
  auto k = getK().getType(), v = getV().getType();
  if (failed(verifyRows(*this, k, "k")) || failed(verifyRows(*this, v, "v")))
    return failure();
  if (!dimsAgree(k.getDimSize(0), v.getDimSize(0)))
    return emitOpError("k and v have different token counts");
  return success();
}

LogicalResult
KvCacheWriteOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  FailureOr<KvCacheOp> kv =
      lookupCache(*this, getCacheAttr(), getLayer(), symbolTable);
  if (failed(kv))
    return failure();
  int64_t heads = kv->getNumKvHeads();
  int64_t kRow = heads * static_cast<int64_t>(kv->getKDim());
  int64_t vRow = heads * static_cast<int64_t>(kv->getVDim());
  if (!dimsAgree(getK().getType().getDimSize(1), kRow))
    return emitOpError() << "k row size " << getK().getType().getDimSize(1)
                         << " does not match num_kv_heads * k_dim = " << kRow;
  if (!dimsAgree(getV().getType().getDimSize(1), vRow))
    return emitOpError() << "v row size " << getV().getType().getDimSize(1)
                         << " does not match num_kv_heads * v_dim = " << vRow;
  return success();
}

//===----------------------------------------------------------------------===//
// PagedAttentionOp
//===----------------------------------------------------------------------===//

LogicalResult PagedAttentionOp::verify() {
  auto q = getQ().getType(), result = getResult().getType();
  if (failed(verifyRows(*this, q, "q")) ||
      failed(verifyRows(*this, result, "a result")) ||
      failed(verifyPositive(*this, "num_heads", getNumHeads())) ||
      failed(verifyPositive(*this, "num_kv_heads", getNumKvHeads())) ||
      failed(verifyPositive(*this, "head_dim", getHeadDim())) ||
      failed(verifyPositive(*this, "v_head_dim", getVHeadDim())))
    return failure();
  int64_t heads = getNumHeads(), kvHeads = getNumKvHeads();
  if (heads % kvHeads != 0)
    return emitOpError() << "num_heads " << heads
                         << " is not a multiple of num_kv_heads " << kvHeads;
  if (!dimsAgree(q.getDimSize(1), heads * static_cast<int64_t>(getHeadDim())))
    return emitOpError() << "q row size " << q.getDimSize(1)
                         << " does not match num_heads * head_dim = "
                         << heads * static_cast<int64_t>(getHeadDim());
  if (!dimsAgree(result.getDimSize(1),
                 heads * static_cast<int64_t>(getVHeadDim())))
    return emitOpError() << "result row size " << result.getDimSize(1)
                         << " does not match num_heads * v_head_dim = "
                         << heads * static_cast<int64_t>(getVHeadDim());
  if (!dimsAgree(q.getDimSize(0), result.getDimSize(0)) ||
      q.getElementType() != result.getElementType())
    return emitOpError("expects result with the token count and element "
                       "type of q");
  if (!(getScale().convertToDouble() > 0))
    return emitOpError("expects a positive scale");
  return success();
}

LogicalResult
PagedAttentionOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  FailureOr<KvCacheOp> kv =
      lookupCache(*this, getCacheAttr(), getLayer(), symbolTable);
  if (failed(kv))
    return failure();
  if (kv->getNumKvHeads() != getNumKvHeads() ||
      kv->getKDim() != getHeadDim() || kv->getVDim() != getVHeadDim())
    return emitOpError() << "num_kv_heads/head_dim/v_head_dim = "
                         << getNumKvHeads() << "/" << getHeadDim() << "/"
                         << getVHeadDim() << " do not match @"
                         << getCache() << " (" << kv->getNumKvHeads() << "/"
                         << kv->getKDim() << "/" << kv->getVDim() << ")";
  return success();
}

//===----------------------------------------------------------------------===//
// LogitsOp
//===----------------------------------------------------------------------===//

LogicalResult LogitsOp::verify() {
  auto x = getX().getType(), result = getResult().getType();
  auto w = cast<RankedTensorType>(getWeight().getType());
  if (failed(verifyRows(*this, x, "an input")) ||
      failed(verifyRows(*this, result, "a result")))
    return failure();
  if (w.getRank() != 2 || !dimsAgree(w.getDimSize(1), x.getDimSize(1)))
    return emitOpError() << "expects a weight [vocab, " << x.getDimSize(1)
                         << "], got " << shapeStr(w.getShape());
  if (!dimsAgree(result.getDimSize(1), w.getDimSize(0)))
    return emitOpError() << "result row size " << result.getDimSize(1)
                         << " does not match the vocab size "
                         << w.getDimSize(0);
  if (!dimsAgree(result.getDimSize(0), getRows().getType().getDimSize(0)))
    return emitOpError("expects one result row per logit row index");
  return success();
}

//===----------------------------------------------------------------------===//
// FusedGroupOp
//===----------------------------------------------------------------------===//

void FusedGroupOp::build(OpBuilder &builder, OperationState &state,
                         TypeRange resultTypes, ValueRange inputs) {
  state.addOperands(inputs);
  state.addTypes(resultTypes);
  Region *region = state.addRegion();
  auto *block = new Block();
  region->push_back(block);
  for (Value input : inputs)
    block->addArgument(input.getType(), input.getLoc());
}

YieldOp FusedGroupOp::getYield() {
  return cast<YieldOp>(getBodyBlock().getTerminator());
}

bool FusedGroupOp::isFusable(Operation *op) {
  return isa<RmsNormOp, AddOp, MulOp, SiluOp, RopeOp, SliceOp,
             KvCacheWriteOp>(op);
}

LogicalResult FusedGroupOp::verify() { return success(); }

LogicalResult FusedGroupOp::verifyRegions() {
  Block &block = getBodyBlock();
  if (block.getNumArguments() != getInputs().size())
    return emitOpError() << "has " << getInputs().size() << " operands but "
                         << block.getNumArguments() << " block arguments";
  for (auto [i, input, arg] : llvm::enumerate(getInputs(), block.getArguments()))
    if (input.getType() != arg.getType())
      return emitOpError() << "operand " << i << " of type " << input.getType()
                           << " does not match block argument type "
                           << arg.getType();
  auto yield = dyn_cast<YieldOp>(block.getTerminator());
  if (!yield)
    return emitOpError("expects the body to end with ds.yield");
  if (yield.getValues().getTypes() != getResultTypes())
    return emitOpError("ds.yield types do not match the result types");
  for (Operation &op : block.without_terminator())
    if (!isFusable(&op))
      return op.emitOpError("is not allowed inside ds.fused_group (only "
                            "rms_norm, add, mul, silu, rope, slice, "
                            "kv_cache_write)");
  return success();
}

namespace {

/// Forwards results that yield a block argument or repeat another result,
/// then drops unused results and unused or duplicate operands.
struct SimplifyFusedGroup : public OpRewritePattern<FusedGroupOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(FusedGroupOp group,
                                PatternRewriter &rewriter) const override {
    bool changed = false;
    Block &block = group.getBodyBlock();
    YieldOp yield = group.getYield();

    // Results: forward block arguments and duplicates.
    DenseMap<Value, unsigned> firstYield;
    for (auto [i, value] : llvm::enumerate(yield.getValues())) {
      Value result = group.getResult(i);
      if (result.use_empty())
        continue;
      if (auto arg = dyn_cast<BlockArgument>(value)) {
        rewriter.replaceAllUsesWith(result,
                                    group.getInputs()[arg.getArgNumber()]);
        changed = true;
        continue;
      }
      auto [it, inserted] = firstYield.try_emplace(value, i);
      if (!inserted) {
        rewriter.replaceAllUsesWith(result, group.getResult(it->second));
        changed = true;
      }
    }

    // Operands: merge duplicates, drop unused ones.
    DenseMap<Value, BlockArgument> firstArg;
    for (auto [input, arg] : llvm::zip(group.getInputs(), block.getArguments())) {
      auto [it, inserted] = firstArg.try_emplace(input, arg);
      if (!inserted && !arg.use_empty()) {
        rewriter.replaceAllUsesWith(arg, it->second);
        changed = true;
      }
    }
    llvm::SmallBitVector keepResult(group.getNumResults());
    for (OpResult result : group.getResults())
      keepResult[result.getResultNumber()] = !result.use_empty();
    llvm::SmallBitVector keepInput(group.getInputs().size());
    for (BlockArgument arg : block.getArguments())
      keepInput[arg.getArgNumber()] = !arg.use_empty();
    if (keepResult.all() && keepInput.all())
      return success(changed);

    SmallVector<Value> inputs;
    SmallVector<Type> resultTypes;
    SmallVector<Value> yielded;
    for (auto [i, input] : llvm::enumerate(group.getInputs()))
      if (keepInput[i])
        inputs.push_back(input);
    for (auto [i, value] : llvm::enumerate(yield.getValues()))
      if (keepResult[i]) {
        resultTypes.push_back(value.getType());
        yielded.push_back(value);
      }
    rewriter.setInsertionPoint(group);
    auto newGroup = rewriter.create<FusedGroupOp>(group.getLoc(), resultTypes,
                                                  inputs);
    newGroup->setDiscardableAttrs(group->getDiscardableAttrDictionary());
    Block &newBlock = newGroup.getBodyBlock();
    SmallVector<Value> argMap;
    unsigned next = 0;
    for (unsigned i = 0; i < block.getNumArguments(); ++i)
      argMap.push_back(keepInput[i] ? Value(newBlock.getArgument(next++))
                                    : Value());
    rewriter.mergeBlocks(&block, &newBlock, argMap);
    rewriter.setInsertionPoint(yield);
    rewriter.replaceOpWithNewOp<YieldOp>(yield, yielded);
    next = 0;
    for (OpResult result : group.getResults())
      if (keepResult[result.getResultNumber()])
        rewriter.replaceAllUsesWith(result, newGroup.getResult(next++));
    rewriter.eraseOp(group);
    return success();
  }
};

} // namespace

void FusedGroupOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                               MLIRContext *context) {
  results.add<SimplifyFusedGroup>(context);
}
