//===- ProgramExporter.h - ds IR -> plan program (plain structs) -*- C++ -*-===//
//
// Private to the exporter. The IR walk (ProgramExporter.cpp) turns the final
// module into these plain structs, reporting unsupported or incomplete IR with
// emitOpError; PlanExporter.cpp then serializes them (and the ModelSpec
// metadata) with flatbuffers. Field meanings are those of plan.fbs.
//
//===----------------------------------------------------------------------===//

#ifndef DS_LIB_EXPORT_PROGRAMEXPORTER_H
#define DS_LIB_EXPORT_PROGRAMEXPORTER_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"
#include "runtime/common/dtype.h"
#include "runtime/plan/plan_generated.h"

namespace ds {

struct PlanAttr {
  std::string key;
  plan::AttrType type = plan::AttrType::int_;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
};

struct PlanSource {
  std::string name, file;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t sliceAxis = -1, sliceStart = 0, sliceSize = 0, sliceRankStride = 0, sliceRankDivisor = 1;
};

struct PlanWeight {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<PlanSource> sources;
  int64_t concatAxis = 0;
};

struct PlanBuffer {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> rowShape;
  int64_t bytesPerToken = 0, offsetPerToken = 0;
  int32_t firstInstr = 0, lastInstr = 0;
};

struct PlanFusedOp {
  std::string op;
  std::vector<int32_t> operands;
  std::vector<PlanAttr> attrs;
  std::vector<int64_t> rowShape;
};

struct PlanGenerated {
  std::string source, entry, arch, binary;
  std::vector<std::string> nvrtcOptions;
  int32_t blockDim = 0, rowsPerBlock = 1;
};

struct PlanKernel {
  std::string name;
  plan::KernelKind kind = plan::KernelKind::builtin;
  std::string impl, op;
  std::vector<PlanAttr> attrs;
  int32_t numInputs = 0;
  std::vector<PlanFusedOp> fusedOps;
  std::vector<int32_t> results;
  std::optional<PlanGenerated> generated;
};

struct PlanInstr {
  int32_t kernel = 0;
  std::vector<plan::ValueRef> inputs, outputs;
};

struct PlanKvLayer {
  int32_t kDim = 0, vDim = 0, numKvHeads = 0;
};

struct PlanProgram {
  std::string target;
  DType activationDtype = DType::kF32;
  int64_t maxModelLen = 0;  // module attribute ds.max_model_len
  int64_t arenaAlignment = 16, arenaBytesPerToken = 0;
  std::vector<PlanWeight> weights;
  std::vector<PlanBuffer> buffers;
  DType kvDtype = DType::kF32;
  int32_t kvPageSize = 16;
  std::vector<PlanKvLayer> kvLayers;
  std::vector<PlanKernel> kernels;
  std::vector<PlanInstr> program;
  std::string mlir;  // the module as text (large blobs elided)
};

/// Walks the module (after ds-select-kernels and ds-plan-buffers, plus
/// ds-codegen-cuda for sm_* targets). Emits an error on the offending op and
/// fails on anything the plan cannot express.
mlir::FailureOr<PlanProgram> collectProgram(mlir::ModuleOp module);

}  // namespace ds

#endif  // DS_LIB_EXPORT_PROGRAMEXPORTER_H
