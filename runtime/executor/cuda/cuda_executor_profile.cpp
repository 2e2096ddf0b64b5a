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
  for (Event& e : p->graph_events_) {
    DS_ASSIGN_OR_RETURN(e, Event::create());
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

Status StepProfiler::collect_graph_span() {
  if (!graph_pending_) return Status::Ok();
  DS_RETURN_IF_ERROR(graph_events_[1].synchronize());
  DS_ASSIGN_OR_RETURN(float ms, graph_events_[1].elapsed_ms_since(graph_events_[0]));
  graph_gpu_ms_ += ms;
  ++graph_steps_;
  graph_pending_ = false;
  return Status::Ok();
}

Status StepProfiler::graph_begin(const Stream& s) {
  DS_RETURN_IF_ERROR(collect_graph_span());
  const auto now = std::chrono::steady_clock::now();
  // Only back-to-back graph steps form a period (an eager step in between would skew it).
  if (graph_steps_ > 0 && last_graph_start_ != std::chrono::steady_clock::time_point{}) {
    graph_period_ms_ += std::chrono::duration<double, std::milli>(now - last_graph_start_).count();
    ++graph_periods_;
  }
  last_graph_start_ = now;
  return record(graph_events_[0], s.get());
}

Status StepProfiler::graph_end(const Stream& s) {
  DS_RETURN_IF_ERROR(record(graph_events_[1], s.get()));
  graph_pending_ = true;
  maybe_print();
  return Status::Ok();
}

void StepProfiler::maybe_print() {
  if (every_ > 0 && (eager_steps_ + graph_steps_) % every_ == 0) print();
}

void StepProfiler::print() {
  if (Status s = collect_graph_span(); !s.ok()) std::fprintf(stderr, "dsrt profile: %s\n", s.message().c_str());
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
    const double gpu = graph_gpu_ms_ / static_cast<double>(graph_steps_);
    const double period = graph_periods_ > 0 ? graph_period_ms_ / static_cast<double>(graph_periods_) : 0.0;
    std::fprintf(stderr,
                 "  graph steps %lld: graph replay %.3f ms/step on the GPU, launch-to-launch period %.3f ms/step, "
                 "outside the graph %.3f ms/step\n",
                 static_cast<long long>(graph_steps_), gpu, period, period > 0 ? period - gpu : 0.0);
  }
}

}  // namespace ds::cuda
