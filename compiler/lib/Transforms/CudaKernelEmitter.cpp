//===- CudaKernelEmitter.cpp - CUDA C++ for one ds.fused_group --*- C++ -*-===//
//
// The source half of --ds-codegen-cuda (CudaKernelEmitter.h).
//
// Code shape: every value of the group is a device lambda
// `vN(j, r)` that fills r[0..VEC) with columns [j, j+VEC) of the value's row,
// recomputing elementwise chains from the inputs (no shared-memory copies of
// rows, so any row size fits). rms_norm first reduces its input row (block
// reduction) and then scales lazily; rope reads the partner column block and
// the cos/sin of the row position, computed once per block into shared memory.
// Results and KV-cache rows are stored by block-strided loops at the end /
// in place. Results never alias inputs (ds-plan-buffers guarantees it).
//
//===----------------------------------------------------------------------===//

#include "ds/Transforms/CudaKernelEmitter.h"

#include "ds/Dialect/Ds/IR/DsOps.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <numbers>

using namespace mlir;
using namespace mlir::ds;

namespace {

/// C++ spelling of an element type.
FailureOr<std::string> cType(Type type) {
  if (type.isF32())
    return std::string("float");
  if (type.isBF16())
    return std::string("__nv_bfloat16");
  if (type.isF16())
    return std::string("__half");
  if (type.isInteger(32))
    return std::string("int");
  return failure();
}

std::string floatLit(double v) {
  if (std::isinf(v))
    return v > 0 ? "__int_as_float(0x7f800000)" : "__int_as_float(0xff800000)";
  return llvm::formatv("{0:e9}f", static_cast<float>(v)).str();
}

/// Inverse frequencies of `rope` (one per rotary pair) and the cos/sin scale
/// (YaRN attention factor), computed in float32 as transformers does (and as
/// the CPU reference kernels do, kernels/ref/rope.cpp), so both backends use
/// the same tables.
std::pair<SmallVector<float>, double> ropeTables(RopeAttr rope) {
  const int64_t half = rope.getRotaryDim() / 2;
  const float dim = static_cast<float>(rope.getRotaryDim());
  const double theta = rope.getTheta().convertToDouble();
  const double factor = rope.getFactor().convertToDouble();
  SmallVector<float> posFreqs(half), inv(half);
  for (int64_t i = 0; i < half; ++i)
    posFreqs[i] = std::pow(static_cast<float>(theta),
                           static_cast<float>(2 * i) / dim);
  double attentionFactor = 1.0;
  if (rope.getScaling() == "yarn") {
    auto getMscale = [&](double m) {
      return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1.0;
    };
    double mscale = rope.getMscale().convertToDouble();
    double mscaleAllDim = rope.getMscaleAllDim().convertToDouble();
    attentionFactor = mscale != 0 && mscaleAllDim != 0
                          ? getMscale(mscale) / getMscale(mscaleAllDim)
                          : getMscale(1.0);
    auto correctionDim = [&](double rotations) {
      return dim *
             std::log(rope.getOriginalMaxPosition() /
                      (rotations * 2 * std::numbers::pi)) /
             (2 * std::log(theta));
    };
    double low = std::max(
        0.0, std::floor(correctionDim(rope.getBetaFast().convertToDouble())));
    double high = std::min(
        static_cast<double>(dim) - 1.0,
        std::ceil(correctionDim(rope.getBetaSlow().convertToDouble())));
    if (low == high)
      high += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      float extrapolation = 1.0f / posFreqs[i];
      float interpolation = 1.0f / (static_cast<float>(factor) * posFreqs[i]);
      float ramp = std::clamp((static_cast<float>(i) - static_cast<float>(low)) /
                                  static_cast<float>(high - low),
                              0.0f, 1.0f);
      float extrapolationFactor = 1.0f - ramp;
      inv[i] = interpolation * (1.0f - extrapolationFactor) +
               extrapolation * extrapolationFactor;
    }
  } else if (rope.getScaling() == "linear") {
    for (int64_t i = 0; i < half; ++i)
      inv[i] = (1.0f / posFreqs[i]) / static_cast<float>(factor);
  } else {
    for (int64_t i = 0; i < half; ++i)
      inv[i] = 1.0f / posFreqs[i];
  }
  return {inv, attentionFactor};
}

