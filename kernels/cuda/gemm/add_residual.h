// y += residual over a [rows, n] block of rows with row stride ld (both
// tensors), element type bf16, f16 or f32: the residual add of producers that
// cannot fuse it into their own epilogue (cuBLASLt without a usable beta
// path, the NCCL all-reduce). The sum is formed in f32 and rounded once.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"

namespace ds::cuda {

// y[r * ld + c] += residual[r * ld + c] for r < rows, c < n. y and residual
// may be the same buffer (y doubles). 16-byte vectorized when y, residual and
// the row pitch are 16-byte aligned (scalar tails for n not a multiple of the
// vector), scalar otherwise. PDL-aware launch (waits before touching memory).
// Errors: null pointers (rows, n > 0), dtype not bf16/f16/f32, ld < n,
// negative sizes, pointers not aligned to the element size.
Status add_residual(void* y, const void* residual, DType dtype, int64_t rows, int64_t n, int64_t ld,
                    cudaStream_t stream);

}  // namespace ds::cuda
