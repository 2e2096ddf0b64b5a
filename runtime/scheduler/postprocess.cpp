// After the executor step: prompt logprobs, sampling, stop checks, streaming
// outputs and retiring finished requests (their full pages go to the prefix
// cache). Sinks are called from the loop thread with no lock held.
#include <algorithm>

#include "runtime/engine/sampler.h"
#include "runtime/scheduler/scheduler.h"

namespace ds {
namespace {

bool contains(const std::vector<int32_t>& ids, int32_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

RequestOutput make_output(SchedRequest& r) {
  RequestOutput out;
  out.id = r.id;
  out.prompt_tokens = r.prompt_len;
  out.cached_prompt_tokens = r.cached_prompt_tokens;
  if (!r.first_output_sent) {
    if (r.sampling.prompt_logprobs) out.prompt_logprobs = std::move(r.prompt_logprobs);
    r.prompt_logprobs.clear();
    r.first_output_sent = true;
  }
  return out;
}

}  // namespace

RowSampling Scheduler::row_sampling_of(const SchedRequest& r) {
  RowSampling s;
  s.temperature = r.sampling.temperature;
  s.top_p = r.sampling.top_p;
  s.top_k = r.sampling.top_k;
  s.min_p = r.sampling.min_p;
  s.repetition_penalty = r.sampling.repetition_penalty;
  s.frequency_penalty = r.sampling.frequency_penalty;
  s.presence_penalty = r.sampling.presence_penalty;
  s.seed = r.seed;
  s.counter = static_cast<uint64_t>(r.num_generated());
  s.logprobs = r.sampling.logprobs;
  // Only the penalties read the history.
  if (s.repetition_penalty != 1.0f) {
    s.prompt = r.tokens.data();
    s.prompt_len = r.prompt_len;
  }
  if (s.repetition_penalty != 1.0f || s.frequency_penalty != 0.0f || s.presence_penalty != 0.0f) {
    s.output = r.tokens.data() + r.prompt_len;
    s.output_len = r.num_generated();
  }
  return s;
}

void Scheduler::postprocess(std::vector<BatchEntry>& batch, const std::vector<float>* logits,
                            const std::vector<RowSample>* samples, bool overlapped) {
  DS_CHECK((logits == nullptr) != (samples == nullptr), "postprocess needs logits or samples");
  DS_CHECK(!overlapped || samples != nullptr, "an overlapped step samples on the device");
  const int64_t vocab = executor_.vocab_size();
  std::vector<SchedRequest*> done;
  for (BatchEntry& e : batch) {
    SchedRequest& r = *e.req;
    if (r.finished) continue;  // finished while this step was queued (overlap schedule)
    r.in_batch = false;
    const bool prompt_rows = r.needs_prompt_logits();
    // The token index whose next token this entry samples; overlapped, its placeholder's predecessor.
    const int64_t last = overlapped ? e.sample_index - 1 : r.num_tokens() - 1;
    if (!overlapped) r.num_computed += e.count;
    bool sampled = false;
    GeneratedToken tok;
    for (size_t i = 0; i < e.rows.size(); ++i) {
      const int64_t t = e.rows[i];
      const size_t row_index = static_cast<size_t>(e.first_row) + i;
      if (samples) {  // sampled by the executor (never with prompt rows)
        if (t == last) {
          const RowSample& s = (*samples)[row_index];
          tok.id = s.id;
          tok.logprob = s.logprob;
          for (const auto& [id, lp] : s.top) tok.top.push_back(TokenLogprob{id, lp});
          r.sampler->record(s.id);  // keeps the host history for later host-sampled steps
          sampled = true;
        }
        continue;
      }
      const float* row = logits->data() + row_index * static_cast<size_t>(vocab);
      if (prompt_rows && t + 1 < r.prompt_len) {
        DS_CHECK(static_cast<int64_t>(r.prompt_logprobs.size()) == t + 1, "prompt logprob rows out of order");
        r.prompt_logprobs.emplace_back(
            token_logprob(row, vocab, r.tokens[static_cast<size_t>(t + 1)], logsumexp(row, vocab)));
      }
      if (t == last) {
        tok = r.sampler->next(row);
        sampled = true;
      }
    }
    if (!sampled) continue;  // mid-prefill chunk
    if (overlapped)
      r.tokens[static_cast<size_t>(e.sample_index)] = tok.id;
    else
      r.tokens.push_back(tok.id);
    ++counters_.generation_tokens_total;
    RequestOutput out = make_output(r);
    const int64_t generated = last + 2 - r.prompt_len;  // up to this token (a later placeholder may follow)
    out.completion_tokens = generated;
    const int32_t id = tok.id;
    out.tokens.push_back(std::move(tok));
    FinishReason reason = FinishReason::kNone;
    if ((!r.sampling.ignore_eos && contains(options_.eos_token_ids, id)) || contains(r.sampling.stop_token_ids, id)) {
      reason = FinishReason::kStop;
      out.matched_stop_token = id;
    } else if (generated >= r.max_new_tokens) {
      reason = FinishReason::kLength;
    }
    if (reason == FinishReason::kNone) {
      r.sink->on_output(std::move(out));
      continue;
    }
    drop_placeholder(r);  // the queued step's extra row for it is dropped
    finish(r, reason, std::move(out), true);
    done.push_back(&r);
  }
  drop_finished(done);
}

void Scheduler::drop_placeholder(SchedRequest& r) {
  if (!r.has_placeholder()) return;
  r.tokens.pop_back();
  DS_CHECK(!r.has_placeholder(), "request " << r.id << " has two pending tokens");
}

void Scheduler::fail_batch(std::vector<BatchEntry>& batch, const Status& error) {
  std::vector<SchedRequest*> done;
  for (BatchEntry& e : batch) {
    SchedRequest& r = *e.req;
    if (r.finished) continue;
    r.in_batch = false;
    r.drop_placeholders();
    RequestOutput out = make_output(r);
    out.completion_tokens = r.num_generated();
    out.error = error.message();
    finish(r, FinishReason::kError, std::move(out), false);
    done.push_back(&r);
  }
  drop_finished(done);
}

void Scheduler::finish(SchedRequest& r, FinishReason reason, RequestOutput out, bool cache_prefix) {
  release_kv(r, cache_prefix);
  out.id = r.id;
  out.finish = reason;
  out.prompt_tokens = r.prompt_len;
  out.cached_prompt_tokens = r.cached_prompt_tokens;
  out.completion_tokens = r.num_generated();
  {
    std::lock_guard<std::mutex> lk(mu_);
    live_.erase(r.id);
  }
  r.sink->on_output(std::move(out));
}

void Scheduler::abort_now(RequestId id) {
  auto w = std::find_if(waiting_.begin(), waiting_.end(), [&](const ReqPtr& p) { return p->id == id; });
  if (w != waiting_.end()) {
    ReqPtr owned = std::move(*w);
    waiting_.erase(w);
    finish(*owned, FinishReason::kAbort, make_output(*owned), false);
    return;
  }
  auto it = std::find_if(running_.begin(), running_.end(), [&](const ReqPtr& p) { return p->id == id; });
  if (it != running_.end()) {
    SchedRequest& r = **it;
    r.drop_placeholders();
    finish(r, FinishReason::kAbort, make_output(r), false);
    drop_finished({&r});
  }
}

}  // namespace ds
