// DeviceSampler: host side. Everything is allocated in create(); the history
// buffers (pinned staging, device copy, raw-logit copy) grow geometrically on
// demand up to kMaxHistoryTokens per call. One call = one kernel (more only
// when over 256 rows carry penalties) that reads the row parameters from mapped
// pinned staging (one H2D copy instead when penalized rows upload histories)
// and writes the results into mapped pinned memory, then one wait (collect).
// Calls whose rows are all greedy without logprobs or penalties take the split
// greedy kernel (greedy_kernel.cu: several CTAs per row, no parameters); other
// calls of few rows without logprobs, penalties or a small top-k take the
// cluster kernel (split_sampling_kernel.cu: 2-8 CTAs per row on sm_90+).
// Device memory: the [min(max_rows,
// 256), vocab] int32 penalty scratch plus O(max_rows + history) small buffers.
#include "kernels/cuda/sampling/device_sampler.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/sampling/sampling_kernel.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/pinned_buffer.h"

namespace ds::cuda {
namespace {

// Rows of one greedy launch (the grid's y dimension).
constexpr size_t kMaxGreedyRows = 65535;

constexpr int64_t kInitialHistoryTokens = int64_t{1} << 16;
// Most prompt + output tokens of all penalized rows of one call (256 MiB of int32).
constexpr int64_t kMaxHistoryTokens = int64_t{1} << 26;
// Penalized rows per kernel launch: each holds one [vocab] int32 row of the
// scratch while it runs (156 MB at vocab 152064). More penalized rows in one
// call are split into several launches on the stream.
constexpr int64_t kMaxScratchSlots = 256;

bool needs_penalties(const RowSampling& s) {
  return s.repetition_penalty != 1.0f || s.frequency_penalty != 0.0f || s.presence_penalty != 0.0f;
}

Status validate_row(const RowSampling& s, size_t i) {
  auto bad = [&](const char* field, auto value, const char* rule) {
    return Status::Error(StrCat() << "DeviceSampler: row " << i << ": " << field << " " << value << " " << rule);
  };
  if (!(s.temperature >= 0.0f) || !std::isfinite(s.temperature))
    return bad("temperature", s.temperature, "must be a finite number >= 0");
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) return bad("top_p", s.top_p, "must be in (0, 1]");
  if (!(s.min_p >= 0.0f && s.min_p <= 1.0f)) return bad("min_p", s.min_p, "must be in [0, 1]");
  if (!(s.repetition_penalty > 0.0f) || !std::isfinite(s.repetition_penalty))
    return bad("repetition_penalty", s.repetition_penalty, "must be a finite number > 0");
  if (!std::isfinite(s.frequency_penalty)) return bad("frequency_penalty", s.frequency_penalty, "must be finite");
  if (!std::isfinite(s.presence_penalty)) return bad("presence_penalty", s.presence_penalty, "must be finite");
  if (s.logprobs < -1 || s.logprobs > kSamplingMaxLogprobs)
    return bad("logprobs", s.logprobs, "must be -1 (off) or in [0, 20]");
  if (s.prompt_len < 0 || s.output_len < 0)
    return Status::Error(StrCat() << "DeviceSampler: row " << i << ": negative history length (prompt_len "
                                  << s.prompt_len << ", output_len " << s.output_len << ")");
  if (s.prompt_len > 0 && !s.prompt) return bad("prompt", "null", "with prompt_len > 0");
  if (s.output_len > 0 && !s.output) return bad("output", "null", "with output_len > 0");
  return Status::Ok();
}

}  // namespace

