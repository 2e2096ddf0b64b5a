// The overlap schedule (scheduler.h): step N + 1 is queued before step N's
// samples come back, so that the host's scheduling, postprocessing and output
// streaming run while the device computes.
//
//   step() -> schedule N + 1 -> run_overlapped: enqueue N + 1 (a sampled request
//   of N feeds previous_sample_token(row) and the device substitutes the id)
//   -> collect N -> postprocess N (placeholders replaced, stops checked).
//
// Bookkeeping when a step is queued: num_computed advances at once, and every
// entry that samples appends a placeholder token, so the next schedule() sees
// each such request as a decode of one pending token. A request that finishes
// in step N is still in step N + 1: its placeholder is dropped, its KV released
// (later steps run after N + 1 on the device, so its pages are safe to reuse),
// and the SchedRequest is kept in retired_ until step N + 1 is collected, whose
// postprocess skips it.
#include <algorithm>

#include "runtime/scheduler/scheduler.h"

namespace ds {

bool Scheduler::overlap_step_possible() const {
  if (!options_.overlap_schedule || !executor_.samples_on_device() || !executor_.pipelines_sampling()) return false;
  // Penalties read the token history on the device, where a pending token's
  // placeholder is not a token: a penalized request with one waits for a
  // synchronous step (so such a request overlaps every other step). Prompt
  // logprobs need every prompt row's logits on the host.
  for (const ReqPtr& r : running_)
    if (r->needs_prompt_logits() || (r->has_placeholder() && r->sampler->needs_penalties())) return false;
  for (const ReqPtr& r : waiting_)
    if (r->needs_prompt_logits()) return false;
  // No preemption while tokens are pending: the decodes (a page each at most)
  // and the continuing prefills (the token budget, plus a partial page each)
  // must fit in free + evictable pages. Admissions never preempt.
  const int64_t running = static_cast<int64_t>(running_.size());
  return kv_.num_free_pages() + radix_->evictable_pages() >= 2 * running + pages_for(budget_);
}

Status Scheduler::run_overlapped(std::vector<BatchEntry>& batch, const StepBatch& sb, int64_t rows) {
  std::vector<RowSampling> row_sampling;
  row_sampling.reserve(static_cast<size_t>(rows));
  for (const BatchEntry& e : batch)
    for (size_t i = 0; i < e.rows.size(); ++i) row_sampling.push_back(row_sampling_of(*e.req));
  Status st = executor_.enqueue_step_sample(sb, row_sampling);
  if (!st.ok()) {
    fail_batch(batch, st);
    if (inflight_) {
      InFlight f = std::move(*inflight_);
      inflight_.reset();
      std::vector<RowSample> ignored;
      (void)executor_.collect_samples(&ignored);
      fail_batch(f.batch, st);
    }
    retired_.clear();
    return st;
  }
  ++enqueued_seq_;
  ++counters_.overlap_steps_total;
  for (BatchEntry& e : batch) {
    SchedRequest& r = *e.req;
    r.num_computed += e.count;
    // Without prompt rows (overlap_step_possible), an entry's only row is its last token's.
    if (!e.rows.empty()) {
      DS_CHECK(e.rows.size() == 1 && e.rows.back() == r.num_tokens() - 1, "overlap step with prompt rows");
      e.sample_index = r.num_tokens();
      r.tokens.push_back(previous_sample_token(e.first_row));
    }
  }
  std::optional<InFlight> prev = std::move(inflight_);
  inflight_ = InFlight{std::move(batch), rows, enqueued_seq_};
  if (!prev) return Status::Ok();
  return collect_and_postprocess(*prev);
}

Status Scheduler::finish_inflight() {
  InFlight f = std::move(*inflight_);
  inflight_.reset();
  return collect_and_postprocess(f);
}

Status Scheduler::collect_and_postprocess(InFlight& f) {
  Status st = executor_.collect_samples(&samples_);
  if (st.ok() && static_cast<int64_t>(samples_.size()) != f.rows)
    st = Status::Error(StrCat() << "collect_samples returned " << samples_.size() << " samples for " << f.rows
                                << " rows");
  if (st.ok())
    postprocess(f.batch, nullptr, &samples_, /*overlapped=*/true);
  else
    fail_batch(f.batch, st);
  retired_.erase(std::remove_if(retired_.begin(), retired_.end(),
                                [&](const std::pair<uint64_t, ReqPtr>& p) { return p.first <= f.seq; }),
                 retired_.end());
  return st;
}

void Scheduler::drop_finished(const std::vector<SchedRequest*>& done) {
  if (done.empty()) return;
  for (auto it = running_.begin(); it != running_.end();) {
    if (std::find(done.begin(), done.end(), it->get()) == done.end()) {
      ++it;
      continue;
    }
    (*it)->finished = true;
    if (inflight_) retired_.emplace_back(enqueued_seq_, std::move(*it));
    it = running_.erase(it);
  }
}

}  // namespace ds
