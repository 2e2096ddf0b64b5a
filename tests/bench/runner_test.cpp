// The HTTP client and the runner against an in-process OpenAI-style server
// (cpp-httplib) on 127.0.0.1: SSE timing, usage, errors, concurrency limit,
// bounded run time.
#include <gtest/gtest.h>

#include <httplib.h>

#include <atomic>
#include <memory>
#include <chrono>
#include <thread>

#include "tools/bench/dsbench/client.h"
#include "tools/bench/dsbench/report.h"
#include "tools/bench/dsbench/runner.h"

namespace ds::bench {
namespace {

using nlohmann::json;

// Streams `max_tokens` chunks of "t " (a few ms apart), then usage unless the
// body sets "no_usage", then [DONE] unless it sets "no_done". "fail": 400.
// "stall": streams nothing until the client goes away (at most 20 s).
class TestServer {
 public:
  TestServer() {
    server_.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"object":"list","data":[{"id":"tiny"},{"id":"other"}]})", "application/json");
    });
    server_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res, false);
    });
    server_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res, true);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // Bounded wait for the accept loop (listen_after_bind sets is_running).
    for (int i = 0; i < 5000 && !server_.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~TestServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int max_in_flight() const { return max_in_flight_.load(); }
  const json& last_body() const { return last_body_; }

 private:
  void handle(const httplib::Request& req, httplib::Response& res, bool chat) {
    json body = json::parse(req.body);
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_body_ = body;
    }
    if (body.value("fail", false)) {
      res.status = 400;
      res.set_content(R"({"error":{"message":"bad request for test","type":"BadRequestError"}})",
                      "application/json");
      return;
    }
    const int64_t n = body["max_tokens"].get<int64_t>();
    if (!body.value("stream", false)) {
      json out = {{"choices", json::array({chat ? json{{"message", {{"content", std::string(n, 'x')}}}}
                                                : json{{"text", std::string(n, 'x')}}})},
                  {"usage", {{"prompt_tokens", 5}, {"completion_tokens", n}}}};
      res.set_content(out.dump(), "application/json");
      return;
    }
    const int now = ++in_flight_;
    int prev = max_in_flight_.load();
    while (now > prev && !max_in_flight_.compare_exchange_weak(prev, now)) {
    }
    // Leaves the in-flight count before the last bytes go out: a client may
    // start its next request as soon as it sees them, before this handler ends.
    auto released = std::make_shared<std::atomic<bool>>(false);
    auto release = [this, released] {
      if (!released->exchange(true)) --in_flight_;
    };
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, body, n, chat, release](size_t, httplib::DataSink& sink) {
          auto send = [&](const std::string& s) { return sink.is_writable() && sink.write(s.data(), s.size()); };
          if (body.value("stall", false)) {
            for (int i = 0; i < 2000 && sink.is_writable(); ++i) {
              send(": ping\n\n");
              std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            sink.done();
            return true;
          }
          for (int64_t i = 0; i < n; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            json chunk = {{"choices", json::array({chat ? json{{"delta", {{"content", "t "}}}} : json{{"text", "t "}}})}};
            if (!send("data: " + chunk.dump() + "\n\n")) return false;
          }
          release();
          if (!body.value("no_usage", false))
            send(R"(data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":)" + std::to_string(n) +
                 "}}\n\n");
          if (!body.value("no_done", false)) send("data: [DONE]\n\n");
          sink.done();
          return true;
        },
        [release](bool) { release(); });
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::mutex mu_;
  json last_body_;
};

ClientConfig config_for(const TestServer& s, ApiEndpoint ep = ApiEndpoint::kCompletions) {
  ClientConfig c;
  auto url = parse_base_url(s.url());
  EXPECT_TRUE(url.ok());
  c.server = *url;
  c.model = "tiny";
  c.endpoint = ep;
  return c;
}

BenchRequest request(int64_t out_len) {
  BenchRequest r;
  r.prompt = "hello";
  r.prompt_len = 1;
  r.output_len = out_len;
  return r;
}

