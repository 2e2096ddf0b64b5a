// Scheduling one step: which tokens of which requests the executor runs.
//
//   1. decodes: every running request with one token to feed (oldest first);
//   2. continuing prefills: running requests in the middle of a chunked prefill;
//   3. admissions: the head of the FCFS waiting queue while the token budget,
//      max_running_requests and the KV admission check allow (head-of-line
//      blocking keeps the order fair).
//
// Logit rows (max_logit_rows): every entry that reaches its request's last
// token asks for one row (its next token is sampled from it); prompt-logprob
// prefills ask for one per prompt token and are cut to the rows the step has
// left, so a step never asks for more rows than the executor's logits buffer.
//
// KV pages come from the pool, then from evicting unreferenced prefix-cache
// pages; when both are short during 1 or 2, the newest running request not yet
// in this step's batch is preempted (its pages released, back to the head of
// the waiting queue, recomputed later with its generated tokens as prompt).
#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/scheduler/scheduler.h"

namespace ds {

std::vector<Scheduler::BatchEntry> Scheduler::schedule() {
  std::vector<BatchEntry> batch;
  for (ReqPtr& r : running_) r->in_batch = false;
  int64_t budget = budget_;
  int64_t rows_left = options_.max_logit_rows > 0 ? options_.max_logit_rows : std::numeric_limits<int64_t>::max();

  // 1. Decodes (one row each: the cap is at least max_running_requests).
  for (size_t i = 0; i < running_.size() && budget > 0 && rows_left > 0;) {
    SchedRequest& r = *running_[i];
    // Overlap schedule: a request whose pending token is its last waits for it.
    if (!r.is_decode() || r.remaining_new_tokens() <= 0) {
      ++i;
      continue;
    }
    if (!ensure_pages_or_preempt(r, r.num_computed + 1)) continue;  // r itself was preempted
    add_entry(r, 1, batch);
    budget -= 1;
    rows_left -= static_cast<int64_t>(batch.back().rows.size());
    ++i;
  }
  // 2. Continuing chunked prefills.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    SchedRequest& r = *running_[i];
    if (r.in_batch) {
      ++i;
      continue;
    }
    const int64_t n = fit_rows(r, std::min(budget, r.pending()), rows_left);
    if (n == 0) {  // no logit row left for it in this step
      ++i;
      continue;
    }
    if (!ensure_pages_or_preempt(r, r.num_computed + n)) continue;
    add_entry(r, n, batch);
    budget -= n;
    rows_left -= static_cast<int64_t>(batch.back().rows.size());
    ++i;
  }
  // 3. Admissions (FCFS).
  while (budget > 0 && !waiting_.empty() &&
         static_cast<int64_t>(running_.size()) < options_.max_running_requests) {
    if (!try_admit(*waiting_.front(), budget, rows_left, batch)) break;
    budget -= batch.back().count;
    rows_left -= static_cast<int64_t>(batch.back().rows.size());
  }
  return batch;
}

int64_t Scheduler::rows_of(const SchedRequest& r, int64_t start, int64_t n) {
  if (n <= 0) return 0;
  // add_entry's rows: t + 1 < prompt_len (prompt logprobs), and the last token.
  int64_t rows = r.needs_prompt_logits() ? std::clamp<int64_t>(r.prompt_len - 1 - start, 0, n) : 0;
  const int64_t last = r.num_tokens() - 1;
  const bool last_counted = r.needs_prompt_logits() && last + 1 < r.prompt_len;
  if (last >= start && last < start + n && !last_counted) ++rows;
  return rows;
}

