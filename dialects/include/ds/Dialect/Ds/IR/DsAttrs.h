//===- DsAttrs.h - ds dialect attributes ------------------------*- C++ -*-===//

#ifndef DS_DIALECT_DS_IR_DSATTRS_H
#define DS_DIALECT_DS_IR_DSATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectImplementation.h"

#define GET_ATTRDEF_CLASSES
#include "ds/Dialect/Ds/IR/DsAttrs.h.inc"

#endif // DS_DIALECT_DS_IR_DSATTRS_H
