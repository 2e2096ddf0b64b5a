// Row gathers and elementwise helpers of the CUDA executor, bf16 activations.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"

namespace ds::cuda {

// out[t, :] = table[ids[t] - vocab_start, :] for ids in [vocab_start, vocab_start + rows),
// zeros otherwise (vocab-parallel embedding; vocab_start = 0, rows = vocab unsharded).
// table: [rows, hidden] in table_dtype (bf16/f16/f32); out: [num_tokens, hidden] bf16.
// ids: device int32 [num_tokens]. Ids outside [0, total_vocab) write zeros (the
// runtime validates ids on the host before the step).
Status embedding_gather(const int32_t* ids, int64_t num_tokens, const void* table, DType table_dtype,
                        int64_t vocab_start, int64_t rows, int64_t hidden, void* out, cudaStream_t stream);

// out[i, :] = x[rows[i], :] for i < num_rows; x, out: [*, width] with element size `elem_bytes`
// (rows of 16-byte multiples take the vector path). rows: device int32.
Status gather_rows(const void* x, int64_t width, int64_t elem_bytes, const int32_t* rows, int64_t num_rows, void* out,
                   cudaStream_t stream);

// dst = cast(src), n elements, between f32/f16/bf16 (equal dtypes: copy).
Status cast_elements(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n, cudaStream_t stream);

// Copies a [rows, cols] block (src row stride src_ld elements, src_dtype) into dst at
// (dst_row0, dst_col0) of a row-major matrix with dst_ld columns, casting to dst_dtype.
// Used to place checkpoint slices into concatenated weights on the GPU.
Status place_block(const void* src, DType src_dtype, int64_t rows, int64_t cols, int64_t src_ld, void* dst,
                   DType dst_dtype, int64_t dst_ld, int64_t dst_row0, int64_t dst_col0, cudaStream_t stream);

// Fills n elements of dst (f32/f16/bf16) with ds::dummy_weight_value(key, i, scale)
// (runtime/weights/dummy_init.h): the same values the CPU loader produces.
Status fill_dummy(void* dst, DType dtype, int64_t n, uint64_t key, float scale, cudaStream_t stream);

}  // namespace ds::cuda
