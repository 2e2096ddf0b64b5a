// The per-step description the CUDA executor uploads in one copy, and the tiny
// kernel that unpacks it into the fixed device buffers every launch of the
// program reads (so that a captured CUDA graph stays valid from step to step).
//
// Packed blob (int32 words, mapped pinned staging -> device blob, launch_copy_step):
//   header[8]: T, R, S, S_real, P, 0, 0, 0
//   tokens[T] positions[T] logit_rows[R] q_start[S+1] kv_len[S] page_start[S+1] pages[P]
// Sequence s owns step rows [q_start[s], q_start[s+1]) which are its history
// positions [kv_len[s] - q_len, kv_len[s]); its pages are
// pages[page_start[s] .. page_start[s+1]). Sequences s >= S_real are padding
// (CUDA-graph replay of a smaller batch): their tokens get slot -1 (no KV write).
// A token t < 0 is previous_sample_token(r) = -1 - r (runtime/executor/batch.h):
// the kernel reads the id that the last sampling before it chose for row r
// (StepMetaBuffers::prev_ids), so a decode step can be queued before the host
// knows the token it continues from.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "runtime/common/status.h"
#include "runtime/cuda/kernel_library.h"

namespace ds::cuda {

constexpr int kStepHeaderWords = 8;

// Words of a blob of T tokens, R logit rows, S sequences and P pages.
constexpr size_t packed_step_words(int64_t T, int64_t R, int64_t S, int64_t P) {
  return static_cast<size_t>(kStepHeaderWords + 2 * T + R + 3 * S + 2 + P);
}

// Most int32 words a blob can take for the given limits.
size_t step_blob_words(int64_t token_capacity, int64_t max_logit_rows, int64_t max_seqs, int64_t max_pages_per_seq);

// The sections of a blob being packed on the host (the layout above).
struct PackedStep {
  int32_t* tokens;      // [T]
  int32_t* positions;   // [T]
  int32_t* logit_rows;  // [R]
  int32_t* q_start;     // [S + 1]
  int32_t* kv_len;      // [S]
  int32_t* page_start;  // [S + 1]
  int32_t* pages;       // [P]
  size_t words;         // packed_step_words(T, R, S, P)
};
// Writes the header of a blob at `blob` (room for packed_step_words words) and
// returns its sections, for the caller to fill.
inline PackedStep begin_packed_step(int32_t* blob, int64_t T, int64_t R, int64_t S, int64_t S_real, int64_t P) {
  blob[0] = static_cast<int32_t>(T), blob[1] = static_cast<int32_t>(R), blob[2] = static_cast<int32_t>(S);
  blob[3] = static_cast<int32_t>(S_real), blob[4] = static_cast<int32_t>(P), blob[5] = blob[6] = blob[7] = 0;
  PackedStep v;
  v.tokens = blob + kStepHeaderWords;
  v.positions = v.tokens + T;
  v.logit_rows = v.positions + T;
  v.q_start = v.logit_rows + R;
  v.kv_len = v.q_start + S + 1;
  v.page_start = v.kv_len + S;
  v.pages = v.page_start + S + 1;
  v.words = packed_step_words(T, R, S, P);
  return v;
}

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
  const int32_t* prev_ids = nullptr;  // row r's last sampled id at prev_ids[r * prev_ids_stride] (or null)
  int32_t prev_ids_stride = 1;
  int64_t page_table_stride = 0;
  int32_t page_size = 16;
};

// Copies the packed step from mapped pinned staging (PinnedBuffer::
// allocate_mapped, its device_data()) to the device blob with one small kernel
// reading over PCIe: a cudaMemcpyAsync of these few hundred bytes costs ~11 us
// of stream time on an H200 (DMA setup and completion), the kernel a few.
Status launch_copy_step(int32_t* blob, const int32_t* mapped_staging, size_t words, cudaStream_t stream);

// Unpacks `blob` (device copy of the packed step) into `out` and computes the
// slot mapping. The launch shape is fixed (independent of the step): capture safe.
Status launch_unpack_step(const int32_t* blob, const StepMetaBuffers& out, cudaStream_t stream);

}  // namespace ds::cuda
