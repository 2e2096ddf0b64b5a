//===- PlanExporter.cpp - ds IR -> flatbuffer plan -------------------------===//
//
// Serializes the PlanProgram collected from the IR plus the ModelSpec
// metadata, checks the bytes with the runtime's plan reader and writes them
// atomically.
//
//===----------------------------------------------------------------------===//

#include <limits>

#include "ds/Export/PlanExporter.h"

#include <limits>
#include <map>

#include "ProgramExporter.h"
#include "mlir/IR/Diagnostics.h"
#include "runtime/common/file_util.h"
#include "runtime/plan/plan_reader.h"

using namespace mlir;
using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

namespace ds {

const char *const kDsccVersion = "dscc 0.1.0";

namespace {

plan::DType toPlan(DType t) { return static_cast<plan::DType>(static_cast<uint8_t>(t)); }

std::vector<int32_t> toInt32(const std::vector<int64_t> &v) { return std::vector<int32_t>(v.begin(), v.end()); }

class Serializer {
public:
  Serializer(const PlanProgram &prog, const ModelSpec &spec, const ExportOptions &options)
      : prog(prog), spec(spec), options(options) {}

  std::string run();

private:
  Offset<flatbuffers::Vector<Offset<plan::Attr>>> attrs(const std::vector<PlanAttr> &list);
  Offset<plan::ModelInfo> model();
  Offset<plan::TokenizerInfo> tokenizer();
  Offset<plan::GenerationDefaults> generation();
  Offset<flatbuffers::Vector<Offset<plan::Weight>>> weights();
  Offset<plan::Arena> arena();
  Offset<plan::KvCacheLayout> kvCache();
  Offset<plan::Kernel> kernel(const PlanKernel &k);
  Offset<flatbuffers::Vector<Offset<plan::Instr>>> program();

