//===- ExportUtils.cpp - Helpers of the plan exporter ----------------------===//
//
// Type and location conversions, attribute flattening (IR_CONTRACT.md plan
// attribute keys) and the kernel identity used for deduplication.
//
//===----------------------------------------------------------------------===//

#include "ExportUtils.h"

#include <algorithm>
#include <bit>
#include <cctype>

#include "ds/Dialect/Ds/IR/DsOps.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace ds {

FailureOr<DType> toDType(Type t) {
  if (t.isF32()) return DType::kF32;
  if (t.isF16()) return DType::kF16;
  if (t.isBF16()) return DType::kBF16;
  if (t.isFloat8E4M3FN()) return DType::kF8E4M3;
  if (t.isInteger(32)) return DType::kI32;
  if (t.isInteger(64)) return DType::kI64;
  if (t.isInteger(8)) return DType::kU8;
  if (t.isInteger(1)) return DType::kBool;
  return failure();
}

/// Name of an op for buffers and kernels: its NameLoc (the importer's
/// "l3.q_proj"), the names of a FusedLoc joined by '+', or "".
std::string locName(Location loc) {
  if (auto n = dyn_cast<NameLoc>(loc)) return n.getName().str();
  if (auto c = dyn_cast<CallSiteLoc>(loc)) return locName(c.getCallee());
  if (auto f = dyn_cast<FusedLoc>(loc)) {
    std::string out;
    for (Location l : f.getLocations()) {
      std::string part = locName(l);
      if (part.empty()) continue;
      out += (out.empty() ? "" : "+") + part;
    }
    return out;
  }
  return "";
}

/// "l12.q_proj" -> "q_proj", "l0.q_proj+l0.k_proj" -> "q_proj+k_proj" (names
/// of kernels shared by several layers).
std::string stripLayerPrefix(const std::string &name) {
  std::string out;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('+', start);
    if (end == std::string::npos) end = name.size();
    std::string part = name.substr(start, end - start);
    size_t i = 1;
    while (i < part.size() && std::isdigit(static_cast<unsigned char>(part[i]))) ++i;
    if (part.size() > 2 && part[0] == 'l' && i > 1 && i < part.size() && part[i] == '.') part = part.substr(i + 1);
    out += (out.empty() ? "" : "+") + part;
    start = end + 1;
  }
  return out;
}

std::string uniqueName(std::set<std::string> &taken, std::string name) {
  std::string candidate = name;
  for (int n = 1; taken.count(candidate); ++n) candidate = name + "." + std::to_string(n);
  taken.insert(candidate);
  return candidate;
}

std::vector<int64_t> rowShape(Type t) {
  auto shaped = cast<ShapedType>(t);
  return std::vector<int64_t>(shaped.getShape().begin() + 1, shaped.getShape().end());
}

namespace {

PlanAttr intAttr(std::string key, int64_t v) { return {std::move(key), plan::AttrType::int_, v}; }
PlanAttr floatAttr(std::string key, double v) {
  PlanAttr a{std::move(key), plan::AttrType::float_};
  a.f = v;
  return a;
}
PlanAttr stringAttr(std::string key, StringRef v) {
  PlanAttr a{std::move(key), plan::AttrType::string_};
  a.s = v.str();
  return a;
}

}  // namespace

