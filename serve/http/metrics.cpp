#include "serve/http/metrics.h"

#include <cstdio>
#include <cstdlib>

namespace ds::http {
namespace {

std::string fmt(double v) {
  // Shortest of %.15g / %.17g that reads back as the same double.
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.15g", v);
  if (std::strtod(buf, nullptr) != v) std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

void gauge(const std::string& name, const std::string& help, const std::string& type, const std::string& labels,
           double value, std::string* out) {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  *out += name + labels + " " + fmt(value) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++total_;
}

uint64_t Histogram::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

void Histogram::render(const std::string& name, const std::string& help, std::string* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    *out += name + "_bucket{le=\"" + fmt(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += counts_.back();
  *out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  *out += name + "_sum " + fmt(sum_) + "\n";
  *out += name + "_count " + std::to_string(total_) + "\n";
}

ServerMetrics::ServerMetrics()
    : ttft_seconds({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                    20.0, 40.0, 80.0}),
      itl_seconds({0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0}),
      e2e_seconds({0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                   120.0, 240.0}) {}

void ServerMetrics::count_finished(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++finished_[reason];
}

std::string ServerMetrics::render(const ServingBackend::Stats& s, const std::string& model_name) const {
  (void)model_name;
  std::string out;
  gauge("dsrt:num_requests_running", "Requests in the running batch.", "gauge", "", double(s.running), &out);
  gauge("dsrt:num_requests_waiting", "Requests waiting to be scheduled.", "gauge", "", double(s.waiting), &out);
  gauge("dsrt:kv_cache_pages_used", "KV-cache pages in use.", "gauge", "", double(s.kv_pages_used), &out);
  gauge("dsrt:kv_cache_pages_total", "KV-cache pages in the pool.", "gauge", "", double(s.kv_pages_total), &out);
  const double usage = s.kv_pages_total > 0 ? double(s.kv_pages_used) / double(s.kv_pages_total) : 0.0;
  gauge("dsrt:kv_cache_usage_perc", "Fraction of KV-cache pages in use (0..1).", "gauge", "", usage, &out);
  gauge("dsrt:prefix_cache_hits_total", "Prompt tokens served from the prefix cache.", "counter", "",
        double(s.prefix_cache_hit_tokens), &out);
  gauge("dsrt:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.", "counter", "",
        double(s.prefix_cache_query_tokens), &out);
  const double hit_rate =
      s.prefix_cache_query_tokens > 0 ? double(s.prefix_cache_hit_tokens) / double(s.prefix_cache_query_tokens) : 0.0;
  gauge("dsrt:prefix_cache_hit_rate", "prefix_cache_hits_total / prefix_cache_queries_total.", "gauge", "", hit_rate,
        &out);
  gauge("dsrt:prompt_tokens_total", "Prompt tokens processed.", "counter", "", double(s.prompt_tokens_total), &out);
  gauge("dsrt:generation_tokens_total", "Tokens generated.", "counter", "", double(s.generation_tokens_total), &out);
  gauge("dsrt:num_preemptions_total", "Requests preempted (KV pages reclaimed).", "counter", "",
        double(s.preemptions_total), &out);
  gauge("dsrt:num_overlap_steps_total", "Scheduler steps queued while the previous one ran (overlap schedule).",
        "counter", "", double(s.overlap_steps_total), &out);
  gauge("dsrt:http_requests_in_flight", "Generation HTTP requests being served.", "gauge", "",
        double(http_requests_in_flight.load()), &out);
  {
    std::lock_guard<std::mutex> lock(mu_);
    out += "# HELP dsrt:request_success_total Finished generation requests (per choice) by finish reason.\n";
    out += "# TYPE dsrt:request_success_total counter\n";
    for (const char* reason : {"stop", "length", "abort", "error"}) {
      auto it = finished_.find(reason);
      out += std::string("dsrt:request_success_total{finished_reason=\"") + reason + "\"} " +
             std::to_string(it == finished_.end() ? 0 : it->second) + "\n";
    }
  }
  ttft_seconds.render("dsrt:time_to_first_token_seconds", "Time to first token (from request arrival).", &out);
  itl_seconds.render("dsrt:inter_token_latency_seconds", "Time between consecutive output tokens.", &out);
  e2e_seconds.render("dsrt:e2e_request_latency_seconds", "Request latency from arrival to last token.", &out);
  return out;
}

}  // namespace ds::http
