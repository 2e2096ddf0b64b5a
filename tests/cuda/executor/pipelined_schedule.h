// The schedule of the pipelined-sampling tests (one GPU and tensor-parallel):
// kSeqs prompts, then kDecodeSteps decode steps of every sequence, run either
// synchronously (step_sample, each step fed the previous step's ids) or
// pipelined (enqueue_step_sample / collect_samples with one step in flight,
// each step's tokens previous_sample_token(s)). Both return the ids per step.
#pragma once

#include <cstdint>
#include <vector>

#include "executor_harness.h"

namespace ds::cuda::testing {

constexpr int kPipelinedSeqs = 3;
constexpr int kPipelinedDecodeSteps = 12;

// Row r samples sequence r; even rows greedy, odd rows temperature 0.9 / top-k 50
// with a per-row seed, the draw keyed by the decode step (counter).
std::vector<RowSampling> pipelined_rows(int step);

// Synchronous reference: each decode step carries the previous step's ids.
std::vector<std::vector<int32_t>> run_synchronous(Side& side, int64_t vocab);

// Pipelined: the step after step k is queued before step k's samples are
// collected, its tokens previous_sample_token(s).
std::vector<std::vector<int32_t>> run_pipelined(Side& side, int64_t vocab);

}  // namespace ds::cuda::testing