  const PlanProgram &prog;
  const ModelSpec &spec;
  const ExportOptions &options;
  FlatBufferBuilder fbb{1 << 20};
  std::map<std::string, Offset<flatbuffers::Vector<uint8_t>>> binaries;
};

Offset<flatbuffers::Vector<Offset<plan::Attr>>> Serializer::attrs(const std::vector<PlanAttr> &list) {
  if (list.empty()) return 0;
  std::vector<Offset<plan::Attr>> out;
  for (const PlanAttr &a : list) {
    auto key = fbb.CreateString(a.key);
    auto s = a.type == plan::AttrType::string_ ? fbb.CreateString(a.s) : 0;
    auto ints = a.type == plan::AttrType::ints ? fbb.CreateVector(a.ints) : 0;
    auto floats = a.type == plan::AttrType::floats ? fbb.CreateVector(a.floats) : 0;
    out.push_back(plan::CreateAttr(fbb, key, a.type, a.i, a.f, s, ints, floats));
  }
  return fbb.CreateVectorOfSortedTables(&out);
}

Offset<plan::ModelInfo> Serializer::model() {
  const RopeSpec &r = spec.rope;
  auto rope = plan::CreateRopeConfig(
      fbb, r.theta, r.style == "interleaved" ? plan::RopeStyle::interleaved : plan::RopeStyle::neox,
      static_cast<int32_t>(r.rotaryDim),
      r.scaling == "yarn"     ? plan::RopeScaling::yarn
      : r.scaling == "linear" ? plan::RopeScaling::linear
                              : plan::RopeScaling::none,
      r.factor, static_cast<int32_t>(r.originalMaxPosition), r.betaFast, r.betaSlow, r.mscale, r.mscaleAllDim);
  return plan::CreateModelInfo(
      fbb, fbb.CreateString(spec.architecture), fbb.CreateString(spec.modelType), fbb.CreateString(spec.name),
      fbb.CreateString(spec.checkpointPath), static_cast<int32_t>(spec.hiddenSize),
      static_cast<int32_t>(spec.intermediateSize), static_cast<int32_t>(spec.numLayers),
      static_cast<int32_t>(spec.numHeads), static_cast<int32_t>(spec.numKvHeads),
      static_cast<int32_t>(spec.headDim), static_cast<int32_t>(spec.vocabSize),
      static_cast<int32_t>(prog.maxModelLen), static_cast<float>(spec.rmsNormEps), spec.tieWordEmbeddings, rope,
      fbb.CreateString(spec.configJson));
}

Offset<plan::TokenizerInfo> Serializer::tokenizer() {
  const TokenizerSpec &t = spec.tokenizer;
  return plan::CreateTokenizerInfo(fbb, fbb.CreateString(t.tokenizerJson), fbb.CreateString(t.tokenizerConfigJson),
                                   fbb.CreateString(t.chatTemplate), static_cast<int32_t>(t.bosTokenId),
                                   fbb.CreateVector(toInt32(t.eosTokenIds)), static_cast<int32_t>(t.padTokenId));
}

Offset<plan::GenerationDefaults> Serializer::generation() {
  const GenerationSpec &g = spec.generation;
  return plan::CreateGenerationDefaults(fbb, g.doSample, static_cast<float>(g.temperature),
                                        static_cast<float>(g.topP), static_cast<int32_t>(g.topK),
                                        static_cast<float>(g.minP), static_cast<float>(g.repetitionPenalty),
                                        fbb.CreateVector(toInt32(g.eosTokenIds)),
                                        fbb.CreateString(g.generationConfigJson));
}

Offset<flatbuffers::Vector<Offset<plan::Weight>>> Serializer::weights() {
  std::vector<Offset<plan::Weight>> out;
  for (const PlanWeight &w : prog.weights) {
    std::vector<Offset<plan::SourceTensor>> sources;
    for (const PlanSource &s : w.sources)
      sources.push_back(plan::CreateSourceTensor(fbb, fbb.CreateString(s.name), fbb.CreateString(s.file),
                                                 toPlan(s.dtype), fbb.CreateVector(s.shape),
                                                 static_cast<int32_t>(s.sliceAxis), s.sliceStart, s.sliceSize,
                                                 s.sliceRankStride, s.sliceRankDivisor));
    out.push_back(plan::CreateWeight(fbb, fbb.CreateString(w.name), toPlan(w.dtype), fbb.CreateVector(w.shape),
                                     fbb.CreateVector(sources), static_cast<int32_t>(w.concatAxis)));
  }
  return fbb.CreateVector(out);
}

Offset<plan::Arena> Serializer::arena() {
  std::vector<Offset<plan::Buffer>> buffers;
  for (const PlanBuffer &b : prog.buffers)
    buffers.push_back(plan::CreateBuffer(fbb, fbb.CreateString(b.name), toPlan(b.dtype),
                                         fbb.CreateVector(b.rowShape), b.bytesPerToken, b.offsetPerToken,
                                         b.firstInstr, b.lastInstr));
  return plan::CreateArena(fbb, static_cast<int32_t>(prog.arenaAlignment), prog.arenaBytesPerToken,
                           fbb.CreateVector(buffers));
}

Offset<plan::KvCacheLayout> Serializer::kvCache() {
  std::vector<Offset<plan::KvCacheLayer>> layers;
  for (const PlanKvLayer &l : prog.kvLayers)
    layers.push_back(plan::CreateKvCacheLayer(fbb, l.kDim, l.vDim, l.numKvHeads));
  return plan::CreateKvCacheLayout(fbb, toPlan(prog.kvDtype), prog.kvPageSize, fbb.CreateString("NHD"),
                                   fbb.CreateVector(layers));
}

Offset<plan::Kernel> Serializer::kernel(const PlanKernel &k) {
  std::vector<Offset<plan::FusedOp>> fusedOps;
  for (const PlanFusedOp &f : k.fusedOps)
    fusedOps.push_back(plan::CreateFusedOp(fbb, fbb.CreateString(f.op), fbb.CreateVector(f.operands),
                                           attrs(f.attrs), fbb.CreateVector(f.rowShape)));
  Offset<plan::GeneratedKernel> generated = 0;
  if (k.generated) {
    const PlanGenerated &g = *k.generated;
    std::vector<Offset<flatbuffers::String>> options;
    for (const std::string &o : g.nvrtcOptions) options.push_back(fbb.CreateString(o));
    // Groups that differ only in attributes the generated code takes at run
    // time (the KV layer) share their source and cubin bytes in the buffer.
    auto [it, inserted] = binaries.try_emplace(g.binary);
    if (inserted)
      it->second = fbb.CreateVector(reinterpret_cast<const uint8_t *>(g.binary.data()), g.binary.size());
    generated = plan::CreateGeneratedKernel(fbb, fbb.CreateSharedString(g.source), fbb.CreateSharedString(g.entry),
                                            fbb.CreateSharedString(g.arch), it->second, fbb.CreateVector(options),
                                            g.blockDim, g.rowsPerBlock);
  }
  bool fused = k.kind == plan::KernelKind::fused;
  return plan::CreateKernel(fbb, fbb.CreateString(k.name), k.kind, fbb.CreateString(k.impl),
                            k.op.empty() ? 0 : fbb.CreateString(k.op), attrs(k.attrs), k.numInputs,
                            fused ? fbb.CreateVector(fusedOps) : 0, fused ? fbb.CreateVector(k.results) : 0,
                            generated);
}

Offset<flatbuffers::Vector<Offset<plan::Instr>>> Serializer::program() {
  std::vector<Offset<plan::Instr>> out;
  for (const PlanInstr &i : prog.program)
    out.push_back(plan::CreateInstr(fbb, i.kernel, fbb.CreateVectorOfStructs(i.inputs),
                                    fbb.CreateVectorOfStructs(i.outputs)));
  return fbb.CreateVector(out);
}

std::string Serializer::run() {
  auto producer = fbb.CreateString(kDsccVersion);
  auto target = fbb.CreateString(prog.target);
  auto modelInfo = model();
  auto tok = tokenizer();
  auto gen = generation();
  auto ws = weights();
  auto ar = arena();
  auto kv = kvCache();
  std::vector<Offset<plan::Kernel>> kernelList;
  for (const PlanKernel &k : prog.kernels) kernelList.push_back(kernel(k));
  auto ks = fbb.CreateVector(kernelList);
  auto prg = program();
  auto mlirText = fbb.CreateString(prog.mlir);
  auto root = plan::CreatePlan(fbb, kPlanFormatVersion, producer, target, toPlan(prog.activationDtype),
                               options.tpSize, modelInfo, tok, gen, ws, ar, kv, ks, prg, mlirText);
  plan::FinishPlanBuffer(fbb, root);
  return std::string(reinterpret_cast<const char *>(fbb.GetBufferPointer()), fbb.GetSize());
}

}  // namespace

FailureOr<std::string> buildPlan(ModuleOp module, const ModelSpec &spec, const ExportOptions &options) {
  FailureOr<PlanProgram> prog = collectProgram(module);
  if (failed(prog)) return failure();
  if (static_cast<int64_t>(prog->kvLayers.size()) != spec.numLayers)
    return module.emitError() << "the KV cache has " << prog->kvLayers.size() << " layers but the model has "
                              << spec.numLayers;
  // plan.tp_size: the module's ds.tp_size (set by ds-shard) must agree with
  // the option when both are given.
  ExportOptions opts = options;
  if (auto tp = module->getAttrOfType<IntegerAttr>("ds.tp_size")) {
    if (tp.getInt() < 1 || tp.getInt() > std::numeric_limits<int32_t>::max())
      return module.emitError() << "ds.tp_size " << tp.getInt() << " is out of range";
    if (opts.tpSize != 1 && opts.tpSize != tp.getInt())
      return module.emitError() << "the module is sharded for ds.tp_size = " << tp.getInt()
                                << " but the plan is exported for tp " << opts.tpSize;
    opts.tpSize = static_cast<int32_t>(tp.getInt());
  } else if (opts.tpSize != 1) {
    return module.emitError() << "exporting for tp " << opts.tpSize
                              << " needs a module sharded by ds-shard (no ds.tp_size attribute)";
  }
  std::string bytes = Serializer(*prog, spec, opts).run();
  // The runtime's reader is the judge: identifier, version, verifier and the
  // semantic checks (ValueRef ranges, weight shapes, arena bounds...).
  Result<std::unique_ptr<LoadedPlan>> check = LoadedPlan::from_bytes(bytes, "exported plan");
  if (!check.ok())
    return module.emitError() << "internal error: the exported plan does not pass validation: "
                              << check.status().message();
  return bytes;
}

LogicalResult exportPlan(ModuleOp module, const ModelSpec &spec, const std::string &path,
                         const ExportOptions &options) {
  FailureOr<std::string> bytes = buildPlan(module, spec, options);
  if (failed(bytes)) return failure();
  if (Status st = write_file_atomic(path, *bytes); !st.ok())
    return module.emitError() << "cannot write the plan: " << st.message();
  return success();
}

}  // namespace ds