struct DeviceSampler::Impl {
  int64_t vocab = 0;
  int64_t max_rows = 0;
  bool zero_copy = true;  // create()'s
  // Cluster sampling (split_sampling_kernel.cu): an sm_90+ device, not turned off
  // by DSRT_SAMPLING_SPLIT=0 (A/B runs); num_sms sizes the clusters.
  bool cluster_ok = false;
  int num_sms = 0;
  int64_t history_capacity = 0;  // tokens
  DeviceBuffer upload;           // [max_rows] SampleRowParams, then history tokens
  DeviceBuffer raw_history;      // [history_capacity] float
  int64_t scratch_slots = 0;
  DeviceBuffer scratch;          // [scratch_slots, vocab] int32, zero between launches
  DeviceBuffer results;          // [max_rows] SampleRowOut
  std::vector<SampleLaunch> launches;  // reused across calls
  // Queued calls (enqueue -> collect), a ring of kMaxQueued: each has its own
  // pinned results, so a later call's copy back never overwrites unread ones,
  // and its own parameter staging, so a call never waits for the previous
  // one's kernels (the call that used a slot's staging before was collected,
  // i.e. its kernels finished, before the slot is enqueued again).
  struct Slot {
    PinnedBuffer upload_host;    // mapped: row parameters then histories (read by the copy or the kernels)
    PinnedBuffer results_host;   // mapped: the kernels write it
    Event done;                  // recorded after the kernels
    std::vector<int> logprobs;   // per row: top logprobs to return
  };
  Slot slots[DeviceSampler::kMaxQueued];
  // Greedy rows without logprobs or penalties (greedy_kernel.cu): per-row
  // partials [max_rows * kGreedyMaxSplits] values then ids, and zeroed counters.
  DeviceBuffer greedy_parts;
  DeviceBuffer greedy_counters;

  Status launch_greedy(float* logits, size_t n, SampleRowOut* h_results, cudaStream_t stream);
  Status launch_rows(float* logits, const std::vector<RowSampling>& rows, Slot& slot, SampleRowOut* h_results,
                     cudaStream_t stream);
  int head = 0, count = 0;
  cudaStream_t last_stream = nullptr;  // stream of the queued calls
  DeviceSampler::StreamWait stream_wait;  // empty: cudaStreamSynchronize

  Status wait_stream(cudaStream_t stream) const {
    if (stream_wait) return stream_wait(stream);
    DS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    return Status::Ok();
  }

  size_t params_bytes() const { return static_cast<size_t>(max_rows) * sizeof(SampleRowParams); }

  Status reserve_history(int64_t tokens) {
    if (tokens <= history_capacity) return Status::Ok();
    if (tokens > kMaxHistoryTokens)
      return Status::Error(StrCat() << "DeviceSampler: the penalized rows' prompt + output histories hold " << tokens
                                    << " tokens, more than the per-call limit of " << kMaxHistoryTokens);
    const int64_t cap = std::min(kMaxHistoryTokens, std::max(tokens, 2 * history_capacity));
    const size_t upload_bytes = params_bytes() + static_cast<size_t>(cap) * sizeof(int32_t);
    // Release first so the old and new buffers never coexist.
    upload.reset();
    raw_history.reset();
    for (Slot& slot : slots) slot.upload_host.reset();
    history_capacity = 0;
    DS_ASSIGN_OR_RETURN(upload, DeviceBuffer::allocate(upload_bytes));
    DS_ASSIGN_OR_RETURN(raw_history, DeviceBuffer::allocate(static_cast<size_t>(cap) * sizeof(float)));
    for (Slot& slot : slots) {
      DS_ASSIGN_OR_RETURN(slot.upload_host, PinnedBuffer::allocate_mapped(upload_bytes));
    }
    history_capacity = cap;
    return Status::Ok();
  }
};

DeviceSampler::DeviceSampler() : impl_(std::make_unique<Impl>()) {}
DeviceSampler::~DeviceSampler() = default;

