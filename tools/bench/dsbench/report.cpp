#include "tools/bench/dsbench/report.h"

#include <cmath>
#include <cstdio>
#include <map>

namespace ds::bench {

using nlohmann::json;

BenchMetrics compute_metrics(const RunResult& run) {
  BenchMetrics m;
  m.duration_s = run.duration_s;
  std::vector<double> ttft, tpot, itl, e2e;
  double e2e_sum = 0;
  for (const RequestOutcome& o : run.outcomes) {
    if (!o.success) {
      if (!o.sent) {
        ++m.not_sent;
      } else if (o.aborted) {
        ++m.aborted;
      } else {
        ++m.failed;
      }
      continue;
    }
    ++m.completed;
    m.total_input_tokens += o.prompt_tokens;
    m.total_output_tokens += o.output_tokens;
    ttft.push_back(o.ttft_s * 1e3);
    e2e.push_back(o.e2e_s * 1e3);
    e2e_sum += o.e2e_s;
    if (o.streamed && o.output_tokens > 1) tpot.push_back((o.e2e_s - o.ttft_s) * 1e3 / static_cast<double>(o.output_tokens - 1));
    for (double g : o.itl_s) itl.push_back(g * 1e3);
  }
  if (m.duration_s > 0) {
    m.request_throughput = static_cast<double>(m.completed) / m.duration_s;
    m.input_throughput = static_cast<double>(m.total_input_tokens) / m.duration_s;
    m.output_throughput = static_cast<double>(m.total_output_tokens) / m.duration_s;
    m.total_throughput = m.input_throughput + m.output_throughput;
    m.concurrency = e2e_sum / m.duration_s;
  }
  m.ttft_ms = summarize(ttft);
  m.tpot_ms = summarize(tpot);
  m.itl_ms = summarize(itl);
  m.e2e_ms = summarize(e2e);
  return m;
}

std::vector<std::pair<std::string, int64_t>> error_summary(const RunResult& run, size_t max_errors) {
  std::vector<std::pair<std::string, int64_t>> out;
  std::map<std::string, size_t> index;
  for (const RequestOutcome& o : run.outcomes) {
    if (o.success || o.error.empty()) continue;
    auto it = index.find(o.error);
    if (it != index.end()) {
      ++out[it->second].second;
    } else if (out.size() < max_errors) {
      index.emplace(o.error, out.size());
      out.emplace_back(o.error, 1);
    }
  }
  return out;
}

namespace {

void row(std::ostream& os, const std::string& name, const std::string& value) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%-40s %s\n", (name + ":").c_str(), value.c_str());
  os << buf;
}

std::string fmt(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

void section(std::ostream& os, const std::string& title, char fill = '-') {
  const int width = 50;
  const int pad = std::max(0, width - static_cast<int>(title.size()));
  os << std::string(static_cast<size_t>(pad / 2), fill) << title
     << std::string(static_cast<size_t>(pad - pad / 2), fill) << "\n";
}

void latency_rows(std::ostream& os, const std::string& title, const std::string& abbr, const Summary& s) {
  section(os, title);
  row(os, "Mean " + abbr + " (ms)", fmt(s.mean));
  row(os, "Median " + abbr + " (ms)", fmt(s.median));
  row(os, "P99 " + abbr + " (ms)", fmt(s.p99));
}

}  // namespace

void print_report(std::ostream& os, const ReportHeader& h, const BenchMetrics& m) {
  section(os, " Serving Benchmark Result ", '=');
  row(os, "Base URL", h.base_url);
  row(os, "Model", h.model);
  row(os, "Endpoint", h.endpoint + (h.stream ? " (stream)" : " (no stream)"));
  row(os, "Dataset", h.dataset);
  row(os, "Traffic request rate", h.request_rate > 0 && !std::isinf(h.request_rate) ? fmt(h.request_rate) : "inf");
  row(os, "Max request concurrency",
      h.max_concurrency > 0 ? std::to_string(h.max_concurrency) : std::string("not set"));
  row(os, "Successful requests", std::to_string(m.completed));
  row(os, "Failed requests", std::to_string(m.failed));
  if (m.aborted) row(os, "Aborted requests (run stopped)", std::to_string(m.aborted));
  if (m.not_sent) row(os, "Requests not sent (run stopped)", std::to_string(m.not_sent));
  row(os, "Benchmark duration (s)", fmt(m.duration_s));
  row(os, "Total input tokens", std::to_string(m.total_input_tokens));
  row(os, "Total generated tokens", std::to_string(m.total_output_tokens));
  row(os, "Request throughput (req/s)", fmt(m.request_throughput));
  row(os, "Input token throughput (tok/s)", fmt(m.input_throughput));
  row(os, "Output token throughput (tok/s)", fmt(m.output_throughput));
  row(os, "Total token throughput (tok/s)", fmt(m.total_throughput));
  row(os, "Concurrency", fmt(m.concurrency));
  latency_rows(os, "End-to-End Latency", "E2E", m.e2e_ms);
  latency_rows(os, "Time to First Token", "TTFT", m.ttft_ms);
  latency_rows(os, "Time per Output Token (excl. 1st token)", "TPOT", m.tpot_ms);
  latency_rows(os, "Inter-Token Latency", "ITL", m.itl_ms);
  section(os, "", '=');
}

json summary_json(const Summary& s) {
  return json{{"count", s.count}, {"mean", s.mean},     {"median", s.median}, {"std", s.stddev},
              {"min", s.min},     {"max", s.max},       {"p90", s.p90},       {"p95", s.p95},
              {"p99", s.p99}};
}

json report_json(const json& config, const BenchMetrics& m, const RunResult& run, bool details) {
  json metrics = {
      {"completed", m.completed},
      {"failed", m.failed},
      {"aborted", m.aborted},
      {"not_sent", m.not_sent},
      {"duration_s", m.duration_s},
      {"deadline_hit", run.deadline_hit},
      {"interrupted", run.interrupted},
      {"total_input_tokens", m.total_input_tokens},
      {"total_output_tokens", m.total_output_tokens},
      {"request_throughput", m.request_throughput},
      {"input_throughput", m.input_throughput},
      {"output_throughput", m.output_throughput},
      {"total_throughput", m.total_throughput},
      {"concurrency", m.concurrency},
      {"ttft_ms", summary_json(m.ttft_ms)},
      {"tpot_ms", summary_json(m.tpot_ms)},
      {"itl_ms", summary_json(m.itl_ms)},
      {"e2e_ms", summary_json(m.e2e_ms)},
  };
  json errors = json::array();
  for (const auto& [msg, count] : error_summary(run, 20)) errors.push_back({{"message", msg}, {"count", count}});
  json requests = json::array();
  for (const RequestOutcome& o : run.outcomes) {
    json r = {{"success", o.success},
              {"sent", o.sent},
              {"start_s", o.start_s},
              {"ttft_ms", o.ttft_s * 1e3},
              {"e2e_ms", o.e2e_s * 1e3},
              {"prompt_tokens", o.prompt_tokens},
              {"output_tokens", o.output_tokens},
              {"usage_reported", o.usage_completion_tokens.has_value()},
              {"finish_reason", o.finish_reason},
              {"error", o.error}};
    if (o.http_status) r["http_status"] = o.http_status;
    if (details) {
      json itl = json::array();
      for (double g : o.itl_s) itl.push_back(g * 1e3);
      r["itl_ms"] = std::move(itl);
      r["generated_text"] = o.generated_text;
    }
    requests.push_back(std::move(r));
  }
  return json{{"config", config}, {"metrics", metrics}, {"errors", errors}, {"requests", requests}};
}

}  // namespace ds::bench
