#include "runtime/executor/cuda/step_metadata.h"

#include <algorithm>
#include <cstdint>

namespace ds::cuda {
namespace {

constexpr int kUnpackBlocks = 64;
constexpr int kUnpackThreads = 256;

__global__ void unpack_step_kernel(const int32_t* __restrict__ blob, StepMetaBuffers out) {
  const int T = blob[0], R = blob[1], S = blob[2], S_real = blob[3];
  const int32_t* tokens = blob + kStepHeaderWords;
  const int32_t* positions = tokens + T;
  const int32_t* logit_rows = positions + T;
  const int32_t* q_start = logit_rows + R;
  const int32_t* kv_len = q_start + S + 1;
  const int32_t* page_start = kv_len + S;
  const int32_t* pages = page_start + S + 1;

  const int tid = blockIdx.x * blockDim.x + threadIdx.x;
  const int nthreads = gridDim.x * blockDim.x;
  if (tid == 0) out.args->num_tokens = T;
  for (int i = tid; i < T; i += nthreads) {
    const int32_t t = tokens[i];  // < 0: the previous sampling's id of row -1 - t (checked on the host)
    out.tokens[i] = t >= 0 || out.prev_ids == nullptr ? t : out.prev_ids[static_cast<long long>(-1 - t) * out.prev_ids_stride];
    out.positions[i] = positions[i];
  }
  for (int i = tid; i < R; i += nthreads) out.logit_rows[i] = logit_rows[i];
  for (int i = tid; i <= S; i += nthreads) out.q_start[i] = q_start[i];
  for (int i = tid; i < S; i += nthreads) out.kv_len[i] = kv_len[i];

  // One block per sequence (grid-stride): its page-table row and its tokens' slots.
  const int ps = out.page_size;
  for (int s = blockIdx.x; s < S; s += gridDim.x) {
    const int p0 = page_start[s], np = page_start[s + 1] - p0;
    int32_t* row = out.page_table + static_cast<long long>(s) * out.page_table_stride;
    for (int j = threadIdx.x; j < np; j += blockDim.x) row[j] = pages[p0 + j];
    const int q0 = q_start[s], q1 = q_start[s + 1];
    const int first = kv_len[s] - (q1 - q0);  // history position of row q0
    for (int i = q0 + threadIdx.x; i < q1; i += blockDim.x) {
      const int h = first + (i - q0);
      out.slot_mapping[i] = s < S_real ? pages[p0 + h / ps] * ps + h % ps : -1;
    }
  }
}

constexpr int kCopyThreads = 256;

__global__ void copy_step_kernel(int32_t* __restrict__ dst, const int32_t* __restrict__ src, size_t words) {
  // 16-byte reads when both ends allow it (a step of a few sequences is one round trip).
  const bool vec = (reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) % 16 == 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t done = 0;
  if (vec) {
    const size_t quads = words / 4;
    for (size_t q = i; q < quads; q += stride)
      reinterpret_cast<int4*>(dst)[q] = reinterpret_cast<const int4*>(src)[q];
    done = quads * 4;
  }
  for (size_t w = done + i; w < words; w += stride) dst[w] = src[w];
}

}  // namespace

Status launch_copy_step(int32_t* blob, const int32_t* mapped_staging, size_t words, cudaStream_t stream) {
  if (!blob || !mapped_staging) return Status::Error("copy_step: null blob or staging (is the staging mapped?)");
  if (words == 0) return Status::Ok();
  const size_t per_block = static_cast<size_t>(kCopyThreads) * 4;
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>((words + per_block - 1) / per_block, 64));
  copy_step_kernel<<<blocks, kCopyThreads, 0, stream>>>(blob, mapped_staging, words);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

size_t step_blob_words(int64_t token_capacity, int64_t max_logit_rows, int64_t max_seqs, int64_t max_pages_per_seq) {
  return packed_step_words(token_capacity, max_logit_rows, max_seqs, max_seqs * max_pages_per_seq);
}

Status launch_unpack_step(const int32_t* blob, const StepMetaBuffers& out, cudaStream_t stream) {
  if (!blob || !out.args || !out.tokens || !out.positions || !out.logit_rows || !out.q_start || !out.kv_len ||
      !out.page_table || !out.slot_mapping || out.page_size <= 0)
    return Status::Error("unpack_step: null buffer or invalid page size");
  unpack_step_kernel<<<kUnpackBlocks, kUnpackThreads, 0, stream>>>(blob, out);
  DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace ds::cuda