Result<std::unique_ptr<DeviceSampler>> DeviceSampler::create(int64_t vocab, int64_t max_rows, bool zero_copy,
                                                             bool cluster) {
  if (vocab <= 0 || vocab > (int64_t{1} << 31) - 1)
    return Status::Error(StrCat() << "DeviceSampler: vocab " << vocab << " must be in [1, 2^31)");
  if (max_rows <= 0 || max_rows > (int64_t{1} << 31) - 1)
    return Status::Error(StrCat() << "DeviceSampler: max_rows " << max_rows << " must be in [1, 2^31)");
  std::unique_ptr<DeviceSampler> s(new DeviceSampler());
  Impl& m = *s->impl_;
  m.vocab = vocab;
  m.max_rows = max_rows;
  m.zero_copy = zero_copy;
  {
    int dev = 0, major = 0;
    DS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&dev));
    DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    DS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&m.num_sms, cudaDevAttrMultiProcessorCount, dev));
    const char* env = std::getenv("DSRT_SAMPLING_SPLIT");
    m.cluster_ok = cluster && major >= 9 && !(env != nullptr && std::strcmp(env, "0") == 0);
  }
  DS_RETURN_IF_ERROR(m.reserve_history(kInitialHistoryTokens));
  m.scratch_slots = std::min(max_rows, kMaxScratchSlots);
  const size_t scratch_bytes = static_cast<size_t>(m.scratch_slots) * static_cast<size_t>(vocab) * sizeof(int32_t);
  DS_ASSIGN_OR_RETURN(m.scratch, DeviceBuffer::allocate(scratch_bytes));
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(m.scratch.data(), 0, scratch_bytes));
  const size_t results_bytes = static_cast<size_t>(max_rows) * sizeof(SampleRowOut);
  DS_ASSIGN_OR_RETURN(m.results, DeviceBuffer::allocate(results_bytes));
  for (Impl::Slot& slot : m.slots) {
    DS_ASSIGN_OR_RETURN(slot.results_host, PinnedBuffer::allocate_mapped(results_bytes));
    DS_ASSIGN_OR_RETURN(slot.done, Event::create());
  }
  const size_t parts = static_cast<size_t>(max_rows) * kGreedyMaxSplits;
  DS_ASSIGN_OR_RETURN(m.greedy_parts, DeviceBuffer::allocate(parts * (sizeof(float) + sizeof(int32_t))));
  DS_ASSIGN_OR_RETURN(m.greedy_counters, DeviceBuffer::allocate(static_cast<size_t>(max_rows) * sizeof(unsigned)));
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(m.greedy_counters.data(), 0, m.greedy_counters.bytes()));
  return s;
}

size_t DeviceSampler::device_bytes() const {
  return impl_->upload.bytes() + impl_->raw_history.bytes() + impl_->scratch.bytes() + impl_->results.bytes() +
         impl_->greedy_parts.bytes() + impl_->greedy_counters.bytes();
}

Status DeviceSampler::sample(float* logits, const std::vector<RowSampling>& rows, std::vector<RowSample>* out,
                             cudaStream_t stream) {
  if (!out) return Status::Error("DeviceSampler::sample: out is null");
  out->clear();
  if (rows.empty()) return Status::Ok();
  if (impl_->count > 0) return Status::Error("DeviceSampler::sample: queued calls are not collected yet");
  DS_RETURN_IF_ERROR(enqueue(logits, rows, stream));
  return collect(out);
}

int DeviceSampler::queued() const { return impl_->count; }

void DeviceSampler::set_stream_wait(StreamWait wait) { impl_->stream_wait = std::move(wait); }

cudaEvent_t DeviceSampler::oldest_done_event() const {
  return impl_->count > 0 ? impl_->slots[impl_->head].done.get() : nullptr;
}

const int32_t* DeviceSampler::device_ids() const {
  return reinterpret_cast<const int32_t*>(static_cast<const char*>(impl_->results.data()) + offsetof(SampleRowOut, id));
}

int DeviceSampler::device_ids_stride() {
  static_assert(sizeof(SampleRowOut) % sizeof(int32_t) == 0, "SampleRowOut is a whole number of int32 words");
  return static_cast<int>(sizeof(SampleRowOut) / sizeof(int32_t));
}

