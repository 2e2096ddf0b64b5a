//===- Importer.cpp - ModelSpec -> ds IR ------------------------------------===//
//
// One decoder layer (Qwen2 / Llama) becomes:
//
//   h    = rms_norm(x, input_layernorm)
//   q,k,v = linear(h, q/k/v_proj [, bias])
//   q, k = rope(q), rope(k)
//   kv_cache_write(k, v)          // before the attention that reads it
//   a    = paged_attention(q)
//   x    = add(x, linear(a, o_proj))
//   h    = rms_norm(x, post_attention_layernorm)
//   x    = add(x, linear(mul(silu(linear(h, gate)), linear(h, up)), down))
//
// followed by the final norm and ds.logits. Fusion (q/k/v, gate/up, row-wise
// groups) is left to the passes. `x` (the residual stream) has the element
// type ImportOptions::residualDtype (f32 by default), every other activation
// the target's (f32 on cpu, bf16 on CUDA); the norms convert.
//
//===----------------------------------------------------------------------===//

#include "ds/Import/Importer.h"

#include <cmath>
#include <map>
#include <regex>

#include "ds/Dialect/Ds/IR/DsOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"

using namespace mlir;

namespace ds {
namespace {

class ModuleImporter {
public:
  ModuleImporter(MLIRContext &ctx, const ModelSpec &spec, const ImportOptions &options, Type act,
                 Type residual, Type proj)
      : ctx(ctx), spec(spec), options(options), b(&ctx), act(act), residual(residual), proj(proj) {}

  OwningOpRef<ModuleOp> run();

private:
  Location loc(const std::string &name) { return NameLoc::get(StringAttr::get(&ctx, name)); }
  RankedTensorType rows(int64_t width, Type elem) {
    return RankedTensorType::get({ShapedType::kDynamic, width}, elem);
  }
  RankedTensorType rows(int64_t width) { return rows(width, act); }
  Type elementType(DType t);

  /// Declares the ds.weight for `t` (once) and reads it in @forward.
  Value weight(const CheckpointTensor &t);
  Value optionalWeight(const std::optional<CheckpointTensor> &t) { return t ? weight(*t) : Value(); }
  Value linear(const std::string &name, Value x, const CheckpointTensor &w,
               const std::optional<CheckpointTensor> &bias, Type out = {});
  Value rmsNorm(const std::string &name, Value x, const CheckpointTensor &w);
  Value rope(const std::string &name, Value x, int64_t numHeads);
  Value layer(int64_t index, Value x);