/// The op's inherent attributes as plan attributes (IR_CONTRACT keys:
/// MLIR attribute names; #ds.rope is flattened to its fields), plus the
/// derived `residual` (int 1: the last input is a fused residual),
/// `prologue` (from ds.prologue), `epilogue` (from ds.epilogue) and
/// `rope_prologue` (int 1, from ds.rope_prologue) keys.
FailureOr<std::vector<PlanAttr>> flattenAttrs(Operation *op) {
  std::vector<PlanAttr> out;
  for (NamedAttribute na : op->getAttrs()) {
    StringRef key = na.getName().getValue();
    Attribute attr = na.getValue();
    if (key.starts_with("ds.") || key == "operandSegmentSizes" || isa<FlatSymbolRefAttr>(attr)) continue;
    if (auto rope = dyn_cast<mlir::ds::RopeAttr>(attr)) {
      out.push_back(floatAttr("theta", rope.getTheta().convertToDouble()));
      out.push_back(stringAttr("style", rope.getStyle()));
      out.push_back(intAttr("rotary_dim", rope.getRotaryDim()));
      out.push_back(stringAttr("scaling", rope.getScaling()));
      out.push_back(floatAttr("factor", rope.getFactor().convertToDouble()));
      out.push_back(intAttr("original_max_position", rope.getOriginalMaxPosition()));
      out.push_back(floatAttr("beta_fast", rope.getBetaFast().convertToDouble()));
      out.push_back(floatAttr("beta_slow", rope.getBetaSlow().convertToDouble()));
      out.push_back(floatAttr("mscale", rope.getMscale().convertToDouble()));
      out.push_back(floatAttr("mscale_all_dim", rope.getMscaleAllDim().convertToDouble()));
    } else if (isa<UnitAttr>(attr)) {
      out.push_back(intAttr(key.str(), 1));  // e.g. embedding vocab_parallel
    } else if (auto i = dyn_cast<IntegerAttr>(attr)) {
      out.push_back(intAttr(key.str(), i.getValue().getSExtValue()));
    } else if (auto f = dyn_cast<FloatAttr>(attr)) {
      out.push_back(floatAttr(key.str(), f.getValueAsDouble()));
    } else if (auto s = dyn_cast<StringAttr>(attr)) {
      out.push_back(stringAttr(key.str(), s.getValue()));
    } else if (auto ints = dyn_cast<DenseI64ArrayAttr>(attr)) {
      PlanAttr a{key.str(), plan::AttrType::ints};
      a.ints.assign(ints.asArrayRef().begin(), ints.asArrayRef().end());
      out.push_back(std::move(a));
    } else if (auto floats = dyn_cast<DenseF64ArrayAttr>(attr)) {
      PlanAttr a{key.str(), plan::AttrType::floats};
      a.floats.assign(floats.asArrayRef().begin(), floats.asArrayRef().end());
      out.push_back(std::move(a));
    } else {
      return op->emitOpError() << "attribute '" << key << "' cannot be written to the plan";
    }
  }
  // Collectives: group and axis are always written (defaults included).
  auto has = [&](StringRef k) {
    return std::any_of(out.begin(), out.end(), [&](const PlanAttr &a) { return a.key == k; });
  };
  if (isa<mlir::ds::AllReduceOp, mlir::ds::AllGatherOp>(op) && !has("group")) out.push_back(stringAttr("group", "tp"));
  if (isa<mlir::ds::AllGatherOp>(op) && !has("axis")) out.push_back(intAttr("axis", -1));
  // A fused residual is the last input; attr residual = 1 says so (the plan's
  // linear inputs are [x, w, bias?, residual?], all_reduce's [x, residual?]).
  Value residual;
  if (auto linear = dyn_cast<mlir::ds::LinearOp>(op)) residual = linear.getResidual();
  if (auto reduce = dyn_cast<mlir::ds::AllReduceOp>(op)) residual = reduce.getResidual();
  if (residual) out.push_back(intAttr("residual", 1));
  // The GEMV prologue mark of ds-gemv-prologue (a discardable attribute).
  if (Attribute prologue = op->getAttr("ds.prologue")) {
    auto s = dyn_cast<StringAttr>(prologue);
    if (!s || !isa<mlir::ds::LinearOp>(op))
      return op->emitOpError("ds.prologue must be a string on a ds.linear");
    out.push_back(stringAttr("prologue", s.getValue()));
  }
  // The GEMV epilogue mark of ds-gemv-epilogue (a discardable attribute).
  if (Attribute epilogue = op->getAttr("ds.epilogue")) {
    auto s = dyn_cast<StringAttr>(epilogue);
    if (!s || !isa<mlir::ds::LinearOp>(op))
      return op->emitOpError("ds.epilogue must be a string on a ds.linear");
    out.push_back(stringAttr("epilogue", s.getValue()));
  }
  // The attention rope prologue mark of ds-attention-rope (a discardable
  // unit attribute).
  if (Attribute rope = op->getAttr("ds.rope_prologue")) {
    if (!isa<UnitAttr>(rope) || !isa<mlir::ds::PagedAttentionOp>(op))
      return op->emitOpError("ds.rope_prologue must be a unit attribute on a ds.paged_attention");
    out.push_back(intAttr("rope_prologue", 1));
  }
  std::sort(out.begin(), out.end(), [](const PlanAttr &a, const PlanAttr &b) { return a.key < b.key; });
  return out;
}

/// Everything that makes two kernels different, for deduplication.
std::string kernelKey(const PlanKernel &k) {
  std::string key;
  llvm::raw_string_ostream os(key);
  auto attrs = [&](const std::vector<PlanAttr> &list) {
    for (const PlanAttr &a : list) {
      os << a.key << '=' << static_cast<int>(a.type) << ':' << a.i << ':' << std::bit_cast<uint64_t>(a.f) << ':'
         << a.s.size() << ':' << a.s << ':';
      for (int64_t v : a.ints) os << v << ',';
      for (double v : a.floats) os << std::bit_cast<uint64_t>(v) << ',';
      os << ';';
    }
  };
  os << static_cast<int>(k.kind) << '|' << k.impl << '|' << k.op << '|' << k.numInputs << '|';
  attrs(k.attrs);
  for (const PlanFusedOp &f : k.fusedOps) {
    os << '{' << f.op << '(';
    for (int32_t o : f.operands) os << o << ',';
    os << ')';
    attrs(f.attrs);
    for (int64_t d : f.rowShape) os << d << 'x';
    os << '}';
  }
  for (int32_t r : k.results) os << r << ',';
  if (k.generated) {
    const PlanGenerated &g = *k.generated;
    os << "|gen" << g.source.size() << g.source << g.entry << '|' << g.arch << '|' << g.blockDim << '|'
       << g.rowsPerBlock << '|' << g.binary.size() << g.binary;
    for (const std::string &o : g.nvrtcOptions) os << o << ';';
  }
  return key;
}

}  // namespace ds