Status DeviceSampler::enqueue(float* logits, const std::vector<RowSampling>& rows, cudaStream_t stream) {
  Impl& m = *impl_;
  if (rows.empty()) return Status::Error("DeviceSampler::enqueue: no rows");
  if (!logits) return Status::Error("DeviceSampler::enqueue: logits is null");
  if (m.count == kMaxQueued)
    return Status::Error(StrCat() << "DeviceSampler::enqueue: " << kMaxQueued << " calls wait to be collected");
  if (m.count > 0 && stream != m.last_stream)
    return Status::Error("DeviceSampler::enqueue: queued calls run on another stream");
  if (static_cast<int64_t>(rows.size()) > m.max_rows)
    return Status::Error(StrCat() << "DeviceSampler::enqueue: " << rows.size() << " rows exceed max_rows "
                                  << m.max_rows << " given at create()");
  bool plain_greedy = rows.size() <= kMaxGreedyRows;
  for (size_t i = 0; i < rows.size(); ++i) {
    DS_RETURN_IF_ERROR(validate_row(rows[i], i));
    plain_greedy = plain_greedy && (rows[i].temperature == 0.0f || rows[i].top_k == 1) &&
                   !needs_penalties(rows[i]) && rows[i].logprobs < 0;
  }
  const size_t n = rows.size();
  Impl::Slot& slot = m.slots[(m.head + m.count) % kMaxQueued];
  // Results: the kernels also write the host's copy into the call's mapped
  // slot (zero_copy), else one copy back on the stream.
  auto* h_results = m.zero_copy ? static_cast<SampleRowOut*>(slot.results_host.device_data()) : nullptr;
  auto fail = [&](Status st) {
    (void)m.wait_stream(stream);  // the staging buffers must outlive queued copies
    return st;
  };
  Status launched = plain_greedy ? m.launch_greedy(logits, n, h_results, stream)
                                 : m.launch_rows(logits, rows, slot, h_results, stream);
  if (!launched.ok()) return fail(launched.with_context("DeviceSampler::enqueue"));
  if (!m.zero_copy) {
    const cudaError_t err = cudaMemcpyAsync(slot.results_host.data(), m.results.data(), n * sizeof(SampleRowOut),
                                            cudaMemcpyDeviceToHost, stream);
    if (err != cudaSuccess) return fail(cuda_error_status(err, "cudaMemcpyAsync(sampling results)", __FILE__, __LINE__));
  }
  Status recorded = slot.done.record(stream);
  if (!recorded.ok()) return fail(recorded);
  slot.logprobs.resize(n);
  for (size_t i = 0; i < n; ++i) slot.logprobs[i] = std::max(0, std::min<int>(rows[i].logprobs, kSamplingMaxLogprobs));
  m.last_stream = stream;
  ++m.count;
  return Status::Ok();
}

Status DeviceSampler::Impl::launch_greedy(float* logits, size_t n, SampleRowOut* h_results, cudaStream_t stream) {
  GreedyLaunch g;
  g.logits = logits;
  g.vocab = vocab;
  g.rows = static_cast<int32_t>(n);
  g.part_value = static_cast<float*>(greedy_parts.data());
  g.part_id = reinterpret_cast<int32_t*>(g.part_value + max_rows * kGreedyMaxSplits);
  g.counters = static_cast<unsigned*>(greedy_counters.data());
  g.out = static_cast<SampleRowOut*>(results.data());
  g.out_host = h_results;
  return launch_greedy_rows(g, stream);
}

