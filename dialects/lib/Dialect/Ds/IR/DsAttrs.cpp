//===- DsAttrs.cpp - ds dialect attributes ----------------------*- C++ -*-===//

#include "ds/Dialect/Ds/IR/DsAttrs.h"

#include "ds/Dialect/Ds/IR/DsDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::ds;

#define GET_ATTRDEF_CLASSES
#include "ds/Dialect/Ds/IR/DsAttrs.cpp.inc"

void DsDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "ds/Dialect/Ds/IR/DsAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// SourceAttr
//===----------------------------------------------------------------------===//

LogicalResult SourceAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 StringRef name, StringRef file, Type dtype,
                                 ArrayRef<int64_t> shape, int64_t sliceAxis,
                                 int64_t sliceStart, int64_t sliceSize,
                                 int64_t sliceRankStride,
                                 int64_t sliceRankDivisor) {
  if (name.empty())
    return emitError() << "#ds.source: empty tensor name";
  if (file.empty())
    return emitError() << "#ds.source '" << name << "': empty file name";
  if (!dtype.isIntOrFloat())
    return emitError() << "#ds.source '" << name
                       << "': dtype must be an integer or float type, got "
                       << dtype;
  for (int64_t dim : shape)
    if (dim < 0)
      return emitError() << "#ds.source '" << name
                         << "': negative dimension in shape";
  if (sliceRankDivisor < 1)
    return emitError() << "#ds.source '" << name
                       << "': slice_rank_divisor must be at least 1, got "
                       << sliceRankDivisor;
  if (sliceAxis == -1)
    return success();
  if (sliceAxis < 0 || sliceAxis >= static_cast<int64_t>(shape.size()))
    return emitError() << "#ds.source '" << name << "': slice_axis "
                       << sliceAxis << " out of range for rank "
                       << shape.size();
  if (sliceSize <= 0 || sliceStart < 0 || sliceRankStride < 0)
    return emitError() << "#ds.source '" << name
                       << "': slice_size must be positive and slice_start, "
                          "slice_rank_stride non-negative";
  if (sliceStart + sliceSize > shape[sliceAxis])
    return emitError() << "#ds.source '" << name << "': slice ["
                       << sliceStart << ", " << sliceStart + sliceSize
                       << ") exceeds dimension " << shape[sliceAxis];
  return success();
}

SmallVector<int64_t> SourceAttr::getSlicedShape() const {
  SmallVector<int64_t> dims(getShape());
  if (getSliceAxis() >= 0)
    dims[getSliceAxis()] = getSliceSize();
  return dims;
}

//===----------------------------------------------------------------------===//
// RopeAttr
//===----------------------------------------------------------------------===//

LogicalResult RopeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               APFloat theta, StringRef style, int64_t rotaryDim,
                               StringRef scaling, APFloat factor,
                               int64_t originalMaxPosition, APFloat betaFast,
                               APFloat betaSlow, APFloat mscale,
                               APFloat mscaleAllDim) {
  if (!(theta.convertToDouble() > 0))
    return emitError() << "#ds.rope: theta must be positive";
  if (style != "neox" && style != "interleaved")
    return emitError() << "#ds.rope: style must be \"neox\" or "
                          "\"interleaved\", got \""
                       << style << "\"";
  if (rotaryDim <= 0 || rotaryDim % 2 != 0)
    return emitError() << "#ds.rope: rotary_dim must be positive and even, got "
                       << rotaryDim;
  if (scaling != "none" && scaling != "linear" && scaling != "yarn")
    return emitError() << "#ds.rope: scaling must be \"none\", \"linear\" or "
                          "\"yarn\", got \""
                       << scaling << "\"";
  if (!(factor.convertToDouble() > 0))
    return emitError() << "#ds.rope: factor must be positive";
  if (scaling == "yarn" && originalMaxPosition <= 0)
    return emitError()
           << "#ds.rope: yarn scaling needs a positive original_max_position";
  return success();
}
