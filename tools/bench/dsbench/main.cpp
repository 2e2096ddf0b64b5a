// dsbench: serving benchmark for OpenAI-compatible servers (dsrt serve,
// SGLang, vLLM), in the manner of `python -m sglang.bench_serving` and
// `vllm bench serve`. See tools/bench/dsbench/README.md.
#include <CLI/CLI.hpp>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <string>

#include "runtime/common/file_util.h"
#include "tools/bench/dsbench/client.h"
#include "tools/bench/dsbench/dataset.h"
#include "tools/bench/dsbench/report.h"
#include "tools/bench/dsbench/runner.h"

namespace {

using nlohmann::json;

std::atomic<bool> g_interrupted{false};

extern "C" void on_signal(int) { g_interrupted.store(true); }

struct Options {
  std::string base_url = "http://127.0.0.1:30000";
  std::string api_key;
  std::string model;
  std::string endpoint = "completions";
  std::string dataset = "random";
  std::string dataset_path;
  int64_t num_prompts = 1000;
  int64_t random_input_len = 1024;
  int64_t random_output_len = 1024;
  double random_range_ratio = 1.0;
  std::string request_rate = "inf";
  int64_t max_concurrency = 0;
  uint64_t seed = 1;
  std::string plan;
  std::string tokenizer;
  std::string output_file;
  bool output_details = false;
  bool disable_stream = false;
  bool disable_ignore_eos = false;
  int64_t warmup = 1;
  double max_duration = 3600;
  double progress_interval = 10;
  std::string extra_request_body;
};

ds::Result<double> parse_rate(const std::string& s) {
  if (s == "inf" || s == "Inf" || s == "INF") return std::numeric_limits<double>::infinity();
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0' || !(v > 0))
    return ds::Status::Error("--request-rate must be a positive number or 'inf', got '" + s + "'");
  return v;
}

ds::Status validate(const Options& o) {
  if (o.num_prompts <= 0) return ds::Status::Error("--num-prompts must be positive");
  if (o.dataset == "random" && o.random_input_len <= 0) return ds::Status::Error("--random-input-len must be positive");
  if (o.random_output_len <= 0) return ds::Status::Error("--random-output-len must be positive");
  if (!(o.random_range_ratio >= 0 && o.random_range_ratio <= 1))
    return ds::Status::Error("--random-range-ratio must be in [0, 1]");
  if (o.max_concurrency < 0) return ds::Status::Error("--max-concurrency must be positive");
  if (o.warmup < 0) return ds::Status::Error("--warmup must be >= 0");
  if (!(o.max_duration > 0)) return ds::Status::Error("--max-duration must be positive");
  if (!(o.progress_interval >= 0)) return ds::Status::Error("--progress-interval must be >= 0");
  if (o.dataset == "jsonl" && o.dataset_path.empty()) return ds::Status::Error("--dataset jsonl needs --dataset-path");
  if (o.dataset == "random" && o.plan.empty() && o.tokenizer.empty())
    return ds::Status::Error("--dataset random needs a tokenizer: --plan PLAN or --tokenizer tokenizer.json");
  return ds::Status::Ok();
}

int fail(const std::string& message) {
  std::fprintf(stderr, "dsbench: error: %s\n", message.c_str());
  return 1;
}

int run(const Options& o) {
  if (ds::Status st = validate(o); !st.ok()) return fail(st.message());
  auto rate = parse_rate(o.request_rate);
  if (!rate.ok()) return fail(rate.status().message());

  ds::bench::ClientConfig client;
  auto url = ds::bench::parse_base_url(o.base_url);
  if (!url.ok()) return fail(url.status().message());
  client.server = *url;
  client.api_key = o.api_key;
  if (client.api_key.empty())
    if (const char* env = std::getenv("OPENAI_API_KEY")) client.api_key = env;
  client.endpoint = o.endpoint == "chat" ? ds::bench::ApiEndpoint::kChat : ds::bench::ApiEndpoint::kCompletions;
  client.stream = !o.disable_stream;
  client.ignore_eos = !o.disable_ignore_eos;
  if (!o.extra_request_body.empty()) {
    client.extra_body = json::parse(o.extra_request_body, nullptr, false);
    if (client.extra_body.is_discarded() || !client.extra_body.is_object())
      return fail("--extra-request-body must be a JSON object");
  }

  std::unique_ptr<ds::Tokenizer> tok;
  if (!o.plan.empty() || !o.tokenizer.empty()) {
    auto t = ds::bench::load_bench_tokenizer(o.plan, o.tokenizer);
    if (!t.ok()) return fail(t.status().message());
    tok = std::move(t).value();
  }

  std::vector<ds::bench::BenchRequest> requests;
  if (o.dataset == "random") {
    ds::bench::RandomDatasetConfig rc{o.num_prompts, o.random_input_len, o.random_output_len,
                                      o.random_range_ratio, o.seed};
    auto r = ds::bench::make_random_dataset(*tok, rc);
    if (!r.ok()) return fail(r.status().message());
    requests = std::move(r).value();
  } else {
    ds::bench::JsonlDatasetConfig jc{o.dataset_path, o.num_prompts, o.random_output_len, o.seed};
    auto r = ds::bench::load_jsonl_dataset(jc, tok.get());
    if (!r.ok()) return fail(r.status().message());
    requests = std::move(r).value();
    if (static_cast<int64_t>(requests.size()) < o.num_prompts)
      std::fprintf(stderr, "dsbench: note: %s has %zu conversations (< --num-prompts %lld)\n",
                   o.dataset_path.c_str(), requests.size(), static_cast<long long>(o.num_prompts));
  }

  if (!o.model.empty()) {
    client.model = o.model;
  } else {
    auto m = ds::bench::fetch_default_model(client);
    if (!m.ok()) return fail(m.status().message());
    client.model = *m;
  }

  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  if (o.warmup > 0) {
    std::vector<ds::bench::BenchRequest> warm;
    for (int64_t i = 0; i < o.warmup; ++i) warm.push_back(requests[static_cast<size_t>(i) % requests.size()]);
    std::fprintf(stderr, "dsbench: %lld warmup request(s)...\n", static_cast<long long>(o.warmup));
    ds::bench::RunConfig wc{0, o.warmup, o.max_duration, o.seed};
    ds::bench::RunResult w = ds::bench::run_benchmark(client, warm, wc, tok.get(), &g_interrupted);
    int64_t ok = 0;
    for (const auto& out : w.outcomes) ok += out.success;
    if (g_interrupted.load()) return fail("interrupted during warmup");
    if (ok == 0) {
      std::string first = w.outcomes.empty() ? std::string("no request") : w.outcomes.front().error;
      return fail("warmup failed: " + first);
    }
  }

  std::fprintf(stderr, "dsbench: %zu requests to %s (%s, model %s), request rate %s, max concurrency %s\n",
               requests.size(), o.base_url.c_str(), o.endpoint.c_str(), client.model.c_str(),
               o.request_rate.c_str(), o.max_concurrency > 0 ? std::to_string(o.max_concurrency).c_str() : "not set");
  ds::bench::RunConfig rc{*rate, o.max_concurrency, o.max_duration, o.seed, o.progress_interval};
  ds::bench::RunResult result = ds::bench::run_benchmark(client, requests, rc, tok.get(), &g_interrupted);
  const ds::bench::BenchMetrics metrics = ds::bench::compute_metrics(result);

  if (result.deadline_hit) std::fprintf(stderr, "dsbench: --max-duration %.0f s reached\n", o.max_duration);
  if (result.interrupted) std::fprintf(stderr, "dsbench: interrupted\n");
  for (const auto& [msg, count] : ds::bench::error_summary(result, 5))
    std::fprintf(stderr, "dsbench: error (x%lld): %s\n", static_cast<long long>(count), msg.c_str());

  ds::bench::ReportHeader header{o.base_url, client.model, o.endpoint,
                                 o.dataset == "random" ? "random" : "jsonl " + o.dataset_path,
                                 *rate, o.max_concurrency, client.stream};
  ds::bench::print_report(std::cout, header, metrics);
  std::cout.flush();

  if (!o.output_file.empty()) {
    json config = {{"base_url", o.base_url},
                   {"model", client.model},
                   {"endpoint", o.endpoint},
                   {"dataset", o.dataset},
                   {"dataset_path", o.dataset_path},
                   {"num_prompts", o.num_prompts},
                   {"random_input_len", o.random_input_len},
                   {"random_output_len", o.random_output_len},
                   {"random_range_ratio", o.random_range_ratio},
                   {"request_rate", std::isinf(*rate) ? json("inf") : json(*rate)},
                   {"max_concurrency", o.max_concurrency > 0 ? json(o.max_concurrency) : json(nullptr)},
                   {"seed", o.seed},
                   {"plan", o.plan},
                   {"tokenizer", o.tokenizer},
                   {"stream", client.stream},
                   {"ignore_eos", client.ignore_eos},
                   {"warmup", o.warmup},
                   {"max_duration_s", o.max_duration},
                   {"extra_request_body", client.extra_body}};
    const json report = ds::bench::report_json(config, metrics, result, o.output_details);
    ds::Status st = ds::write_file_atomic(
        o.output_file, report.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
    if (!st.ok()) return fail(st.message());
    std::fprintf(stderr, "dsbench: results written to %s\n", o.output_file.c_str());
  }
  return metrics.completed > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"dsbench: serving benchmark for OpenAI-compatible servers (dsrt serve, SGLang, vLLM)", "dsbench"};
  app.add_option("--base-url", o.base_url, "Server URL, e.g. http://127.0.0.1:30000")->capture_default_str();
  app.add_option("--api-key", o.api_key, "Bearer token (default: $OPENAI_API_KEY)");
  app.add_option("--model", o.model, "Model name (default: the first of GET /v1/models)");
  app.add_option("--endpoint", o.endpoint, "chat (/v1/chat/completions) or completions (/v1/completions)")
      ->check(CLI::IsMember({"chat", "completions"}))
      ->capture_default_str();
  app.add_option("--dataset", o.dataset, "random (token-exact random prompts) or jsonl")
      ->check(CLI::IsMember({"random", "jsonl"}))
      ->capture_default_str();
  app.add_option("--dataset-path", o.dataset_path,
                 "JSONL file: {\"messages\": [...]} or ShareGPT {\"conversations\": [...]} per line "
                 "(or a JSON array of them)");
  app.add_option("--num-prompts", o.num_prompts, "Number of requests")->capture_default_str();
  app.add_option("--random-input-len", o.random_input_len, "Prompt tokens (random dataset)")->capture_default_str();
  app.add_option("--random-output-len", o.random_output_len,
                 "max_tokens (random dataset; jsonl conversations without an output length)")
      ->capture_default_str();
  app.add_option("--random-range-ratio", o.random_range_ratio,
                 "Lengths uniform in [max(1, floor(L*R)), L] (sglang semantics); 1 = exact")
      ->capture_default_str();
  app.add_option("--request-rate", o.request_rate, "Requests/s of a Poisson process, or inf (all at once)")
      ->capture_default_str();
  app.add_option("--max-concurrency", o.max_concurrency, "Requests in flight at most (default: unlimited, "
                 "capped at " + std::to_string(ds::bench::kMaxWorkers) + ")");
  app.add_option("--seed", o.seed, "Seed of prompts, lengths, shuffling and arrivals")->capture_default_str();
  auto* plan_opt = app.add_option("--plan", o.plan, "dscc plan whose tokenizer builds the prompts");
  auto* tok_opt = app.add_option("--tokenizer", o.tokenizer, "tokenizer.json (or its directory)");
  plan_opt->excludes(tok_opt);
  app.add_option("--output-file", o.output_file, "Write config, metrics and per-request results as JSON");
  app.add_flag("--output-details", o.output_details, "Per-request ITLs and generated text in --output-file");
  app.add_flag("--disable-stream", o.disable_stream, "Non-streamed requests (TTFT = E2E)");
  app.add_flag("--disable-ignore-eos", o.disable_ignore_eos, "Do not send ignore_eos: true");
  app.add_option("--warmup", o.warmup, "Unmeasured requests sent first (all must not fail)")->capture_default_str();
  app.add_option("--max-duration", o.max_duration,
                 "Seconds after which requests in flight are aborted and the rest not sent")
      ->capture_default_str();
  app.add_option("--progress-interval", o.progress_interval, "Seconds between progress lines on stderr (0: none)")
      ->capture_default_str();
  app.add_option("--extra-request-body", o.extra_request_body,
                 "JSON object merged into every request body, e.g. '{\"temperature\": 0.7}'");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(e.what());
  }
  try {
    return run(o);
  } catch (const std::bad_alloc&) {
    return fail("out of memory");
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
}
