#include "pipelined_schedule.h"

namespace ds::cuda::testing {
namespace {

// The prompt step: kPipelinedSeqs sequences of different lengths, one logit row each.
std::vector<Part> prompts(int64_t vocab) {
  std::vector<Part> parts;
  for (int s = 0; s < kPipelinedSeqs; ++s) {
    Part p{s, {}, false};
    for (int64_t i = 0; i < 7 + 5 * s; ++i) p.tokens.push_back(token_at(s, i, vocab));
    parts.push_back(p);
  }
  return parts;
}

}  // namespace

// Row r samples sequence r; even rows greedy, odd rows temperature 0.9 / top-k 50
// with a per-row seed, the draw keyed by the decode step (counter).
std::vector<RowSampling> pipelined_rows(int step) {
  std::vector<RowSampling> rows(kPipelinedSeqs);
  for (int r = 0; r < kPipelinedSeqs; ++r) {
    rows[r].temperature = r % 2 == 0 ? 0.0f : 0.9f;
    rows[r].top_k = r % 2 == 0 ? -1 : 50;
    rows[r].seed = 1000 + static_cast<uint64_t>(r);
    rows[r].counter = static_cast<uint64_t>(step);
  }
  return rows;
}

// Synchronous reference: each decode step carries the previous step's ids.
std::vector<std::vector<int32_t>> run_synchronous(Side& side, int64_t vocab) {
  std::vector<std::vector<int32_t>> ids;
  std::vector<Part> parts = prompts(vocab);
  for (int step = 0; step <= kPipelinedDecodeSteps; ++step) {
    StepBatch b = take(side.build(parts), "build");
    std::vector<RowSample> out;
    Status st = side.exec().step_sample(b, pipelined_rows(step), &out);
    if (!st.ok() || out.size() != static_cast<size_t>(kPipelinedSeqs)) {
      ADD_FAILURE() << "step_sample " << step << ": " << st.message();
      return ids;
    }
    side.commit(parts);
    ids.emplace_back();
    parts.clear();
    for (int s = 0; s < kPipelinedSeqs; ++s) {
      ids.back().push_back(out[s].id);
      parts.push_back(Part{s, {out[s].id}, false});
    }
  }
  return ids;
}

// Pipelined: the step after step k is queued before step k's samples are
// collected, its tokens previous_sample_token(s).
std::vector<std::vector<int32_t>> run_pipelined(Side& side, int64_t vocab) {
  std::vector<std::vector<int32_t>> ids;
  Executor& e = side.exec();
  // Collects the oldest queued step's samples into `ids`; false (a failure recorded) on an error.
  auto collect = [&]() {
    std::vector<RowSample> out;
    const Status st = e.collect_samples(&out);
    if (!st.ok() || out.size() != static_cast<size_t>(kPipelinedSeqs)) {
      ADD_FAILURE() << "collect_samples: " << st.message() << " (" << out.size() << " samples)";
      return false;
    }
    ids.emplace_back();
    for (const RowSample& r : out) ids.back().push_back(r.id);
    return true;
  };
  std::vector<Part> parts = prompts(vocab);
  int queued = 0;
  for (int step = 0; step <= kPipelinedDecodeSteps; ++step) {
    StepBatch b = take(side.build(parts), "build");
    Status st = e.enqueue_step_sample(b, pipelined_rows(step));
    if (!st.ok()) {
      ADD_FAILURE() << "enqueue_step_sample " << step << ": " << st.message();
      break;
    }
    ++queued;
    side.commit(parts);
    parts.clear();
    for (int s = 0; s < kPipelinedSeqs; ++s) parts.push_back(Part{s, {previous_sample_token(s)}, false});
    if (queued == 2) {  // keep one step in flight while the host reads the other
      --queued;
      if (!collect()) break;
    }
  }
  for (; queued > 0; --queued)
    if (!collect()) break;
  return ids;
}

}  // namespace ds::cuda::testing
