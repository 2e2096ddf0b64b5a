// The scheduler's view of one request: its token history (prompt, then the
// generated tokens), where its KV lives, and its sampling state. Owned and
// touched by the scheduler loop only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/scheduler/radix_cache.h"
#include "runtime/scheduler/request.h"
#include "runtime/scheduler/token_sampler.h"

namespace ds {

struct SchedRequest {
  RequestId id = 0;
  std::shared_ptr<RequestSink> sink;
  RequestSampling sampling;
  uint64_t seed = 0;  // resolved: the request's, or a random one
  std::unique_ptr<RequestSampler> sampler;

  // Prompt followed by the generated tokens. After a preemption the whole
  // history is recomputed as if it were the prompt.
  std::vector<int32_t> tokens;
  int64_t prompt_len = 0;
  int64_t max_new_tokens = 0;  // after clipping to the context left

  // KV state: tokens[0, num_computed) are in `pages`; the first prefix_pages
  // pages were matched in the prefix cache (prefix_node locked).
  PageTable pages;
  int64_t num_computed = 0;
  RadixCache::Node* prefix_node = nullptr;

  // Reporting.
  int64_t cached_prompt_tokens = 0;  // of the first admission
  bool admitted_once = false;
  bool first_output_sent = false;
  std::vector<std::optional<TokenLogprob>> prompt_logprobs;  // filled during prefill when asked
  int64_t num_preemptions = 0;

  // Per-step bookkeeping.
  bool in_batch = false;
  // Finished while a queued (overlap) step still names it: kept alive, skipped.
  bool finished = false;

  // Overlap schedule: the last token may be previous_sample_token(row) (batch.h),
  // the id a queued step is sampling; it is replaced when that step is collected.
  bool has_placeholder() const { return !tokens.empty() && tokens.back() < 0; }
  // Drops the pending tokens (a failed or aborted request's, never sampled).
  void drop_placeholders() {
    while (has_placeholder()) tokens.pop_back();
  }
  int64_t num_generated() const { return static_cast<int64_t>(tokens.size()) - prompt_len; }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  // Tokens not yet in the KV cache (the last token always: its logits give the next one).
  int64_t pending() const { return num_tokens() - num_computed; }
  // A running request with one token to feed (decode step).
  bool is_decode() const { return pending() == 1; }
  bool needs_prompt_logits() const { return sampling.prompt_logprobs && !first_output_sent; }
  int64_t remaining_new_tokens() const { return max_new_tokens - num_generated(); }
};

}  // namespace ds
