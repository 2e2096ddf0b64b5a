//===- GemvMarks.h - liveness added by the decode marks ---------*- C++ -*-===//
//
// In decode steps the executor may skip the group next to a linear marked by
// ds-gemv-prologue (ds.prologue) or ds-gemv-epilogue (ds.epilogue) and let the
// GEMV do the group's work, or skip the rope + KV-write group before an
// attention marked by ds-attention-rope (ds.rope_prologue) and let the
// attention kernel do it. That adds accesses the IR does not show:
//  - a value read by a group whose result is the x of a linear marked
//    ds.prologue is also read by that linear;
//  - a result of a group that reads the result of a linear marked ds.epilogue
//    is written by that linear already;
//  - a value read by a group whose result is the q of an attention marked
//    ds.rope_prologue (the qkv row) is also read by that attention.
// ds-plan-buffers (arena offsets) and the plan exporter (each buffer's
// first/last instruction) both extend live ranges by these.
//
//===----------------------------------------------------------------------===//

#ifndef DS_TRANSFORMS_GEMVMARKS_H
#define DS_TRANSFORMS_GEMVMARKS_H

#include "mlir/IR/Value.h"
#include "llvm/ADT/SmallVector.h"

namespace mlir::ds {

/// True if `op` is a ds.fused_group that computes exactly
/// `ds.rms_norm %arg0, %arg1` and yields it as its only result (the groups
/// of ds-gemv-prologue).
bool isPureRmsNorm(Operation *op);

/// The linears marked ds.prologue that also read `value` (through the group
/// that computes their x).
llvm::SmallVector<Operation *> gemvPrologueReaders(Value value);

/// The attentions marked ds.rope_prologue that also read `value` (through the
/// group that computes their q).
llvm::SmallVector<Operation *> attentionRopeReaders(Value value);

/// The linear marked ds.epilogue that writes `value` (a result of the group
/// reading the linear's result) before the group does, or null.
Operation *gemvEpilogueWriter(Value value);

} // namespace mlir::ds

#endif // DS_TRANSFORMS_GEMVMARKS_H
