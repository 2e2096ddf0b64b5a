// Device counterpart of ds::all_gather_rows (runtime/dist/communicator.h) for
// the plan's `all_gather` (axis -1), e.g. vocab-parallel logits [R, V/N] ->
// [R, V]: NCCL gathers rank-major ([N, R, n]); N strided copies
// (cudaMemcpy2DAsync) interleave the rows. Asynchronous on `stream` and
// CUDA-graph capturable, like the collectives themselves.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"
#include "runtime/dist/cuda/device_communicator.h"

namespace ds::cuda {

// Bytes of device scratch all_gather_rows needs (0 when rows == 1 or size == 1:
// then rank-major already is the row layout and NCCL writes `out` directly).
size_t all_gather_rows_scratch_bytes(int size, int64_t rows, int64_t n, DType dtype);

// `in` is [rows, n] on every rank; `out` becomes [rows, size * n] with rank r's
// columns at r * n. `scratch` holds all_gather_rows_scratch_bytes(...) bytes
// and must not overlap `in` or `out`; `in` must not overlap `out`.
Status all_gather_rows(DeviceCommunicator& comm, const void* in, DType dtype, int64_t rows, int64_t n, void* out,
                       void* scratch, cudaStream_t stream);

}  // namespace ds::cuda