  MLIRContext &ctx;
  const ModelSpec &spec;
  const ImportOptions &options;
  OpBuilder b;
  Type act;       // activations: GEMM inputs and outputs, attention, KV cache
  Type residual;  // the residual stream (results of the residual adds)
  Type proj;      // o_proj / down_proj outputs (added into the residual)
  ModuleOp module;
  func::FuncOp forward;
  Value positions;
  std::map<std::string, RankedTensorType> declared;
  mlir::ds::RopeAttr ropeAttr;
  FlatSymbolRefAttr kvCache;
};

Type ModuleImporter::elementType(DType t) {
  switch (t) {
  case DType::kF32: return b.getF32Type();
  case DType::kF16: return b.getF16Type();
  case DType::kBF16: return b.getBF16Type();
  default: break;
  }
  // ModelSpec admits only float checkpoint tensors.
  DS_CHECK(false, "unexpected checkpoint dtype " << dtype_name(t));
  return {};
}

Value ModuleImporter::weight(const CheckpointTensor &t) {
  auto it = declared.find(t.name);
  RankedTensorType type;
  if (it != declared.end()) {
    type = it->second;
  } else {
    Type elem = elementType(t.dtype);
    type = RankedTensorType::get(t.shape, elem);
    auto source = mlir::ds::SourceAttr::get(&ctx, t.name, t.file, elem, t.shape, /*slice_axis=*/-1,
                                            /*slice_start=*/0, /*slice_size=*/0, /*slice_rank_stride=*/0,
                                            /*slice_rank_divisor=*/1);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(forward);
    b.create<mlir::ds::WeightOp>(loc(t.name), b.getStringAttr(t.name), b.getArrayAttr({source}),
                                 b.getI64IntegerAttr(0), TypeAttr::get(type));
    declared.emplace(t.name, type);
  }
  return b.create<mlir::ds::GetWeightOp>(loc(t.name), type, FlatSymbolRefAttr::get(&ctx, t.name));
}

Value ModuleImporter::linear(const std::string &name, Value x, const CheckpointTensor &w,
                             const std::optional<CheckpointTensor> &bias, Type out) {
  Value wv = weight(w);
  Value bv = optionalWeight(bias);
  return b.create<mlir::ds::LinearOp>(loc(name), rows(w.shape[0], out ? out : act), x, wv, bv,
                                      b.getStringAttr("none"));
}

Value ModuleImporter::rmsNorm(const std::string &name, Value x, const CheckpointTensor &w) {
  // Reads the residual stream (whatever its type), writes an activation.
  Value wv = weight(w);
  return b.create<mlir::ds::RmsNormOp>(loc(name), rows(spec.hiddenSize), x, wv,
                                       b.getF64FloatAttr(spec.rmsNormEps));
}

Value ModuleImporter::rope(const std::string &name, Value x, int64_t numHeads) {
  return b.create<mlir::ds::RopeOp>(loc(name), x.getType(), x, positions, b.getI64IntegerAttr(numHeads),
                                    b.getI64IntegerAttr(spec.headDim), ropeAttr);
}

Value ModuleImporter::layer(int64_t index, Value x) {
  const LayerTensors &t = spec.layers[index];
  std::string p = "l" + std::to_string(index) + ".";
  Value h = rmsNorm(p + "input_norm", x, t.inputNorm);
  Value q = linear(p + "q_proj", h, t.qProj, t.qBias);
  Value k = linear(p + "k_proj", h, t.kProj, t.kBias);
  Value v = linear(p + "v_proj", h, t.vProj, t.vBias);
  q = rope(p + "q_rope", q, spec.numHeads);
  k = rope(p + "k_rope", k, spec.numKvHeads);
  b.create<mlir::ds::KvCacheWriteOp>(loc(p + "kv_write"), k, v, kvCache, b.getI64IntegerAttr(index));
  double scale = 1.0 / std::sqrt(static_cast<double>(spec.headDim));
  Value a = b.create<mlir::ds::PagedAttentionOp>(
      loc(p + "attn"), rows(spec.numHeads * spec.headDim), q, kvCache, b.getI64IntegerAttr(index),
      b.getI64IntegerAttr(spec.numHeads), b.getI64IntegerAttr(spec.numKvHeads),
      b.getI64IntegerAttr(spec.headDim), b.getI64IntegerAttr(spec.headDim), b.getF64FloatAttr(scale));
  Value o = linear(p + "o_proj", a, t.oProj, t.oBias, proj);
  x = b.create<mlir::ds::AddOp>(loc(p + "attn_residual"), rows(spec.hiddenSize, residual), x, o);
  h = rmsNorm(p + "post_attn_norm", x, t.postAttentionNorm);
  Value gate = linear(p + "gate_proj", h, t.gateProj, t.gateBias);
  Value up = linear(p + "up_proj", h, t.upProj, t.upBias);
  Value act = b.create<mlir::ds::SiluOp>(loc(p + "mlp_act"), gate);
  Value mul = b.create<mlir::ds::MulOp>(loc(p + "mlp_mul"), act, up);
  Value down = linear(p + "down_proj", mul, t.downProj, t.downBias, proj);
  return b.create<mlir::ds::AddOp>(loc(p + "mlp_residual"), rows(spec.hiddenSize, residual), x, down);
}

OwningOpRef<ModuleOp> ModuleImporter::run() {
  OwningOpRef<ModuleOp> owned = ModuleOp::create(loc(spec.name));
  module = *owned;
  module->setAttr("ds.target", b.getStringAttr(options.target));
  module->setAttr("ds.activation_dtype", TypeAttr::get(act));
  module->setAttr("ds.max_model_len", b.getI64IntegerAttr(spec.maxModelLen));

  const RopeSpec &r = spec.rope;
  ropeAttr = mlir::ds::RopeAttr::get(&ctx, llvm::APFloat(r.theta), r.style, r.rotaryDim, r.scaling,
                                     llvm::APFloat(r.factor), r.originalMaxPosition, llvm::APFloat(r.betaFast),
                                     llvm::APFloat(r.betaSlow), llvm::APFloat(r.mscale),
                                     llvm::APFloat(r.mscaleAllDim));
  kvCache = FlatSymbolRefAttr::get(&ctx, "kv");

  b.setInsertionPointToEnd(module.getBody());
  // The KV cache holds activations: same element type (f32 on the CPU keeps
  // the reference backend exact; bf16 on GPUs).
  b.create<mlir::ds::KvCacheOp>(loc("kv"), b.getStringAttr("kv"), b.getI64IntegerAttr(spec.numLayers),
                                b.getI64IntegerAttr(spec.numKvHeads), b.getI64IntegerAttr(spec.headDim),
                                b.getI64IntegerAttr(spec.headDim), b.getI64IntegerAttr(options.pageSize),
                                TypeAttr::get(act));

  auto ids = RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type());
  RankedTensorType logitsType = rows(spec.vocabSize, b.getF32Type());
  forward = b.create<func::FuncOp>(loc("forward"), "forward",
                                   b.getFunctionType({ids, ids, ids}, {logitsType}));
  Block *entry = forward.addEntryBlock();
  b.setInsertionPointToEnd(entry);
  Value tokens = entry->getArgument(0);
  positions = entry->getArgument(1);
  Value logitRows = entry->getArgument(2);

