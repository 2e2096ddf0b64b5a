//===- ProgramExporter.cpp - ds IR -> plan program ------------------------===//
//
// Walks the final module: ds.weight -> weights, ds.kv_cache -> KV layout, the
// top-level ops of @forward -> arena buffers (from ds.offsets / ds.sizes),
// kernels (deduplicated: identical kernels of different layers are shared) and
// instructions with ValueRefs as IR_CONTRACT.md specifies.
//
//===----------------------------------------------------------------------===//

#include "ProgramExporter.h"

#include <algorithm>
#include <map>
#include <set>

#include "ExportUtils.h"
#include "ds/Dialect/Ds/IR/DsOps.h"
#include "ds/Transforms/GemvMarks.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace ds {
namespace {

constexpr llvm::StringLiteral kBuiltinOps[] = {"embedding", "rms_norm", "linear", "slice", "rope",
                                               "kv_cache_write", "paged_attention", "silu", "mul",
                                               "add", "logits", "all_reduce", "all_gather"};
constexpr llvm::StringLiteral kFusableOps[] = {"rms_norm", "add", "mul", "silu", "rope", "slice",
                                               "kv_cache_write"};

template <size_t N>
bool contains(const llvm::StringLiteral (&list)[N], StringRef name) {
  return llvm::is_contained(list, name);
}

class Collector {
public:
  explicit Collector(ModuleOp module) : module(module) {}
  FailureOr<PlanProgram> run();

private:
  LogicalResult moduleAttrs();
  LogicalResult symbols();
  LogicalResult weightOp(mlir::ds::WeightOp op);
  LogicalResult computeOp(Operation *op, int32_t instr);
  LogicalResult fusedGroup(Operation *op, PlanKernel &kernel, PlanInstr &ins);
  LogicalResult generatedCode(Operation *op, PlanKernel &kernel);
  LogicalResult arenaResults(Operation *op, int32_t instr, PlanInstr &ins);
  FailureOr<plan::ValueRef> ref(Operation *user, Value v);
  int32_t addKernel(PlanKernel kernel, const std::string &name);
  void nameKernels();

