//===- FuseWeights.cpp - merge linears sharing their input ------*- C++ -*-===//
//
// --ds-fuse-weights: q/k/v (gate/up) linears over the same input become one
// linear over a concatenated weight, followed by slices.
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/Passes.h"

#include "ds/Dialect/Ds/IR/DsOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringExtras.h"

namespace mlir::ds {
#define GEN_PASS_DEF_DSFUSEWEIGHTS
#include "ds/Transforms/Passes.h.inc"
} // namespace mlir::ds

using namespace mlir;
using namespace mlir::ds;

namespace {

/// The ds.weight behind `value` if it is a ds.get_weight result.
WeightOp getWeightSymbol(Value value, SymbolTable &symbols) {
  auto get = value.getDefiningOp<GetWeightOp>();
  if (!get)
    return {};
  return symbols.lookup<WeightOp>(get.getName());
}

/// A linear can be merged if it has no residual and its weight (and bias)
/// are whole 2-D (1-D) weights whose sources concatenate on axis 0.
bool isCandidate(LinearOp linear, SymbolTable &symbols) {
  auto concatenable = [&](Value value, int64_t rank) {
    WeightOp weight = getWeightSymbol(value, symbols);
    if (!weight || weight.getTensorType().getRank() != rank)
      return false;
    for (auto src : weight.getSources().getAsRange<SourceAttr>())
      if (static_cast<int64_t>(src.getShape().size()) != rank)
        return false;
    return weight.getConcatAxis() == 0 || weight.getSources().size() == 1;
  };
  // A fused residual (ds-fuse-residual-add runs later) is per linear.
  if (linear.getResidual() || !concatenable(linear.getWeight(), 2))
    return false;
  return !linear.getBias() || concatenable(linear.getBias(), 1);
}

/// Key that linears must share to be merged (besides their input).
std::string mergeKey(LinearOp linear) {
  std::string key;
  llvm::raw_string_ostream os(key);
  os << linear.getQuant() << '|'
     << cast<RankedTensorType>(linear.getWeight().getType()).getElementType()
     << '|' << linear.getType().getElementType() << '|'
     << (linear.getBias()
             ? cast<RankedTensorType>(linear.getBias().getType())
                   .getElementType()
             : Type());
  return key;
}

/// Name of the merged weight: the one '.'-separated component that differs is
/// joined ("q_proj","k_proj","v_proj" -> "qkv_proj"; "gate_proj","up_proj" ->
/// "gate_up_proj"); otherwise "<first>.fused".
std::string mergedName(ArrayRef<StringRef> names) {
  SmallVector<SmallVector<StringRef>> parts;
  for (StringRef name : names) {
    SmallVector<StringRef> p;
    name.split(p, '.');
    parts.push_back(p);
  }
  size_t n = parts.front().size();
  int differing = -1;
  for (auto &p : parts)
    if (p.size() != n)
      return (names.front() + ".fused").str();
  for (size_t i = 0; i < n; ++i) {
    bool same = llvm::all_of(parts, [&](auto &p) { return p[i] == parts[0][i]; });
    if (same)
      continue;
    if (differing != -1)
      return (names.front() + ".fused").str();
    differing = i;
  }
  if (differing == -1)
    return (names.front() + ".fused").str();
  // Common suffix of the differing components, e.g. "_proj".
  SmallVector<StringRef> comps;
  for (auto &p : parts)
    comps.push_back(p[differing]);
  StringRef suffix = comps.front();
  for (StringRef c : comps) {
    while (!c.ends_with(suffix))
      suffix = suffix.drop_front();
  }
  if (!suffix.empty() && !suffix.starts_with("_"))
    suffix = suffix.contains('_') ? suffix.substr(suffix.find('_')) : "";
  SmallVector<StringRef> stems;
  bool allSingle = true;
  for (StringRef c : comps) {
    stems.push_back(c.drop_back(suffix.size()));
    allSingle &= stems.back().size() == 1;
  }
  std::string joined = llvm::join(stems, allSingle ? "" : "_");
  SmallVector<StringRef> out(parts.front());
  std::string component = joined + suffix.str();
  out[differing] = component;
  return llvm::join(out, ".");
}

/// Creates the concatenation of `weights` (axis 0) as a new ds.weight.
WeightOp createMergedWeight(OpBuilder &builder, SymbolTable &symbols,
                            ArrayRef<WeightOp> weights) {
  SmallVector<Attribute> sources;
  SmallVector<StringRef> names;
  int64_t rows = 0;
  for (WeightOp w : weights) {
    llvm::append_range(sources, w.getSources());
    names.push_back(w.getSymName());
    rows += w.getTensorType().getDimSize(0);
  }
  WeightOp front = weights.front();
  RankedTensorType first = front.getTensorType();
  SmallVector<int64_t> shape(first.getShape());
  shape[0] = rows;
  auto type = RankedTensorType::get(shape, first.getElementType());
  builder.setInsertionPoint(front);
  auto merged = builder.create<WeightOp>(
      front.getLoc(), builder.getStringAttr(mergedName(names)),
      builder.getArrayAttr(sources), builder.getI64IntegerAttr(0),
      TypeAttr::get(type));
  symbols.insert(merged); // renames on collision
  return merged;
}

struct FuseWeightsPass
    : public mlir::ds::impl::DsFuseWeightsBase<FuseWeightsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SetVector<WeightOp> touched;