Status DeviceSampler::Impl::launch_rows(float* logits, const std::vector<RowSampling>& rows, Slot& slot,
                                        SampleRowOut* h_results, cudaStream_t stream) {
  // Only penalized rows upload a history; frequency/presence read the output only.
  int64_t history = 0;
  for (const RowSampling& r : rows) {
    if (!needs_penalties(r)) continue;
    if (r.repetition_penalty != 1.0f) history += r.prompt_len;
    history += r.output_len;
  }
  if (history > history_capacity && count > 0) {
    // Growing frees the buffers that queued calls still use: let them finish first.
    DS_RETURN_IF_ERROR(wait_stream(stream));
  }
  DS_RETURN_IF_ERROR(reserve_history(history));
  // This slot's staging was last read by a call that has been collected: free to rewrite.
  PinnedBuffer& upload_host = slot.upload_host;
  const size_t n = rows.size();
  auto* params = static_cast<SampleRowParams*>(upload_host.data());
  auto* tokens = reinterpret_cast<int32_t*>(static_cast<char*>(upload_host.data()) + n * sizeof(SampleRowParams));
  int64_t offset = 0;
  for (size_t i = 0; i < n; ++i) {
    const RowSampling& s = rows[i];
    SampleRowParams& p = params[i];
    p.temperature = s.temperature;
    p.top_p = s.top_p;
    p.min_p = s.min_p;
    p.repetition_penalty = s.repetition_penalty;
    p.frequency_penalty = s.frequency_penalty;
    p.presence_penalty = s.presence_penalty;
    p.top_k = s.top_k;
    p.logprobs = s.logprobs;
    p.seed = s.seed;
    p.counter = s.counter;
    p.history_offset = offset;
    p.prompt_len = 0;
    p.output_len = 0;
    p.scratch_slot = -1;
    if (!needs_penalties(s)) continue;
    if (s.repetition_penalty != 1.0f && s.prompt_len > 0) {
      std::memcpy(tokens + offset, s.prompt, static_cast<size_t>(s.prompt_len) * sizeof(int32_t));
      p.prompt_len = static_cast<int32_t>(s.prompt_len);
      offset += s.prompt_len;
    }
    if (s.output_len > 0) {
      std::memcpy(tokens + offset, s.output, static_cast<size_t>(s.output_len) * sizeof(int32_t));
      p.output_len = static_cast<int32_t>(s.output_len);
      offset += s.output_len;
    }
  }
  // Parameters: without histories (the common case) the kernels read them
  // straight from the mapped staging, so nothing is copied on the stream;
  // with histories, one copy. Each small cudaMemcpyAsync costs ~10 us of
  // stream time on an H200.
  const bool params_mapped = zero_copy && offset == 0;
  const auto* d_params = static_cast<const SampleRowParams*>(params_mapped ? upload_host.device_data() : upload.data());
  auto* d_results = static_cast<SampleRowOut*>(results.data());
  launches.clear();
  // Launches over consecutive row ranges holding at most scratch_slots penalized rows each.
  size_t begin = 0;
  while (begin < n) {
    size_t end = begin;
    int64_t used = 0;
    for (; end < n; ++end) {
      if (!needs_penalties(rows[end]) || params[end].prompt_len + params[end].output_len == 0) continue;
      if (used == scratch_slots) break;
      params[end].scratch_slot = static_cast<int32_t>(used++);
    }
    SampleLaunch launch;
    launch.logits = logits + static_cast<int64_t>(begin) * vocab;
    launch.vocab = vocab;
    launch.rows = static_cast<int32_t>(end - begin);
    launch.params = d_params + begin;
    launch.tokens = reinterpret_cast<const int32_t*>(static_cast<char*>(upload.data()) + n * sizeof(SampleRowParams));
    launch.raw_history = static_cast<float*>(raw_history.data());
    launch.scratch = static_cast<int32_t*>(scratch.data());
    launch.out = d_results + begin;
    launch.out_host = h_results != nullptr ? h_results + begin : nullptr;
    launches.push_back(launch);
    begin = end;
  }
  if (!params_mapped) {
    const size_t bytes = n * sizeof(SampleRowParams) + static_cast<size_t>(offset) * sizeof(int32_t);
    DS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(upload.data(), upload_host.data(), bytes, cudaMemcpyHostToDevice, stream));
  }
  // Few rows without logprobs, penalties or a small top-k: several CTAs per row.
  bool split = cluster_ok && launches.size() == 1;
  for (size_t i = 0; i < n && split; ++i) {
    const RowSampling& s = rows[i];
    const bool small_top_k = s.top_k > 1 && s.top_k <= kSamplingSmallTopK && s.top_k < vocab;
    split = s.logprobs < 0 && !needs_penalties(s) && !small_top_k;
  }
  const int splits = split ? sampling_cluster_splits(static_cast<int64_t>(n), vocab, num_sms) : 1;
  if (splits > 1) {
    if (launch_sample_rows_split(launches[0], splits, stream).ok()) return Status::Ok();
    // A cluster that cannot be scheduled here (a launch-configuration error, which
    // does not stick): the per-row kernel from now on.
    (void)cudaGetLastError();
    cluster_ok = false;
  }
  for (const SampleLaunch& launch : launches) DS_RETURN_IF_ERROR(launch_sample_rows(launch, stream));
  return Status::Ok();
}

Status DeviceSampler::collect(std::vector<RowSample>* out) {
  Impl& m = *impl_;
  if (!out) return Status::Error("DeviceSampler::collect: out is null");
  out->clear();
  if (m.count == 0) return Status::Error("DeviceSampler::collect: nothing is queued");
  Impl::Slot& slot = m.slots[m.head];
  m.head = (m.head + 1) % kMaxQueued;
  --m.count;
  DS_RETURN_IF_ERROR(slot.done.synchronize().with_context("sampling"));
  const auto* res = static_cast<const SampleRowOut*>(slot.results_host.data());
  const size_t n = slot.logprobs.size();
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    RowSample& o = (*out)[i];
    o.id = res[i].id;
    o.logprob = res[i].logprob;
    o.top.clear();
    for (int j = 0; j < slot.logprobs[i] && j < m.vocab; ++j)
      o.top.emplace_back(res[i].top_ids[j], res[i].top_logprobs[j]);
  }
  return Status::Ok();
}

}  // namespace ds::cuda
