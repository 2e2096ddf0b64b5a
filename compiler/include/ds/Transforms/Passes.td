//===- Passes.td - ds compiler passes ----------------------------*- tablegen -*-===//

#ifndef DS_TRANSFORMS_PASSES_TD
#define DS_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

#endif // DS_TRANSFORMS_PASSES_TD
