// The device-side layout of one DeviceSampler call and the launcher of the
// per-row sampling kernel (sampling_kernel.cu). Host code packs one
// SampleRowParams per row followed by the rows' token histories into a single
// buffer, uploads it with one copy, launches, and reads back SampleRowOut[rows].
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/common/status.h"

namespace ds::cuda {

constexpr int kSamplingMaxLogprobs = 20;

struct SampleRowParams {
  float temperature;         // 0 or top_k == 1: greedy
  float top_p;               // (0, 1]
  float min_p;               // [0, 1]
  float repetition_penalty;  // > 0; 1: off
  float frequency_penalty;
  float presence_penalty;
  int32_t top_k;             // <= 0 or >= vocab: off
  int32_t logprobs;          // -1: none; 0..20
  uint64_t seed;
  uint64_t counter;
  int64_t history_offset;    // first token of prompt ++ output in the token array
  int32_t prompt_len;
  int32_t output_len;
  int32_t scratch_slot;      // penalized rows: their [vocab] row of the scratch; -1: none
};

struct SampleRowOut {
  int32_t id;
  float logprob;                           // raw log_softmax of the chosen token
  int32_t top_ids[kSamplingMaxLogprobs];   // best first, ties: lower id first
  float top_logprobs[kSamplingMaxLogprobs];
};

struct SampleLaunch {
  float* logits = nullptr;                 // [rows, vocab], modified by penalties
  int64_t vocab = 0;
  int32_t rows = 0;
  const SampleRowParams* params = nullptr; // [rows] device or mapped pinned memory
  const int32_t* tokens = nullptr;         // histories (device)
  float* raw_history = nullptr;            // same length as tokens: raw logits of history tokens
  int32_t* scratch = nullptr;              // [slots, vocab] int32, all zero between launches
  SampleRowOut* out = nullptr;             // [rows]
  SampleRowOut* out_host = nullptr;        // [rows] mapped pinned memory (device address) or null: a copy of out
};

// One CTA per row: raw logprobs, penalties, greedy argmax or filtered draw.
Status launch_sample_rows(const SampleLaunch& args, cudaStream_t stream);

// Rows without logprobs or penalties over a thread-block cluster of `splits`
// (2, 4 or 8) CTAs per row (split_sampling_kernel.cu, sm_90+): the same ids as
// the per-row kernel. Rows with 1 < top_k <= kSamplingSmallTopK (< vocab) take
// the per-row kernel's small top-k path and must not be launched here.
constexpr int kSamplingSmallTopK = 1024;
constexpr int kSamplingMaxClusterSplits = 8;
// CTAs per row that keep rows x splits within two CTAs per SM and give every CTA
// at least one group of 4 tokens (1: the per-row kernel).
int sampling_cluster_splits(int64_t rows, int64_t vocab, int num_sms);
Status launch_sample_rows_split(const SampleLaunch& args, int splits, cudaStream_t stream);

// Greedy rows without logprobs or penalties (greedy_kernel.cu): greedy_splits
// CTAs per row, merged by the row's last CTA; the same ids as the per-row
// kernel. part_value / part_id hold rows * kGreedyMaxSplits entries; counters
// [rows] start at zero and are left at zero.
constexpr int kGreedyMaxSplits = 32;
struct GreedyLaunch {
  const float* logits = nullptr;  // [rows, vocab]
  int64_t vocab = 0;
  int32_t rows = 0;
  float* part_value = nullptr;
  int32_t* part_id = nullptr;
  unsigned* counters = nullptr;
  SampleRowOut* out = nullptr;       // [rows]
  SampleRowOut* out_host = nullptr;  // [rows] mapped pinned memory (device address) or null
};
int greedy_splits(int64_t vocab);
Status launch_greedy_rows(const GreedyLaunch& args, cudaStream_t stream);

}  // namespace ds::cuda