    // Blocks in walk order; within a block, linears grouped by
    // (input, merge key) in program order.
    SmallVector<SmallVector<LinearOp>> groups;
    module.walk([&](Block *block) {
      llvm::MapVector<std::pair<Value, Attribute>, SmallVector<LinearOp>>
          byInput;
      for (auto linear : block->getOps<LinearOp>())
        if (isCandidate(linear, symbols))
          byInput[{linear.getX(),
                   StringAttr::get(&getContext(), mergeKey(linear))}]
              .push_back(linear);
      for (auto &entry : byInput)
        if (entry.second.size() >= 2)
          groups.push_back(std::move(entry.second));
    });

    for (auto &group : groups) {
      // Bias presence must agree; split off the linears that do not match
      // the first one.
      bool hasBias = static_cast<bool>(group.front().getBias());
      SmallVector<LinearOp> members;
      for (LinearOp l : group)
        if (static_cast<bool>(l.getBias()) == hasBias)
          members.push_back(l);
      if (members.size() < 2)
        continue;

      SmallVector<WeightOp> weights, biases;
      for (LinearOp l : members) {
        weights.push_back(getWeightSymbol(l.getWeight(), symbols));
        if (hasBias)
          biases.push_back(getWeightSymbol(l.getBias(), symbols));
      }
      OpBuilder builder(module.getContext());
      WeightOp mergedW = createMergedWeight(builder, symbols, weights);
      WeightOp mergedB =
          hasBias ? createMergedWeight(builder, symbols, biases) : WeightOp();

      LinearOp first = members.front();
      builder.setInsertionPoint(first);
      Location loc = builder.getFusedLoc(llvm::to_vector(
          llvm::map_range(members, [](LinearOp l) { return l.getLoc(); })));
      Value w = builder.create<GetWeightOp>(loc, mergedW.getType(),
                                            mergedW.getSymName());
      Value b = hasBias ? builder.create<GetWeightOp>(loc, mergedB.getType(),
                                                      mergedB.getSymName())
                        : Value();
      int64_t total = mergedW.getTensorType().getDimSize(0);
      auto resultType = RankedTensorType::get(
          {first.getType().getDimSize(0), total},
          first.getType().getElementType());
      auto fused = builder.create<LinearOp>(loc, resultType, first.getX(), w,
                                            b, first.getQuantAttr());
      int64_t offset = 0;
      for (LinearOp l : members) {
        int64_t size = l.getType().getDimSize(1);
        auto slice = builder.create<SliceOp>(l.getLoc(), l.getType(), fused,
                                             builder.getI64IntegerAttr(offset),
                                             builder.getI64IntegerAttr(size));
        offset += size;
        l.getResult().replaceAllUsesWith(slice.getResult());
      }
      for (LinearOp l : members) {
        SmallVector<Operation *, 2> defs;
        for (Value v : {l.getWeight(), l.getBias()})
          if (v) {
            touched.insert(getWeightSymbol(v, symbols));
            defs.push_back(v.getDefiningOp());
          }
        l.erase();
        for (Operation *def : defs)
          if (def->use_empty())
            def->erase();
      }
      numFused += members.size() - 1;
    }

    // Erase the original weights nobody reads any more.
    for (WeightOp weight : touched)
      if (SymbolTable::symbolKnownUseEmpty(weight, module))
        symbols.erase(weight);
  }
};

} // namespace