TEST(BaseUrl, Parsing) {
  auto a = parse_base_url("http://127.0.0.1:30000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->scheme_host_port, "http://127.0.0.1:30000");
  EXPECT_EQ(a->path_prefix, "");
  auto b = parse_base_url("https://host/api/v1/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->scheme_host_port, "https://host");
  EXPECT_EQ(b->path_prefix, "/api");
  EXPECT_FALSE(parse_base_url("127.0.0.1:30000").ok());
  EXPECT_FALSE(parse_base_url("ftp://x").ok());
  EXPECT_FALSE(parse_base_url("http://").ok());
}

TEST(Client, DefaultModelIsTheFirst) {
  TestServer s;
  auto m = fetch_default_model(config_for(s));
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(*m, "tiny");
}

TEST(Client, RequestBody) {
  ClientConfig c;
  c.model = "m";
  c.endpoint = ApiEndpoint::kChat;
  c.extra_body = {{"temperature", 0.5}, {"top_k", 3}};
  json b = build_request_body(c, request(7));
  EXPECT_EQ(b["messages"], json::parse(R"([{"role":"user","content":"hello"}])"));
  EXPECT_EQ(b["max_tokens"], 7);
  EXPECT_EQ(b["ignore_eos"], true);
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["stream_options"]["include_usage"], true);
  EXPECT_EQ(b["temperature"], 0.5);  // extra body overrides
  EXPECT_EQ(b["top_k"], 3);
  c.endpoint = ApiEndpoint::kCompletions;
  c.stream = false;
  c.ignore_eos = false;
  json b2 = build_request_body(c, request(7));
  EXPECT_EQ(b2["prompt"], "hello");
  EXPECT_FALSE(b2.contains("messages"));
  EXPECT_FALSE(b2.contains("stream_options"));
  EXPECT_FALSE(b2.contains("ignore_eos"));
}

TEST(Client, StreamedRequestTiming) {
  TestServer s;
  for (ApiEndpoint ep : {ApiEndpoint::kCompletions, ApiEndpoint::kChat}) {
    ActiveClients active;
    RequestOutcome o = send_request(config_for(s, ep), request(6), active, 30);
    ASSERT_TRUE(o.success) << o.error;
    EXPECT_EQ(o.chunks, 6);
    EXPECT_EQ(o.itl_s.size(), 5u);
    EXPECT_EQ(o.generated_text, "t t t t t t ");
    EXPECT_EQ(o.usage_completion_tokens.value_or(-1), 6);
    EXPECT_EQ(o.usage_prompt_tokens.value_or(-1), 5);
    EXPECT_GT(o.ttft_s, 0);
    EXPECT_LE(o.ttft_s, o.e2e_s);
    double itl_sum = 0;
    for (double g : o.itl_s) itl_sum += g;
    EXPECT_LE(o.ttft_s + itl_sum, o.e2e_s + 1e-9);
  }
}

TEST(Client, NonStreamedRequest) {
  TestServer s;
  ClientConfig c = config_for(s, ApiEndpoint::kChat);
  c.stream = false;
  ActiveClients active;
  RequestOutcome o = send_request(c, request(4), active, 30);
  ASSERT_TRUE(o.success) << o.error;
  EXPECT_EQ(o.generated_text, "xxxx");
  EXPECT_EQ(o.ttft_s, o.e2e_s);
  EXPECT_TRUE(o.itl_s.empty());
  EXPECT_EQ(o.usage_completion_tokens.value_or(-1), 4);
  EXPECT_FALSE(o.streamed);
  RunResult r;
  r.outcomes = {o};
  r.outcomes[0].output_tokens = 4;
  r.duration_s = 1;
  BenchMetrics m = compute_metrics(r);
  EXPECT_EQ(m.completed, 1);
  EXPECT_EQ(m.tpot_ms.count, 0);  // no per-token timing without streaming
  EXPECT_EQ(m.itl_ms.count, 0);
  EXPECT_EQ(m.ttft_ms.count, 1);
}

TEST(Client, Errors) {
  TestServer s;
  ActiveClients active;
  ClientConfig c = config_for(s);
  c.extra_body = {{"fail", true}};
  RequestOutcome o = send_request(c, request(3), active, 30);
  EXPECT_FALSE(o.success);
  EXPECT_EQ(o.http_status, 400);
  EXPECT_NE(o.error.find("bad request for test"), std::string::npos) << o.error;

  c.extra_body = {{"no_done", true}};
  o = send_request(c, request(3), active, 30);
  EXPECT_FALSE(o.success);
  EXPECT_NE(o.error.find("[DONE]"), std::string::npos) << o.error;

  // A port nobody listens on (the server's, after it stopped).
  ClientConfig dead;
  {
    TestServer gone;
    dead = config_for(gone);
  }
  o = send_request(dead, request(3), active, 30);
  EXPECT_FALSE(o.success);
  EXPECT_NE(o.error.find("cannot connect"), std::string::npos) << o.error;
  EXPECT_FALSE(fetch_default_model(dead).ok());
}

TEST(Runner, ConcurrencyLimitAndMetrics) {
  TestServer s;
  std::vector<BenchRequest> reqs(8, request(5));
  RunConfig rc;
  rc.max_concurrency = 2;
  RunResult r = run_benchmark(config_for(s), reqs, rc, nullptr, nullptr);
  EXPECT_LE(s.max_in_flight(), 2);
  EXPECT_GE(s.max_in_flight(), 1);
  BenchMetrics m = compute_metrics(r);
  EXPECT_EQ(m.completed, 8);
  EXPECT_EQ(m.failed, 0);
  EXPECT_EQ(m.total_output_tokens, 40);
  EXPECT_EQ(m.total_input_tokens, 40);  // usage prompt_tokens (5) wins over the dataset's 1
  EXPECT_EQ(m.itl_ms.count, 8 * 4);
  EXPECT_EQ(m.tpot_ms.count, 8);
  EXPECT_GT(m.duration_s, 0);
  EXPECT_LE(m.concurrency, 2.0 + 1e-6);
  EXPECT_NEAR(m.request_throughput, 8 / m.duration_s, 1e-9);

  json j = report_json(json{{"k", 1}}, m, r, true);
  EXPECT_EQ(j["metrics"]["completed"], 8);
  EXPECT_EQ(j["requests"].size(), 8u);
  EXPECT_EQ(j["requests"][0]["itl_ms"].size(), 4u);
  EXPECT_EQ(j["config"]["k"], 1);
}

TEST(Runner, OutputCountedFromTextWithoutUsage) {
  TestServer s;
  ClientConfig c = config_for(s);
  c.extra_body = {{"no_usage", true}};
  RunResult r = run_benchmark(c, {request(3)}, RunConfig{}, nullptr, nullptr);
  ASSERT_TRUE(r.outcomes[0].success) << r.outcomes[0].error;
  EXPECT_EQ(r.outcomes[0].output_tokens, 3);  // no tokenizer: one token per text chunk
  EXPECT_EQ(r.outcomes[0].prompt_tokens, 1);  // the dataset's count
}

TEST(Runner, FailuresAreCountedNotFatal) {
  TestServer s;
  std::vector<BenchRequest> reqs(3, request(2));
  ClientConfig bad = config_for(s);
  bad.extra_body = {{"fail", true}};
  RunResult r = run_benchmark(bad, reqs, RunConfig{}, nullptr, nullptr);
  BenchMetrics m = compute_metrics(r);
  EXPECT_EQ(m.completed, 0);
  EXPECT_EQ(m.failed, 3);
  auto errs = error_summary(r, 5);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].second, 3);
}

