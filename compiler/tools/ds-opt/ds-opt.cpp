//===- ds-opt.cpp - ds dialect optimizer driver -----------------*- C++ -*-===//
//
// mlir-opt for the ds dialect: parses ds IR, runs ds passes (and
// --canonicalize), prints the result. Used by the lit tests.
//
//===----------------------------------------------------------------------===//

#include "ds/Dialect/Ds/IR/DsOps.h"
#include "ds/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::ds::DsDialect, mlir::func::FuncDialect>();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::ds::registerDsPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "ds dialect optimizer driver\n", registry));
}
