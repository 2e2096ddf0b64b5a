//===- ExportUtils.h - Helpers of the plan exporter -------------*- C++ -*-===//
//
// Private to the exporter (ProgramExporter.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef DS_LIB_EXPORT_EXPORTUTILS_H
#define DS_LIB_EXPORT_EXPORTUTILS_H

#include <set>
#include <string>
#include <vector>

#include "ProgramExporter.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/Types.h"

namespace ds {

/// The plan dtype of an MLIR element type (f32, f16, bf16, f8E4M3FN, i32,
/// i64, i8, i1); failure for anything else.
mlir::FailureOr<DType> toDType(mlir::Type t);

/// Name of an op for buffers and kernels: its NameLoc (the importer's
/// "l3.q_proj"), the names of a FusedLoc joined by '+', or "".
std::string locName(mlir::Location loc);

/// "l12.q_proj" -> "q_proj", "l0.q_proj+l0.k_proj" -> "q_proj+k_proj".
std::string stripLayerPrefix(const std::string &name);

/// `name`, or `name.N` with the first N that is not taken yet; records it.
std::string uniqueName(std::set<std::string> &taken, std::string name);

/// The shape of a [T, ...] activation without the token dimension.
std::vector<int64_t> rowShape(mlir::Type t);

/// The op's inherent attributes as plan attributes, sorted by key: MLIR
/// attribute names are the plan keys, #ds.rope is flattened to its fields,
/// discardable ds.* attributes and symbol references are skipped.
mlir::FailureOr<std::vector<PlanAttr>> flattenAttrs(mlir::Operation *op);

/// Everything that makes two kernels different, for deduplication.
std::string kernelKey(const PlanKernel &k);

}  // namespace ds

#endif  // DS_LIB_EXPORT_EXPORTUTILS_H