  ModuleOp module;
  PlanProgram out;
  func::FuncOp forward;
  llvm::DenseMap<Value, plan::ValueRef> values;
  llvm::DenseMap<Operation *, int32_t> instrOf;
  llvm::StringMap<int32_t> weightIndex;
  std::map<std::string, int32_t> kernelByKey;
  std::vector<std::vector<std::string>> kernelUserNames;
  std::set<std::string> bufferNames;
  bool haveLogits = false;
};

LogicalResult Collector::moduleAttrs() {
  auto target = module->getAttrOfType<StringAttr>("ds.target");
  auto act = module->getAttrOfType<TypeAttr>("ds.activation_dtype");
  if (!target || !act)
    return module.emitError("module lacks ds.target / ds.activation_dtype (not a dscc import?)");
  out.target = target.getValue().str();
  FailureOr<DType> actType = toDType(act.getValue());
  if (failed(actType)) return module.emitError() << "unsupported activation dtype " << act.getValue();
  out.activationDtype = *actType;
  auto maxLen = module->getAttrOfType<IntegerAttr>("ds.max_model_len");
  if (!maxLen || maxLen.getInt() <= 0) return module.emitError("module lacks a positive ds.max_model_len");
  out.maxModelLen = maxLen.getInt();
  auto bytes = module->getAttrOfType<IntegerAttr>("ds.arena_bytes_per_token");
  auto align = module->getAttrOfType<IntegerAttr>("ds.arena_alignment");
  if (!bytes || !align)
    return module.emitError("module lacks ds.arena_bytes_per_token / ds.arena_alignment; run "
                            "ds-plan-buffers before exporting");
  out.arenaBytesPerToken = bytes.getInt();
  out.arenaAlignment = align.getInt();
  return success();
}

LogicalResult Collector::weightOp(mlir::ds::WeightOp op) {
  PlanWeight w;
  w.name = op.getSymName().str();
  RankedTensorType type = op.getTensorType();
  FailureOr<DType> dt = toDType(type.getElementType());
  if (failed(dt)) return op.emitOpError() << "has an element type the plan cannot express";
  w.dtype = *dt;
  w.shape.assign(type.getShape().begin(), type.getShape().end());
  w.concatAxis = static_cast<int64_t>(op.getConcatAxis());
  for (Attribute a : op.getSources()) {
    auto s = cast<mlir::ds::SourceAttr>(a);
    PlanSource src;
    src.name = s.getName().str();
    src.file = s.getFile().str();
    FailureOr<DType> sdt = toDType(s.getDtype());
    if (failed(sdt)) return op.emitOpError() << "source '" << s.getName() << "' has an unsupported dtype";
    src.dtype = *sdt;
    src.shape.assign(s.getShape().begin(), s.getShape().end());
    src.sliceAxis = s.getSliceAxis();
    src.sliceStart = s.getSliceStart();
    src.sliceSize = s.getSliceSize();
    src.sliceRankStride = s.getSliceRankStride();
    src.sliceRankDivisor = s.getSliceRankDivisor();
    w.sources.push_back(std::move(src));
  }
  weightIndex[w.name] = static_cast<int32_t>(out.weights.size());
  out.weights.push_back(std::move(w));
  return success();
}

LogicalResult Collector::symbols() {
  bool haveKv = false;
  for (Operation &op : module.getBody()->getOperations()) {
    if (auto w = dyn_cast<mlir::ds::WeightOp>(op)) {
      if (failed(weightOp(w))) return failure();
    } else if (auto kv = dyn_cast<mlir::ds::KvCacheOp>(op)) {
      if (haveKv) return kv.emitOpError("a second KV cache is not supported by the plan yet");
      haveKv = true;
      FailureOr<DType> dt = toDType(kv.getDtype());
      if (failed(dt)) return kv.emitOpError("has a dtype the plan cannot express");
      out.kvDtype = *dt;
      out.kvPageSize = static_cast<int32_t>(kv.getPageSize());
      PlanKvLayer layer{static_cast<int32_t>(kv.getKDim()), static_cast<int32_t>(kv.getVDim()),
                        static_cast<int32_t>(kv.getNumKvHeads())};
      out.kvLayers.assign(kv.getNumLayers(), layer);
    } else if (auto f = dyn_cast<func::FuncOp>(op); f && f.getSymName() == "forward") {
      forward = f;
    } else {
      return op.emitOpError("is not supported by the plan exporter");
    }
  }
  if (!haveKv) return module.emitError("module has no ds.kv_cache");
  if (!forward || forward.isExternal()) return module.emitError("module has no func.func @forward body");
  if (forward.getNumArguments() != 3 || forward.getNumResults() != 1)
    return forward.emitOpError("must take (tokens, positions, logit_rows) and return the logits");
  return success();
}

FailureOr<plan::ValueRef> Collector::ref(Operation *user, Value v) {
  auto it = values.find(v);
  if (it == values.end())
    return user->emitOpError("reads a value the plan exporter cannot place (not an input, weight or arena buffer)");
  return it->second;
}

LogicalResult Collector::arenaResults(Operation *op, int32_t instr, PlanInstr &ins) {
  if (op->getNumResults() == 0) return success();
  auto offsets = op->getAttrOfType<DenseI64ArrayAttr>("ds.offsets");
  auto sizes = op->getAttrOfType<DenseI64ArrayAttr>("ds.sizes");
  if (!offsets || !sizes || offsets.size() != static_cast<int64_t>(op->getNumResults()) ||
      sizes.size() != offsets.size())
    return op->emitOpError("has no ds.offsets / ds.sizes for its results; run ds-plan-buffers before exporting");
  for (OpResult r : op->getResults()) {
    PlanBuffer buf;
    // A fused group's result is named after the op that computes it.
    std::string name;
    if (op->getNumRegions() == 1 && !op->getRegion(0).empty()) {
      Operation *term = op->getRegion(0).front().getTerminator();
      if (Operation *def = term->getOperand(r.getResultNumber()).getDefiningOp()) name = locName(def->getLoc());
    }
    if (name.empty()) {
      name = locName(op->getLoc());
      if (name.empty()) name = op->getName().stripDialect().str();
      if (op->getNumResults() > 1) name += "." + std::to_string(r.getResultNumber());
    }
    buf.name = uniqueName(bufferNames, name);
    FailureOr<DType> dt = toDType(cast<ShapedType>(r.getType()).getElementType());
    if (failed(dt)) return op->emitOpError("has a result type the plan cannot express");
    buf.dtype = *dt;
    buf.rowShape = rowShape(r.getType());
    buf.bytesPerToken = sizes[r.getResultNumber()];
    buf.offsetPerToken = offsets[r.getResultNumber()];
    buf.firstInstr = buf.lastInstr = instr;
    for (Operation *user : r.getUsers()) {
      auto u = instrOf.find(user);
      if (u != instrOf.end()) buf.lastInstr = std::max(buf.lastInstr, u->second);
    }
    // The accesses the decode marks add, as ds-plan-buffers counted them (GemvMarks.h).
    for (Operation *reader : mlir::ds::gemvPrologueReaders(r))
      if (auto l = instrOf.find(reader); l != instrOf.end()) buf.lastInstr = std::max(buf.lastInstr, l->second);
    for (Operation *reader : mlir::ds::attentionRopeReaders(r))
      if (auto l = instrOf.find(reader); l != instrOf.end()) buf.lastInstr = std::max(buf.lastInstr, l->second);
    if (Operation *writer = mlir::ds::gemvEpilogueWriter(r))
      if (auto l = instrOf.find(writer); l != instrOf.end()) buf.firstInstr = std::min(buf.firstInstr, l->second);
    plan::ValueRef vr(plan::ValueKind::arena, static_cast<int32_t>(out.buffers.size()));
    values[r] = vr;
    ins.outputs.push_back(vr);
    out.buffers.push_back(std::move(buf));
  }
  return success();
}

LogicalResult Collector::computeOp(Operation *op, int32_t instr) {
  StringRef name = op->getName().stripDialect();
  bool fused = isa<mlir::ds::FusedGroupOp>(op);
  if (op->getDialect() != module->getContext()->getLoadedDialect<mlir::ds::DsDialect>() ||
      (!fused && !contains(kBuiltinOps, name)))
    return op->emitOpError("is not supported by the plan exporter");
  auto impl = op->getAttrOfType<StringAttr>("ds.impl");
  if (!impl) return op->emitOpError("has no ds.impl; run ds-select-kernels before exporting");

  PlanKernel kernel;
  kernel.impl = impl.getValue().str();
  PlanInstr ins;
  for (Value v : op->getOperands()) {
    FailureOr<plan::ValueRef> r = ref(op, v);
    if (failed(r)) return failure();
    ins.inputs.push_back(*r);
  }
  if (isa<mlir::ds::LogitsOp>(op)) {
    if (haveLogits) return op->emitOpError("a second ds.logits is not supported by the plan");
    haveLogits = true;
  }
  // Step output 0 is the value @forward returns: the ds.logits result, or
  // under tensor parallelism the ds.all_gather of it (the ds.logits result
  // then lives in the arena).
  if (op->getNumResults() == 1 && op->getResult(0) == forward.getBody().front().getTerminator()->getOperand(0)) {
    plan::ValueRef vr(plan::ValueKind::output, 0);
    values[op->getResult(0)] = vr;
    ins.outputs.push_back(vr);
  } else if (failed(arenaResults(op, instr, ins))) {
    return failure();
  }

  if (fused) {
    kernel.kind = plan::KernelKind::fused;
    if (failed(fusedGroup(op, kernel, ins))) return failure();
  } else {
    kernel.op = name.str();
    FailureOr<std::vector<PlanAttr>> attrs = flattenAttrs(op);
    if (failed(attrs)) return failure();
    kernel.attrs = std::move(*attrs);
    if (auto w = dyn_cast<mlir::ds::KvCacheWriteOp>(op))
      ins.outputs.push_back(plan::ValueRef(plan::ValueKind::kv_cache, static_cast<int32_t>(w.getLayer())));
    if (auto a = dyn_cast<mlir::ds::PagedAttentionOp>(op))
      ins.inputs.push_back(plan::ValueRef(plan::ValueKind::kv_cache, static_cast<int32_t>(a.getLayer())));
  }
  std::string kname = locName(op->getLoc());
  if (kname.empty()) kname = fused ? "fused" : name.str();
  ins.kernel = addKernel(std::move(kernel), kname);
  out.program.push_back(std::move(ins));
  return success();
}

LogicalResult Collector::fusedGroup(Operation *op, PlanKernel &kernel, PlanInstr &ins) {
  Block &block = op->getRegion(0).front();
  kernel.numInputs = static_cast<int32_t>(op->getNumOperands());
  llvm::DenseMap<Value, int32_t> local;
  for (BlockArgument arg : block.getArguments()) local[arg] = static_cast<int32_t>(arg.getArgNumber());
  int32_t next = 0;
  for (Operation &inner : block.without_terminator()) {
    StringRef name = inner.getName().stripDialect();
    if (inner.getDialect() != op->getDialect() || !contains(kFusableOps, name) || inner.getNumResults() > 1)
      return inner.emitOpError("cannot be written to the plan as part of a fused group");
    PlanFusedOp f;
    f.op = name.str();
    for (Value v : inner.getOperands()) {
      auto it = local.find(v);
      if (it == local.end()) return inner.emitOpError("reads a value defined outside its fused group");
      f.operands.push_back(it->second);
    }
    FailureOr<std::vector<PlanAttr>> attrs = flattenAttrs(&inner);
    if (failed(attrs)) return failure();
    f.attrs = std::move(*attrs);
    if (inner.getNumResults() == 1) {
      f.rowShape = rowShape(inner.getResult(0).getType());
      local[inner.getResult(0)] = kernel.numInputs + next;
    }
    if (auto w = dyn_cast<mlir::ds::KvCacheWriteOp>(inner))
      ins.outputs.push_back(plan::ValueRef(plan::ValueKind::kv_cache, static_cast<int32_t>(w.getLayer())));
    kernel.fusedOps.push_back(std::move(f));
    ++next;
  }
  for (Value v : block.getTerminator()->getOperands()) {
    auto it = local.find(v);
    if (it == local.end() || it->second < kernel.numInputs)
      return op->emitOpError("yields a group input directly, which the plan cannot express");
    kernel.results.push_back(it->second - kernel.numInputs);
  }
  return generatedCode(op, kernel);
}

LogicalResult Collector::generatedCode(Operation *op, PlanKernel &kernel) {
  auto source = op->getAttrOfType<StringAttr>("ds.cuda_source");
  if (!source) {
    if (out.target != "cpu")
      return op->emitOpError("has no generated CUDA code for target '")
             << out.target << "'; run ds-codegen-cuda before exporting";
    return success();
  }
  PlanGenerated g;
  g.source = source.getValue().str();
  auto entry = op->getAttrOfType<StringAttr>("ds.cuda_entry");
  auto arch = op->getAttrOfType<StringAttr>("ds.cuda_arch");
  auto blockDim = op->getAttrOfType<IntegerAttr>("ds.block_dim");
  auto rows = op->getAttrOfType<IntegerAttr>("ds.rows_per_block");
  Attribute binary = op->getAttr("ds.cuda_binary");
  if (!entry || !arch || !blockDim || !rows || !binary)
    return op->emitOpError("has ds.cuda_source but lacks ds.cuda_entry, ds.cuda_arch, ds.cuda_binary, "
                           "ds.block_dim or ds.rows_per_block");
  g.entry = entry.getValue().str();
  g.arch = arch.getValue().str();
  g.blockDim = static_cast<int32_t>(blockDim.getInt());
  g.rowsPerBlock = static_cast<int32_t>(rows.getInt());
  if (auto s = dyn_cast<StringAttr>(binary)) {
    g.binary = s.getValue().str();
  } else if (auto r = dyn_cast<DenseResourceElementsAttr>(binary)) {
    AsmResourceBlob *blob = r.getRawHandle().getBlob();
    if (!blob) return op->emitOpError("ds.cuda_binary refers to a missing resource blob");
    ArrayRef<char> data = blob->getData();
    g.binary.assign(data.begin(), data.end());
  } else if (auto d = dyn_cast<DenseElementsAttr>(binary)) {
    ArrayRef<char> data = d.getRawData();
    g.binary.assign(data.begin(), data.end());
  } else {
    return op->emitOpError("ds.cuda_binary must be a string, dense or dense_resource attribute");
  }
  if (auto opts = op->getAttrOfType<ArrayAttr>("ds.nvrtc_options"))
    for (Attribute o : opts)
      if (auto s = dyn_cast<StringAttr>(o)) g.nvrtcOptions.push_back(s.getValue().str());
  kernel.generated = std::move(g);
  return success();
}

int32_t Collector::addKernel(PlanKernel kernel, const std::string &name) {
  std::string key = kernelKey(kernel);
  auto [it, inserted] = kernelByKey.emplace(key, static_cast<int32_t>(out.kernels.size()));
  if (inserted) {
    out.kernels.push_back(std::move(kernel));
    kernelUserNames.emplace_back();
  }
  kernelUserNames[it->second].push_back(name);
  return it->second;
}

/// A kernel used by one instruction keeps that op's name ("l3.attn"). A
/// shared one drops the layer prefix if that gives one name for all users
/// ("q_proj"), else it is named after what it computes ("linear",
/// "add_rms_norm").
void Collector::nameKernels() {
  std::set<std::string> taken;
  for (size_t k = 0; k < out.kernels.size(); ++k) {
    const PlanKernel &kernel = out.kernels[k];
    const std::vector<std::string> &users = kernelUserNames[k];
    std::string name = users.front();
    if (users.size() > 1) {
      name = stripLayerPrefix(users.front());
      for (const std::string &u : users) {
        if (stripLayerPrefix(u) == name) continue;
        name = kernel.op;
        if (kernel.kind == plan::KernelKind::fused) {
          name.clear();
          for (const PlanFusedOp &f : kernel.fusedOps) name += (name.empty() ? "" : "_") + f.op;
        }
        break;
      }
    }
    out.kernels[k].name = uniqueName(taken, name);
  }
}

FailureOr<PlanProgram> Collector::run() {
  if (failed(moduleAttrs()) || failed(symbols())) return failure();
  Block &body = forward.getBody().front();
  for (BlockArgument arg : body.getArguments())
    values[arg] = plan::ValueRef(plan::ValueKind::input, static_cast<int32_t>(arg.getArgNumber()));
  int32_t n = 0;
  for (Operation &op : body.without_terminator())
    if (!isa<mlir::ds::GetWeightOp>(op)) instrOf[&op] = n++;
  for (Operation &op : body.without_terminator()) {
    if (auto gw = dyn_cast<mlir::ds::GetWeightOp>(op)) {
      auto it = weightIndex.find(gw.getName());
      if (it == weightIndex.end()) return gw.emitOpError("reads an unknown weight");
      values[gw.getResult()] = plan::ValueRef(plan::ValueKind::weight, it->second);
      continue;
    }
    if (failed(computeOp(&op, instrOf[&op]))) return failure();
  }
  Operation *ret = body.getTerminator();
  auto it = values.find(ret->getOperand(0));
  if (it == values.end() || it->second.kind() != plan::ValueKind::output)
    return ret->emitOpError("must return the result of ds.logits (or of its ds.all_gather)");
  nameKernels();

  // The IR text for inspection: generated CUDA sources and cubins are in the
  // kernels already, so the copy printed here carries only their size.
  OwningOpRef<ModuleOp> copy = module.clone();
  copy->walk([](Operation *op) {
    for (StringRef name : {"ds.cuda_source", "ds.cuda_binary"})
      if (auto text = op->getAttrOfType<StringAttr>(name))
        op->setAttr(name, StringAttr::get(op->getContext(), "<" + std::to_string(text.size()) +
                                                                " bytes, elided: see the plan's generated kernel>"));
  });
  llvm::raw_string_ostream os(out.mlir);
  copy->print(os, OpPrintingFlags().elideLargeElementsAttrs(64).elideLargeResourceString(256));
  return std::move(out);
}

}  // namespace

FailureOr<PlanProgram> collectProgram(ModuleOp module) { return Collector(module).run(); }

}  // namespace ds
