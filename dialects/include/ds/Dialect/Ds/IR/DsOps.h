//===- DsOps.h - ds dialect operations --------------------------*- C++ -*-===//
//
// Include this header to use the ds dialect: it brings in the dialect, its
// attributes and its operations (all in namespace mlir::ds).
//
//===----------------------------------------------------------------------===//

#ifndef DS_DIALECT_DS_IR_DSOPS_H
#define DS_DIALECT_DS_IR_DSOPS_H

#include "ds/Dialect/Ds/IR/DsAttrs.h"
#include "ds/Dialect/Ds/IR/DsDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::ds {

/// The paged KV cache, as a side-effect resource: ds.kv_cache_write writes it,
/// ds.paged_attention reads it, so they are never reordered.
struct KvCacheResource : public SideEffects::Resource::Base<KvCacheResource> {
  StringRef getName() final { return "<KvCache>"; }
};

/// The tensor-parallel communicator: ds.all_reduce and ds.all_gather read and
/// write it, so collectives keep their order and are never erased or merged.
struct CommResource : public SideEffects::Resource::Base<CommResource> {
  StringRef getName() final { return "<Comm>"; }
};

} // namespace mlir::ds

#define GET_OP_CLASSES
#include "ds/Dialect/Ds/IR/DsOps.h.inc"

#endif // DS_DIALECT_DS_IR_DSOPS_H
