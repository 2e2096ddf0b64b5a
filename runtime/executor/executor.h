// The executor interface: runs the plan's program for one step. The CPU
// reference executor implements it today; the CUDA executor plugs in later.
#pragma once

#include <cstdint>

#include "runtime/common/status.h"
#include "runtime/executor/batch.h"

namespace ds {

class Executor {
 public:
  virtual ~Executor() = default;
  // Most tokens one step may carry (fixed at load: the arena is sized for it).
  virtual int64_t token_capacity() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Runs one step; writes float32 logits [batch.logit_rows.size(), vocab_size()].
  // The KV cache must already hold pages for every sequence's new tokens.
  virtual Status step(const StepBatch& batch, float* logits) = 0;
};

}  // namespace ds