int64_t rowSize(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape().back();
}

/// Emits the CUDA source of one fused group.
class GroupEmitter {
public:
  GroupEmitter(FusedGroupOp group, SymbolTableCollection &symbols)
      : group(group), symbols(symbols) {}

  FailureOr<KernelSource> emit();

private:
  int64_t chooseVec();
  LogicalResult emitInputs();
  LogicalResult emitOp(Operation *op);
  LogicalResult emitResults();
  std::string loop(int64_t row) {
    maxChunks = std::max(maxChunks, row / vec);
    return llvm::formatv("for (int j = threadIdx.x * {0}; j < {1}; j += "
                         "blockDim.x * {0})",
                         vec, row)
        .str();
  }
  std::string &name(Value v) { return names[v]; }

  FusedGroupOp group;
  SymbolTableCollection &symbols;
  int64_t vec = 1;
  int64_t maxChunks = 1;
  DenseMap<Value, std::string> names;
  llvm::StringMap<std::string> ropeCosSin; // table key -> shared cos/sin array
  std::string inParams, outParams, kvParams, tables, body, stores, prefetch;
  unsigned counter = 0, kvCount = 0;
  bool usesSlot = false, usesReduction = false;
};

int64_t GroupEmitter::chooseVec() {
  // 16 bytes of the narrowest float type per thread and step (8 bf16, or 4
  // floats when every value is f32); wider values of a mixed group (an f32
  // residual next to bf16 rows) move in several 16-byte pieces (ds_load).
  unsigned minBytes = 16;
  SmallVector<int64_t> multiples; // everything VEC must divide
  auto addTensor = [&](Value v) {
    auto t = cast<RankedTensorType>(v.getType());
    if (!isa<FloatType>(t.getElementType()))
      return;
    minBytes = std::min(minBytes, t.getElementTypeBitWidth() / 8);
    multiples.push_back(t.getShape().back());
  };
  for (Value arg : group.getBodyBlock().getArguments())
    addTensor(arg);
  for (Operation &op : group.getBodyBlock().without_terminator()) {
    for (Value r : op.getResults())
      addTensor(r);
    if (auto slice = dyn_cast<SliceOp>(op))
      multiples.push_back(slice.getOffset());
    if (auto rope = dyn_cast<RopeOp>(op)) {
      multiples.push_back(rope.getHeadDim());
      multiples.push_back(rope.getRope().getRotaryDim() / 2);
    }
  }
  int64_t v = 16 / minBytes;
  while (v > 1 && llvm::any_of(multiples, [&](int64_t m) { return m % v; }))
    v /= 2;
  return v;
}

LogicalResult GroupEmitter::emitInputs() {
  for (auto [i, arg] : llvm::enumerate(group.getBodyBlock().getArguments())) {
    auto type = cast<RankedTensorType>(arg.getType());
    FailureOr<std::string> ct = cType(type.getElementType());
    if (failed(ct))
      return group.emitOpError() << "ds-codegen-cuda: unsupported element type "
                                 << type.getElementType() << " of operand "
                                 << i;
    std::string p = llvm::formatv("in{0}", i).str();
    inParams += llvm::formatv(",\n    const {0}* __restrict__ {1}", *ct, p);
    std::string v = llvm::formatv("v{0}", counter++).str();
    name(arg) = v;
    if (type.getRank() == 2) {
      body += llvm::formatv("  auto {0} = [&](int j, float (&r)[{1}]) {{ "
                            "ds_load<{1}>({2} + row * {3} + j, r); };\n",
                            v, vec, p, type.getDimSize(1));
    } else if (type.getRank() == 1 && type.hasStaticShape()) {
      body += llvm::formatv("  auto {0} = [&](int j, float (&r)[{1}]) {{ "
                            "ds_load<{1}>({2} + j, r); };\n",
                            v, vec, p);
      // A weight: block 0 asks for it in L2 before the PDL wait (one hint
      // per 128-byte line).
      int64_t bytes = type.getNumElements() * type.getElementTypeBitWidth() / 8;
      prefetch += llvm::formatv(
          "  if (blockIdx.x == 0) for (int b = threadIdx.x * 128; b < {0}; b "
          "+= blockDim.x * 128) ds_prefetch_l2(reinterpret_cast<const "
          "char*>({1}) + b);\n",
          bytes, p);
    } else if (type.getRank() == 1 && type.getElementType().isInteger(32)) {
      name(arg) = p; // positions: read as p[row]
    } else {
      return group.emitOpError() << "ds-codegen-cuda: unsupported operand "
                                 << i << " of type " << type;
    }
  }
  return success();
}