int64_t Scheduler::fit_rows(const SchedRequest& r, int64_t n, int64_t rows_left) {
  const int64_t start = r.num_computed;
  if (rows_of(r, start, n) <= rows_left) return n;
  // rows_of grows with n: the largest prefix whose rows fit.
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (rows_of(r, start, mid) <= rows_left) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

int64_t Scheduler::growth_reserve_tokens(const SchedRequest& r) const {
  const int64_t remaining = std::clamp<int64_t>(r.remaining_new_tokens(), 0, options_.reserve_clip_tokens);
  return static_cast<int64_t>(std::ceil(options_.new_token_reserve_ratio * static_cast<double>(remaining)));
}

int64_t Scheduler::reserved_pages(const SchedRequest& r) const {
  const int64_t target = pages_for(r.num_tokens() + growth_reserve_tokens(r));
  return std::max<int64_t>(0, target - static_cast<int64_t>(r.pages.pages.size()));
}

bool Scheduler::try_admit(SchedRequest& r, int64_t budget_left, int64_t rows_left, std::vector<BatchEntry>& batch) {
  const int64_t n = r.num_tokens();
  RadixCache::Match m;
  // Prompt logprobs need the logits of every prompt row: no prefix reuse then.
  // At least the last token is always recomputed (its logits give the next token).
  if (options_.enable_prefix_cache && !r.needs_prompt_logits()) {
    m = radix_->match(r.tokens.data(), n, (n - 1) / page_size_);
    radix_->lock(m.last);  // before counting evictable pages: these are no longer evictable
  }
  const int64_t matched = static_cast<int64_t>(m.pages.size());
  // KV admission control: the request's own pages (input + decode growth reserve)
  // plus what the running requests still reserve must fit in free + evictable pages.
  const int64_t available = kv_.num_free_pages() + radix_->evictable_pages();
  int64_t need = 0;
  if (running_.empty()) {
    need = pages_for(n) - matched;  // alone it always fits (the pool holds max_model_len tokens)
  } else {
    need = pages_for(n + growth_reserve_tokens(r)) - matched;
    for (const ReqPtr& q : running_) need += reserved_pages(*q);
  }
  if (need > available) {
    if (m.last) radix_->unlock(m.last);
    return false;
  }
  for (int32_t p : m.pages) {
    Status s = kv_.retain(p);
    DS_CHECK(s.ok(), s.message());
  }
  r.pages.pages = m.pages;
  r.num_computed = matched * page_size_;
  r.prefix_node = m.last;
  const int64_t count = fit_rows(r, std::min(budget_left, r.pending()), rows_left);
  if (count == 0 || !ensure_pages(r, r.num_computed + count)) {
    release_kv(r, false);
    return false;
  }
  counters_.prefix_cache_query_tokens += n;
  counters_.prefix_cache_hit_tokens += r.num_computed;
  if (!r.admitted_once) {
    r.admitted_once = true;
    r.cached_prompt_tokens = r.num_computed;
    counters_.prompt_tokens_total += r.prompt_len;
  }
  running_.push_back(std::move(waiting_.front()));
  waiting_.pop_front();
  add_entry(*running_.back(), count, batch);
  return true;
}

bool Scheduler::ensure_pages(SchedRequest& r, int64_t num_tokens) {
  const int64_t need = pages_for(num_tokens) - static_cast<int64_t>(r.pages.pages.size());
  if (need <= 0) return true;
  if (need > kv_.num_free_pages()) radix_->evict(need - kv_.num_free_pages());
  if (need > kv_.num_free_pages()) return false;
  Status s = kv_.reserve(r.pages, num_tokens);
  DS_CHECK(s.ok(), s.message());
  return true;
}

bool Scheduler::ensure_pages_or_preempt(SchedRequest& r, int64_t num_tokens) {
  while (!ensure_pages(r, num_tokens)) {
    SchedRequest* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend(); ++it)
      if (!(*it)->in_batch) {
        victim = it->get();
        break;
      }
    DS_CHECK(victim != nullptr, "r itself is not in the batch");
    preempt(*victim);
    if (victim == &r) return false;
  }
  return true;
}

void Scheduler::preempt(SchedRequest& r) {
  // Its computed full pages stay reusable through the prefix cache (evictable).
  release_kv(r, true);
  ++r.num_preemptions;
  ++counters_.preemptions_total;
  if (!r.first_output_sent && r.sampling.prompt_logprobs) r.prompt_logprobs.assign(1, std::nullopt);
  auto it = std::find_if(running_.begin(), running_.end(), [&](const ReqPtr& p) { return p.get() == &r; });
  DS_CHECK(it != running_.end(), "preempted request " << r.id << " is not running");
  waiting_.push_front(std::move(*it));
  running_.erase(it);
}

void Scheduler::add_entry(SchedRequest& r, int64_t count, std::vector<BatchEntry>& batch) {
  BatchEntry e;
  e.req = &r;
  e.start = r.num_computed;
  e.count = count;
  const bool prompt_rows = r.needs_prompt_logits();
  for (int64_t t = e.start; t < e.start + count; ++t)
    if ((prompt_rows && t + 1 < r.prompt_len) || t == r.num_tokens() - 1) e.rows.push_back(t);
  r.in_batch = true;
  batch.push_back(std::move(e));
}

void Scheduler::release_kv(SchedRequest& r, bool cache_prefix) {
  if (cache_prefix && options_.enable_prefix_cache) {
    const int64_t full = std::min<int64_t>(r.num_computed / page_size_, static_cast<int64_t>(r.pages.pages.size()));
    auto added = radix_->insert(r.tokens.data(), full, r.pages.pages);
    DS_CHECK(added.ok(), added.status().message());
  }
  Status s = kv_.free(r.pages);
  DS_CHECK(s.ok(), s.message());
  if (r.prefix_node) radix_->unlock(r.prefix_node);
  r.prefix_node = nullptr;
  r.num_computed = 0;
}

}  // namespace ds
