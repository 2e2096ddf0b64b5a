// The HTTP side of the benchmark: one OpenAI chat/completions request,
// streamed (SSE) or not, timed from the client's point of view.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/common/status.h"
#include "tools/bench/dsbench/dataset.h"
#include "tools/bench/dsbench/openai_stream.h"

namespace httplib {
class Client;
}

namespace ds::bench {

struct ServerUrl {
  std::string scheme_host_port;  // "http://127.0.0.1:30000"
  std::string path_prefix;       // "" or "/prefix" (routes are prefix + "/v1/...")
};

// "http[s]://host[:port][/prefix]"; a trailing "/v1" is dropped (routes add it).
Result<ServerUrl> parse_base_url(const std::string& url);

struct ClientConfig {
  ServerUrl server;
  std::string api_key;            // Bearer token, "" = none
  std::string model;
  ApiEndpoint endpoint = ApiEndpoint::kChat;
  bool stream = true;
  bool ignore_eos = true;
  nlohmann::json extra_body = nlohmann::json::object();  // merged into every body (overrides)
  double connect_timeout_s = 10;
};

// In-flight HTTP clients, so that a deadline or Ctrl-C can abort blocked
// reads at once (httplib::Client::stop shuts the socket down).
class ActiveClients {
 public:
  // False if stop_all() already ran (the request must not start).
  bool add(httplib::Client* c);
  void remove(httplib::Client* c);
  void stop_all();
  bool stopped() const { return stopped_.load(); }

 private:
  std::mutex mu_;
  std::set<httplib::Client*> clients_;
  std::atomic<bool> stopped_{false};
};

struct RequestOutcome {
  bool success = false;
  bool aborted = false;          // stopped by the deadline / interrupt
  bool sent = false;             // false: never started (deadline before its turn)
  bool streamed = false;         // SSE response (TPOT / ITL are measured only then)
  int http_status = 0;
  std::string error;
  double start_s = 0;            // send time, seconds from the benchmark start
  double ttft_s = 0;             // first generated text (non-streamed: the whole latency)
  double e2e_s = 0;
  std::vector<double> itl_s;     // gaps between text-carrying chunks
  int64_t chunks = 0;            // text-carrying chunks
  std::optional<int64_t> usage_prompt_tokens;
  std::optional<int64_t> usage_completion_tokens;
  std::string generated_text;
  std::string finish_reason;
  // Filled by the runner: final counts (usage, else re-tokenized / dataset).
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
};

// The JSON body of a request: model, prompt or messages, max_tokens,
// ignore_eos, stream (+ stream_options.include_usage), then extra_body.
nlohmann::json build_request_body(const ClientConfig& cfg, const BenchRequest& req);

// Sends one request and times it (`read_timeout_s` bounds every socket read).
// Never throws; failures are in the outcome. `start_s` is left to the caller.
RequestOutcome send_request(const ClientConfig& cfg, const BenchRequest& req, ActiveClients& active,
                            double read_timeout_s);

// GET /v1/models: the first model's id.
Result<std::string> fetch_default_model(const ClientConfig& cfg);

}  // namespace ds::bench
