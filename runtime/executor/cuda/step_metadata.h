// The per-step description the CUDA executor uploads in one copy, and the tiny
// kernel that unpacks it into the fixed device buffers every launch of the
// program reads (so that a captured CUDA graph stays valid from step to step).
//
// Packed blob (int32 words, host pinned staging -> device, one cudaMemcpyAsync):
//   header[8]: T, R, S, S_real, P, 0, 0, 0
//   tokens[T] positions[T] logit_rows[R] q_start[S+1] kv_len[S] page_start[S+1] pages[P]
// Sequence s owns step rows [q_start[s], q_start[s+1]) which are its history
// positions [kv_len[s] - q_len, kv_len[s]); its pages are
// pages[page_start[s] .. page_start[s+1]). Sequences s >= S_real are padding
// (CUDA-graph replay of a smaller batch): their tokens get slot -1 (no KV write).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "runtime/common/status.h"
#include "runtime/cuda/kernel_library.h"

namespace ds::cuda {

constexpr int kStepHeaderWords = 8;

// Most int32 words a blob can take for the given limits.
size_t step_blob_words(int64_t token_capacity, int64_t max_logit_rows, int64_t max_seqs, int64_t max_pages_per_seq);

// Fixed device buffers the unpacked step lands in.
struct StepMetaBuffers {
  DsStepArgs* args = nullptr;     // num_tokens written by the kernel; slot_mapping fixed
  int32_t* tokens = nullptr;      // [token_capacity]
  int32_t* positions = nullptr;   // [token_capacity]
  int32_t* logit_rows = nullptr;  // [max_logit_rows]
  int32_t* q_start = nullptr;     // [max_seqs + 1]
  int32_t* kv_len = nullptr;      // [max_seqs]
  int32_t* page_table = nullptr;  // [max_seqs, page_table_stride]
  int32_t* slot_mapping = nullptr;  // [token_capacity]
  int64_t page_table_stride = 0;
  int32_t page_size = 16;
};

// Unpacks `blob` (device copy of the packed step) into `out` and computes the
// slot mapping. The launch shape is fixed (independent of the step): capture safe.
Status launch_unpack_step(const int32_t* blob, const StepMetaBuffers& out, cudaStream_t stream);

}  // namespace ds::cuda
