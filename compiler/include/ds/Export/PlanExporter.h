//===- PlanExporter.h - ds IR -> flatbuffer plan ----------------*- C++ -*-===//
//
// Writes the plan (runtime/plan/plan.fbs) for a module that went through the
// compile pipeline (ds-select-kernels, ds-plan-buffers and, for sm_* targets,
// ds-codegen-cuda), with the model, tokenizer and generation metadata of its
// ModelSpec. Anything the exporter cannot express is reported with an error on
// the offending op and no plan is written. The bytes are checked with the
// runtime's own plan reader (identifier, version, verifier, semantic
// validation) before they are written, atomically (temp file + rename).
//
//===----------------------------------------------------------------------===//

#ifndef DS_EXPORT_PLANEXPORTER_H
#define DS_EXPORT_PLANEXPORTER_H

#include <string>

#include "ds/Import/ModelSpec.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"

namespace ds {

/// The producer string written into every plan.
extern const char *const kDsccVersion;

struct ExportOptions {
  int32_t tpSize = 1;
};

/// Serializes the plan. Errors are emitted as MLIR diagnostics.
mlir::FailureOr<std::string> buildPlan(mlir::ModuleOp module, const ModelSpec &spec,
                                       const ExportOptions &options);

/// buildPlan, then writes `path` atomically.
mlir::LogicalResult exportPlan(mlir::ModuleOp module, const ModelSpec &spec, const std::string &path,
                               const ExportOptions &options);

}  // namespace ds

#endif  // DS_EXPORT_PLANEXPORTER_H
