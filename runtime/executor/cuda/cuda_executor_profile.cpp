// CudaExecutor: the opt-in per-instruction profile of eager steps (DSRT_PROFILE=1).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <regex>

#include "runtime/executor/cuda/executor_impl.h"

namespace ds::cuda {
namespace {

const char* kind_label(BoundOp::Kind k) {
  switch (k) {
    case BoundOp::Kind::kEmbedding: return "embedding";
    case BoundOp::Kind::kLinear: return "gemm";
    case BoundOp::Kind::kLogits: return "logits";
    case BoundOp::Kind::kAttention: return "attention";
    case BoundOp::Kind::kFused: return "fused";
    case BoundOp::Kind::kAllReduce: return "all_reduce";
    case BoundOp::Kind::kAllGather: return "all_gather";
  }
  return "?";
}

double since_ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<std::unique_ptr<StepProfiler>> StepProfiler::create(const std::vector<BoundOp>& program) {
  std::unique_ptr<StepProfiler> p(new StepProfiler());
  const std::regex layer_prefix("(^|[+.])l[0-9]+\\.");
  std::map<std::string, size_t> index;
  for (const BoundOp& op : program) {
    // "l3.k_proj+l3.v_proj" -> "k_proj+v_proj": one row for every layer's copy.
    const std::string label =
        std::string(kind_label(op.kind)) + " " + std::regex_replace(op.name, layer_prefix, "$1");
    auto it = index.find(label);
    if (it == index.end()) {
      it = index.emplace(label, p->rows_.size()).first;
      p->rows_.push_back(Row{label, 0, 0});
    }
    p->row_of_.push_back(it->second);
    for (int i = 0; i < 2; ++i) {
      DS_ASSIGN_OR_RETURN(Event e, Event::create());
      p->events_.push_back(std::move(e));
    }
  }
  for (GraphStepEvents& g : p->ring_)
    for (Event* e : {&g.begin, &g.graph_begin, &g.graph_end, &g.sampled}) {
      DS_ASSIGN_OR_RETURN(*e, Event::create());
    }
  if (const char* every = std::getenv("DSRT_PROFILE_EVERY")) p->every_ = std::max(0LL, std::atoll(every));
  return p;
}

Status StepProfiler::record(const Event& e, cudaStream_t s) {
  DS_CUDA_RETURN_IF_ERROR(cudaEventRecord(e.get(), s));
  return Status::Ok();
}

Status StepProfiler::eager_step(std::chrono::steady_clock::time_point t0, const Stream& s) {
  DS_RETURN_IF_ERROR(s.synchronize());
  eager_wall_ms_ += since_ms(t0);
  if (events_.empty()) return Status::Ok();
  DS_ASSIGN_OR_RETURN(float span, events_.back().elapsed_ms_since(events_.front()));
  eager_span_ms_ += span;
  for (size_t i = 0; i < row_of_.size(); ++i) {
    DS_ASSIGN_OR_RETURN(float ms, events_[2 * i + 1].elapsed_ms_since(events_[2 * i]));
    Row& r = rows_[row_of_[i]];
    ++r.calls;
    r.ms += ms;
  }
  ++eager_steps_;
  maybe_print();
  return Status::Ok();
}

Status StepProfiler::collect_graph_step(int slot) {
  GraphStepEvents& g = ring_[slot];
  if (!g.recorded) return Status::Ok();
  g.recorded = false;
  if (!g.has_graph) return Status::Ok();  // an eager step: only its neighbours' gaps would be skewed
  const Event& last = g.has_sampled ? g.sampled : g.graph_end;
  DS_RETURN_IF_ERROR(last.synchronize());
  DS_ASSIGN_OR_RETURN(float up, g.graph_begin.elapsed_ms_since(g.begin));
  DS_ASSIGN_OR_RETURN(float run, g.graph_end.elapsed_ms_since(g.graph_begin));
  upload_ms_ += up;
  graph_gpu_ms_ += run;
  ++graph_steps_;
  if (g.has_sampled) {
    DS_ASSIGN_OR_RETURN(float smp, g.sampled.elapsed_ms_since(g.graph_end));
    sample_ms_ += smp;
    ++sampled_steps_;
  }
  const GraphStepEvents& prev = ring_[(slot + kRing - 1) % kRing];
  if (prev.has_graph && prev.has_sampled) {  // still intact: it is read before its slot is reused
    DS_ASSIGN_OR_RETURN(float gap, g.begin.elapsed_ms_since(prev.sampled));
    gap_ms_ += gap;
    ++gap_steps_;
  }
  return Status::Ok();
}

Status StepProfiler::step_begin(const Stream& s) {
  ++step_index_;
  // Step i - 2 is complete (a pipelined caller collected it before queueing step i).
  if (step_index_ >= 2) DS_RETURN_IF_ERROR(collect_graph_step(static_cast<int>((step_index_ - 2) % kRing)));
  GraphStepEvents& g = ring_[step_index_ % kRing];
  g.recorded = true;
  g.has_graph = g.has_sampled = false;
  return record(g.begin, s.get());
}

Status StepProfiler::graph_begin(const Stream& s) {
  const auto now = std::chrono::steady_clock::now();
  if (last_graph_start_ != std::chrono::steady_clock::time_point{}) {
    graph_period_ms_ += std::chrono::duration<double, std::milli>(now - last_graph_start_).count();
    ++graph_periods_;
  }
  last_graph_start_ = now;
  GraphStepEvents& g = ring_[step_index_ % kRing];
  g.has_graph = true;
  return record(g.graph_begin, s.get());
}

Status StepProfiler::graph_end(const Stream& s) {
  DS_RETURN_IF_ERROR(record(ring_[step_index_ % kRing].graph_end, s.get()));
  maybe_print();
  return Status::Ok();
}

Status StepProfiler::sampled(const Stream& s) {
  if (step_index_ < 0) return Status::Ok();
  GraphStepEvents& g = ring_[step_index_ % kRing];
  if (!g.has_graph) return Status::Ok();
  g.has_sampled = true;
  return record(g.sampled, s.get());
}

void StepProfiler::maybe_print() {
  if (every_ > 0 && (eager_steps_ + graph_steps_) % every_ == 0) print();
}

void StepProfiler::print() {
  // The last steps: read in order (each needs its predecessor intact).
  for (int64_t i = std::max<int64_t>(0, step_index_ - 1); i <= step_index_; ++i)
    if (Status s = collect_graph_step(static_cast<int>(i % kRing)); !s.ok())
      std::fprintf(stderr, "dsrt profile: %s\n", s.message().c_str());
  if (eager_steps_ == 0 && graph_steps_ == 0) return;
  std::fprintf(stderr, "dsrt profile (DSRT_PROFILE=1; steps are synchronized, so wall times include that):\n");
  if (eager_steps_ > 0) {
    double sum = 0;
    for (const Row& r : rows_) sum += r.ms;
    std::vector<const Row*> sorted;
    for (const Row& r : rows_) sorted.push_back(&r);
    std::sort(sorted.begin(), sorted.end(), [](const Row* a, const Row* b) { return a->ms > b->ms; });
    std::fprintf(stderr, "  %-48s %9s %11s %10s %7s\n", "eager instruction (kind name)", "calls", "total ms", "mean us",
                 "% span");
    for (const Row* r : sorted)
      std::fprintf(stderr, "  %-48s %9lld %11.3f %10.2f %6.1f%%\n", r->label.c_str(), static_cast<long long>(r->calls),
                   r->ms, r->calls ? 1e3 * r->ms / static_cast<double>(r->calls) : 0.0,
                   eager_span_ms_ > 0 ? 100.0 * r->ms / eager_span_ms_ : 0.0);
    const double n = static_cast<double>(eager_steps_);
    std::fprintf(stderr,
                 "  eager steps %lld: wall %.3f ms/step (host prep + launches + sync), GPU span %.3f ms/step, "
                 "sum of instructions %.3f ms/step, gaps %.3f ms/step\n",
                 static_cast<long long>(eager_steps_), eager_wall_ms_ / n, eager_span_ms_ / n, sum / n,
                 (eager_span_ms_ - sum) / n);
  }
  if (graph_steps_ > 0) {
    const double n = static_cast<double>(graph_steps_);
    const double period = graph_periods_ > 0 ? graph_period_ms_ / static_cast<double>(graph_periods_) : 0.0;
    std::fprintf(stderr,
                 "  graph steps %lld: on the GPU upload %.4f ms/step, graph replay %.4f, sampling %.4f (%lld steps), "
                 "gap to the next upload %.4f (%lld); host launch-to-launch period %.4f ms/step\n",
                 static_cast<long long>(graph_steps_), upload_ms_ / n, graph_gpu_ms_ / n,
                 sampled_steps_ ? sample_ms_ / static_cast<double>(sampled_steps_) : 0.0,
                 static_cast<long long>(sampled_steps_), gap_steps_ ? gap_ms_ / static_cast<double>(gap_steps_) : 0.0,
                 static_cast<long long>(gap_steps_), period);
  }
}

}  // namespace ds::cuda