LogicalResult GroupEmitter::emitResults() {
  for (auto [i, result] : llvm::enumerate(group.getResults())) {
    auto type = cast<RankedTensorType>(result.getType());
    FailureOr<std::string> ct = cType(type.getElementType());
    if (failed(ct) || type.getRank() != 2 || !isa<FloatType>(type.getElementType()))
      return group.emitOpError() << "ds-codegen-cuda: unsupported result "
                                 << i << " of type " << type;
    outParams += llvm::formatv(",\n    {0}* __restrict__ out{1}", *ct, i);
    Value yielded = group.getYield().getValues()[i];
    stores += llvm::formatv("  {0} {{ float r[{1}]; {2}(j, r); "
                            "ds_store<{1}>(out{3} + row * {4} + j, r); }\n",
                            loop(type.getDimSize(1)), vec, name(yielded), i,
                            type.getDimSize(1));
  }
  return success();
}

LogicalResult GroupEmitter::emitOp(Operation *op) {
  auto lambda = [&](Value result, StringRef code) {
    std::string v = llvm::formatv("v{0}", counter++).str();
    name(result) = v;
    body += llvm::formatv("  auto {0} = [&](int j, float (&r)[{1}]) {{ {2} };\n",
                          v, vec, code);
  };
  auto operand = [&](unsigned i) { return name(op->getOperand(i)); };
  std::string vecStr = std::to_string(vec);

  if (auto add = dyn_cast<AddOp>(op)) {
    lambda(add, llvm::formatv("{0}(j, r); float t[{1}]; {2}(j, t); for (int i "
                              "= 0; i < {1}; ++i) r[i] += t[i];",
                              operand(0), vec, operand(1))
                    .str());
  } else if (auto mul = dyn_cast<MulOp>(op)) {
    lambda(mul, llvm::formatv("{0}(j, r); float t[{1}]; {2}(j, t); for (int i "
                              "= 0; i < {1}; ++i) r[i] *= t[i];",
                              operand(0), vec, operand(1))
                    .str());
  } else if (auto silu = dyn_cast<SiluOp>(op)) {
    lambda(silu, llvm::formatv("{0}(j, r); for (int i = 0; i < {1}; ++i) r[i] "
                               "= r[i] / (1.f + expf(-r[i]));",
                               operand(0), vec)
                     .str());
  } else if (auto slice = dyn_cast<SliceOp>(op)) {
    lambda(slice, llvm::formatv("{0}(j + {1}, r);", operand(0),
                                slice.getOffset())
                      .str());
  } else if (auto norm = dyn_cast<RmsNormOp>(op)) {
    int64_t row = rowSize(norm.getX());
    std::string rstd = llvm::formatv("rstd{0}", counter).str();
    body += llvm::formatv(
        "  float {0};\n  {{\n    float ss = 0.f;\n    {1} {{ float r[{2}]; "
        "{3}(j, r); for (int i = 0; i < {2}; ++i) ss += r[i] * r[i]; }\n    "
        "ss = ds_block_sum(ss, red);\n    {0} = rsqrtf(ss / {4}.f + {5});\n  "
        "}\n",
        rstd, loop(row), vec, operand(0), row,
        floatLit(norm.getEps().convertToDouble()));
    usesReduction = true;
    lambda(norm, llvm::formatv("{0}(j, r); float w[{1}]; {2}(j, w); for (int "
                               "i = 0; i < {1}; ++i) r[i] = r[i] * {3} * w[i];",
                               operand(0), vec, operand(1), rstd)
                     .str());
  } else if (auto rope = dyn_cast<RopeOp>(op)) {
    RopeAttr cfg = rope.getRope();
    auto [inv, mscale] = ropeTables(cfg);
    int64_t headDim = rope.getHeadDim(), rot = cfg.getRotaryDim();
    std::string values;
    for (float f : inv)
      values += floatLit(f) + ", ";
    std::string scale = static_cast<float>(mscale) == 1.0f
                            ? ""
                            : " cs *= " + floatLit(mscale) + "; sn *= " +
                                  floatLit(mscale) + ";";
    // cos/sin of the row's position, one per rotary pair, computed once per
    // block into shared memory (a decode row's q and k heads share them: the
    // block used to call sincosf for every element). Ropes of the group with
    // the same frequencies, scale and positions share one table.
    std::string key = values + "|" + scale + "|" + operand(1);
    std::string &cs = ropeCosSin[key];
    if (cs.empty()) {
      std::string table = llvm::formatv("ds_inv_freq{0}", counter).str();
      cs = llvm::formatv("ds_cs{0}", counter).str();
      tables += llvm::formatv("__device__ const float {0}[{1}] = {{{2}};\n",
                              table, inv.size(), values);
      body += llvm::formatv(
          "  __shared__ float2 {0}[{1}];\n  {{\n    const float p = "
          "static_cast<float>({2}[row]);\n    for (int i = threadIdx.x; i < "
          "{1}; i += blockDim.x) {{ float sn, cs; sincosf(p * {3}[i], &sn, "
          "&cs);{4} {0}[i] = make_float2(cs, sn); }\n    __syncthreads();\n  "
          "}\n",
          cs, inv.size(), operand(1), table, scale);
    }
    std::string code;
    if (cfg.getStyle() == "neox") {
      // Pairs (d, d + rot/2); vec divides rot/2 so blocks do not straddle.
      code = llvm::formatv(
          "{0}(j, r); const int d = j % {1}; if (d < {2}) {{ const bool lo = d "
          "< {3}; float o[{4}]; {0}(lo ? j + {3} : j - {3}, o); for (int i = "
          "0; i < {4}; ++i) {{ const float2 c = {5}[(d % {3}) + i]; const "
          "float cs = c.x, sn = c.y; r[i] = lo ? r[i] * cs - o[i] * sn : r[i] "
          "* cs + o[i] * sn; } }",
          operand(0), headDim, rot, rot / 2, vec, cs);
    } else if (vec >= 2) {
      // Interleaved pairs (2k, 2k+1) inside the block.
      code = llvm::formatv(
          "{0}(j, r); const int d = j % {1}; if (d < {2}) {{ for (int i = 0; "
          "i < {3}; i += 2) {{ const float2 c = {4}[(d + i) / 2]; const float "
          "cs = c.x, sn = c.y; const float a = r[i], b = r[i + 1]; r[i] = a * "
          "cs - b * sn; r[i + 1] = b * cs + a * sn; } }",
          operand(0), headDim, rot, vec, cs);
    } else {
      code = llvm::formatv(
          "{0}(j, r); const int d = j % {1}; if (d < {2}) {{ float o[1]; "
          "{0}(j ^ 1, o); const float2 c = {3}[d / 2]; const float cs = c.x, "
          "sn = c.y; r[0] = (d & 1) ? r[0] * cs + o[0] * sn : r[0] * cs - o[0] "
          "* sn; }",
          operand(0), headDim, rot, cs);
    }
    lambda(rope, code);
  } else if (auto write = dyn_cast<KvCacheWriteOp>(op)) {
    auto kv = symbols.lookupNearestSymbolFrom<KvCacheOp>(write,
                                                         write.getCacheAttr());
    FailureOr<std::string> ct =
        kv ? cType(kv.getDtype()) : FailureOr<std::string>(failure());
    if (failed(ct))
      return write.emitOpError("ds-codegen-cuda: unsupported KV cache dtype");
    unsigned n = kvCount++;
    kvParams += llvm::formatv(",\n    {0}* __restrict__ k_cache{1},\n    {0}* "
                            "__restrict__ v_cache{1}",
                            *ct, n);
    int64_t kRow = rowSize(write.getK()), vRow = rowSize(write.getV());
    body += llvm::formatv(
        "  if (slot >= 0) {{\n    {0} {{ float r[{1}]; {2}(j, r); "
        "ds_store<{1}>(k_cache{3} + slot * {4} + j, r); }\n    {5} {{ float "
        "r[{1}]; {6}(j, r); ds_store<{1}>(v_cache{3} + slot * {7} + j, r); }\n "
        " }\n",
        loop(kRow), vec, operand(0), n, kRow, loop(vRow), operand(1), vRow);
    usesSlot = true;
  } else {
    return op->emitOpError("ds-codegen-cuda: no CUDA lowering for this op");
  }
  return success();
}