TEST(Runner, MaxDurationAbortsStalledRequests) {
  TestServer s;
  ClientConfig c = config_for(s);
  c.extra_body = {{"stall", true}};
  std::vector<BenchRequest> reqs(4, request(2));
  RunConfig rc;
  rc.max_concurrency = 2;
  rc.max_duration_s = 0.3;
  RunResult r = run_benchmark(c, reqs, rc, nullptr, nullptr);
  EXPECT_TRUE(r.deadline_hit);
  BenchMetrics m = compute_metrics(r);
  EXPECT_EQ(m.completed, 0);
  EXPECT_EQ(m.aborted + m.not_sent, 4);
  EXPECT_EQ(m.aborted, 2);  // the two in flight
}

TEST(Runner, InterruptStopsTheRun) {
  TestServer s;
  ClientConfig c = config_for(s);
  c.extra_body = {{"stall", true}};
  std::atomic<bool> interrupt{true};
  RunResult r = run_benchmark(c, std::vector<BenchRequest>(3, request(2)), RunConfig{}, nullptr, &interrupt);
  EXPECT_TRUE(r.interrupted);
  for (const auto& o : r.outcomes) EXPECT_FALSE(o.success);
}

TEST(Runner, PoissonRateSpacesTheSends) {
  TestServer s;
  RunConfig rc;
  rc.request_rate = 50;
  rc.seed = 9;
  RunResult r = run_benchmark(config_for(s), std::vector<BenchRequest>(5, request(1)), rc, nullptr, nullptr);
  const auto arrivals = poisson_arrival_offsets(5, 50, 9);
  for (size_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(r.outcomes[i].success) << r.outcomes[i].error;
    EXPECT_GE(r.outcomes[i].start_s, arrivals[i]);  // never before its arrival time
  }
}

}  // namespace
}  // namespace ds::bench
