//===- Importer.h - ModelSpec -> ds IR --------------------------*- C++ -*-===//
//
// Builds the ds module of IR_CONTRACT.md for a validated ModelSpec: one
// ds.weight per checkpoint tensor, the ds.kv_cache symbol and func.func
// @forward(%tokens, %positions, %logit_rows) -> logits. Every op carries a
// NameLoc ("embed", "l3.q_proj", "l3.attn", ...) that the exporter uses to
// name arena buffers and kernels.
//
//===----------------------------------------------------------------------===//

#ifndef DS_IMPORT_IMPORTER_H
#define DS_IMPORT_IMPORTER_H

#include <string>

#include "ds/Import/ModelSpec.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LogicalResult.h"

namespace ds {

struct ImportOptions {
  /// "cpu" (f32 activations) or a CUDA arch "sm_NN[a]" (bf16 activations).
  std::string target = "cpu";
  /// Tokens per KV-cache page.
  int64_t pageSize = 16;
  /// Element type of the residual stream (every residual ds.add and the
  /// input of each rms_norm that reads it): "f32" or "bf16"; empty means
  /// "f32". With "f32" on a CUDA target the residual adds accumulate the
  /// bf16 layer outputs in float32 and the norms write bf16 GEMM inputs;
  /// "bf16" rounds the residual after every add. The cpu target computes in
  /// float32 throughout and accepts only "f32".
  std::string residualDtype;
  /// Element type of the o_proj and down_proj outputs (the values added into
  /// the residual stream; under tensor parallelism also the all-reduce's):
  /// "f32" or "bf16"; empty means the residual stream's type. "f32" on a CUDA
  /// target makes those GEMMs write float32 (one bf16 rounding less per
  /// residual add, an f32 all-reduce); it needs residualDtype "f32".
  std::string projOutDtype;
};

/// Checks `residualDtype` against `target`; the error names the option.
Status validateResidualDtype(const std::string &residualDtype, const std::string &target);
/// Checks `projOutDtype` against `target` and `residualDtype`.
Status validateProjOutDtype(const std::string &projOutDtype, const std::string &residualDtype,
                            const std::string &target);

/// Checks `target` ("cpu" or "sm_<digits>[letter]"); the error names it.
Status validateTarget(const std::string &target);

/// Loads the ds and func dialects into `context`.
void registerImportDialects(mlir::MLIRContext &context);

/// Builds and verifies the module. On failure, diagnostics have been emitted
/// to the context's handler and the result is null.
mlir::OwningOpRef<mlir::ModuleOp> importModel(mlir::MLIRContext &context, const ModelSpec &spec,
                                              const ImportOptions &options);

}  // namespace ds

#endif  // DS_IMPORT_IMPORTER_H