FailureOr<KernelSource> GroupEmitter::emit() {
  // Every row (and weight) must have a static size.
  SmallVector<Value> values(group.getBodyBlock().getArguments());
  for (Operation &op : group.getBodyBlock().without_terminator())
    llvm::append_range(values, op.getResults());
  for (Value v : values) {
    auto type = cast<RankedTensorType>(v.getType());
    bool positions = type.getRank() == 1 && type.isDynamicDim(0) &&
                     type.getElementType().isInteger(32);
    bool floatRows = isa<FloatType>(type.getElementType()) &&
                     (type.getRank() == 1 || type.getRank() == 2) &&
                     !type.isDynamicDim(type.getRank() - 1);
    if (!positions && !floatRows)
      return group.emitOpError()
             << "ds-codegen-cuda: unsupported value of type " << type
             << " (expects float [T, row] / [row] with a static row, or "
                "i32 positions [T])";
  }
  vec = chooseVec();
  if (failed(emitInputs()))
    return failure();
  for (Operation &op : group.getBodyBlock().without_terminator())
    if (failed(emitOp(&op)))
      return failure();
  if (failed(emitResults()))
    return failure();
  // One thread per 16-byte chunk of the widest row, up to 1024: a decode step
  // has one row per sequence, so a single block streams the whole row and its
  // latency is the number of dependent loop trips (2-3 for 18944-wide rows
  // instead of 10 at 256 threads). The block reduction handles 32 warps.
  int64_t blockDim =
      std::clamp<int64_t>(llvm::alignTo(maxChunks, 32), 32, 1024);
  std::string src = cudaKernelPrelude().str();
  src += tables;
  src += llvm::formatv("\nextern \"C\" __global__ void __launch_bounds__({0}) "
                       "DS_ENTRY(\n    const DsStepArgs* __restrict__ args",
                       blockDim);
  src += inParams + outParams + kvParams + ") {\n";
  src += prefetch;
  src += "  ds_pdl_wait_and_trigger();\n"
         "  const long long row = blockIdx.x;\n"
         "  if (row >= args->num_tokens) return;\n";
  if (usesReduction)
    src += "  __shared__ float red[32];\n";
  if (usesSlot)
    src += "  const long long slot = args->slot_mapping[row];\n";
  src += body + stores + "}\n";
  return KernelSource{std::move(src), blockDim};
}

} // namespace

FailureOr<KernelSource> mlir::ds::emitCudaKernel(FusedGroupOp group,
                                                SymbolTableCollection &symbols) {
  return GroupEmitter(group, symbols).emit();
}
