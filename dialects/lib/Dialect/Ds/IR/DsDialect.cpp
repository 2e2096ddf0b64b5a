//===- DsDialect.cpp - the ds dialect ---------------------------*- C++ -*-===//

#include "ds/Dialect/Ds/IR/DsDialect.h"

#include "ds/Dialect/Ds/IR/DsAttrs.h"
#include "ds/Dialect/Ds/IR/DsOps.h"

using namespace mlir;
using namespace mlir::ds;

#include "ds/Dialect/Ds/IR/DsDialect.cpp.inc"

void DsDialect::initialize() {
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "ds/Dialect/Ds/IR/DsOps.cpp.inc"
      >();
}