  Value table = weight(spec.embedTokens);
  // The embedding output (the residual stream's first value) keeps the
  // activation type: a bf16 table row is exact in bf16, and the first
  // residual add widens it.
  Value x = b.create<mlir::ds::EmbeddingOp>(loc("embed"), rows(spec.hiddenSize), tokens, table);
  for (int64_t l = 0; l < spec.numLayers; ++l) x = layer(l, x);
  x = rmsNorm("final_norm", x, spec.finalNorm);
  Value lm = weight(spec.lmHead);
  Value logits = b.create<mlir::ds::LogitsOp>(loc("logits"), logitsType, x, lm, logitRows);
  b.create<func::ReturnOp>(loc("forward"), logits);

  if (failed(verify(module))) return nullptr;
  return owned;
}

}  // namespace

Status validateResidualDtype(const std::string &residualDtype, const std::string &target) {
  if (residualDtype.empty() || residualDtype == "f32") return Status::Ok();
  if (residualDtype != "bf16")
    return Status::Error(StrCat() << "unsupported residual dtype '" << residualDtype << "' (expected f32 or bf16)");
  if (target == "cpu")
    return Status::Error("residual dtype bf16 needs a CUDA target: the cpu target computes in float32");
  return Status::Ok();
}

Status validateProjOutDtype(const std::string &projOutDtype, const std::string &residualDtype,
                            const std::string &target) {
  if (projOutDtype.empty()) return Status::Ok();
  if (projOutDtype != "f32" && projOutDtype != "bf16")
    return Status::Error(StrCat() << "unsupported o_proj/down_proj output dtype '" << projOutDtype
                                  << "' (expected f32 or bf16)");
  if (projOutDtype == "bf16" && target == "cpu")
    return Status::Error("o_proj/down_proj output dtype bf16 needs a CUDA target: the cpu target computes in float32");
  if (projOutDtype == "f32" && residualDtype == "bf16")
    return Status::Error("o_proj/down_proj output dtype f32 needs the f32 residual stream (--residual-dtype f32)");
  return Status::Ok();
}

Status validateTarget(const std::string &target) {
  static const std::regex kCudaArch("sm_[0-9]+[a-z]?");
  if (target == "cpu" || std::regex_match(target, kCudaArch)) return Status::Ok();
  return Status::Error(StrCat() << "unsupported target '" << target
                                << "' (expected cpu or a CUDA arch such as sm_90a or sm_80)");
}

void registerImportDialects(MLIRContext &context) {
  context.loadDialect<mlir::ds::DsDialect, func::FuncDialect>();
}

OwningOpRef<ModuleOp> importModel(MLIRContext &context, const ModelSpec &spec, const ImportOptions &options) {
  registerImportDialects(context);
  if (Status st = validateTarget(options.target); !st.ok()) {
    emitError(UnknownLoc::get(&context)) << st.message();
    return nullptr;
  }
  if (Status st = validateResidualDtype(options.residualDtype, options.target); !st.ok()) {
    emitError(UnknownLoc::get(&context)) << st.message();
    return nullptr;
  }
  if (Status st = validateProjOutDtype(options.projOutDtype, options.residualDtype, options.target); !st.ok()) {
    emitError(UnknownLoc::get(&context)) << st.message();
    return nullptr;
  }
  if (options.pageSize <= 0) {
    emitError(UnknownLoc::get(&context)) << "page size must be positive";
    return nullptr;
  }
  OpBuilder b(&context);
  Type act = options.target == "cpu" ? Type(b.getF32Type()) : Type(b.getBF16Type());
  Type residual = options.residualDtype == "bf16" ? Type(b.getBF16Type()) : Type(b.getF32Type());
  Type proj = options.projOutDtype == "f32"    ? Type(b.getF32Type())
              : options.projOutDtype == "bf16" ? Type(b.getBF16Type())
                                               : residual;
  return ModuleImporter(context, spec, options, act, residual, proj).run();
}

}  // namespace ds
