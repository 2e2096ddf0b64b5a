// Reading a dscc plan: identifier + format version first, then the flatbuffers
// verifier, then one semantic validation pass (indices in range, shapes
// consistent) so that the rest of dsrt can index the plan without re-checking.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/common/status.h"
#include "runtime/plan/plan_generated.h"

namespace ds {

// The plan format this dsrt reads (plan.fbs `format_version`).
// 2: SourceTensor.slice_rank_divisor (tensor parallelism).
constexpr uint32_t kPlanFormatVersion = 2;

// Number of step inputs (token ids, positions, logit rows) and outputs (logits).
constexpr int kNumStepInputs = 3;
constexpr int kNumStepOutputs = 1;

class LoadedPlan {
 public:
  // Reads, checks and validates a plan file.
  static Result<std::unique_ptr<LoadedPlan>> from_file(const std::string& path);
  // Same for bytes in memory; `origin` names them in errors (e.g. the path).
  static Result<std::unique_ptr<LoadedPlan>> from_bytes(std::string bytes, std::string origin);

  const plan::Plan& plan() const { return *plan_; }
  const plan::Plan* operator->() const { return plan_; }
  const std::string& origin() const { return origin_; }
  std::string_view bytes() const { return bytes_; }

 private:
  LoadedPlan() = default;
  std::string bytes_;
  std::string origin_;
  const plan::Plan* plan_ = nullptr;
};

// Reads the format_version field of a plan without trusting the rest of the
// buffer (bounds-checked by hand). Errors if the bytes are not a DSPL plan.
Result<uint32_t> peek_plan_format_version(std::string_view bytes, const std::string& origin);

// Semantic checks (run by LoadedPlan; exposed for dscc's exporter tests).
Status validate_plan(const plan::Plan& p);

// Effective shape of a source after its slice (the same on every rank).
std::vector<int64_t> sliced_source_shape(const plan::SourceTensor& s);

// First element along slice_axis of the source's slice for tensor-parallel rank
// `rank`: slice_start + (rank / slice_rank_divisor) * slice_rank_stride.
int64_t source_slice_start(const plan::SourceTensor& s, int rank);

}  // namespace ds
