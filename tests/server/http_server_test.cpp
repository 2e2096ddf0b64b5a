// In-process tests of OpenAIServer over the real ServingEngine (CPU executor),
// with a hand-built tiny Qwen2 plan (tests/runtime TinyModel) that carries the
// qwen2-tiny-r1 fixture's tokenizer and chat template, and cpp-httplib as the
// client. Needs neither dscc nor node (the npm `openai` e2e suites do the rest).
#include <gtest/gtest.h>

#include <httplib.h>

#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/common/file_util.h"
#include "runtime/engine/engine.h"
#include "runtime/executor/cpu_executor.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/scheduler/serving_engine.h"
#include "runtime/weights/weight_loader.h"
#include "serve/http/openai_server.h"
#include "serve/http/sse.h"
#include "serve/tokenizer/tokenizer.h"
#include "tests/runtime/test_util.h"

namespace ds::http {
namespace {

using json = nlohmann::json;

constexpr char kKey[] = "sk-unit";
constexpr int64_t kMaxModelLen = 128;

// A fixture file, or a failed test naming it.
std::string fixture_file(const std::string& path) {
  auto bytes = ds::read_file(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status().message();
  return bytes.ok() ? bytes.value() : std::string();
}

struct Served {
  bool overlap = false;  // the engine's executor samples in the step, pipelined: the overlap schedule runs
  std::unique_ptr<test::TempDir> dir;
  std::unique_ptr<LoadedPlan> plan;
  std::unique_ptr<LoadedWeights> weights;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ServingEngine> engine;
  std::unique_ptr<OpenAIServer> server;
  std::thread thread;
  int port = 0;
};

Served* g = nullptr;

// Every test runs twice: with the CPU executor sampling on the host (the
// synchronous schedule), and sampling in the step with pipelining (the CUDA
// executor's contract: the scheduler's overlap schedule), so the HTTP layer is
// checked over both.
class HttpServerTest : public ::testing::TestWithParam<bool> {
 protected:
  static void StartServer(bool overlap) {
    g = new Served();
    g->overlap = overlap;
    const std::string fixture = std::string(DS_SOURCE_DIR) + "/tests/fixtures/qwen2-tiny-r1/";
    test::TinyModel tm;
    tm.tokenizer_json = fixture_file(fixture + "tokenizer.json");
    tm.tokenizer_config_json = fixture_file(fixture + "tokenizer_config.json");
    tm.chat_template = json::parse(tm.tokenizer_config_json)["chat_template"].get<std::string>();
    auto tok = Tokenizer::from_json(tm.tokenizer_json, tm.tokenizer_config_json);
    ASSERT_TRUE(tok.ok()) << tok.status().message();
    g->tokenizer = std::move(*tok);
    tm.vocab = g->tokenizer->vocab_size() + 1;  // the plan's eos (vocab - 1) is an id the tokenizer lacks
    tm.max_model_len = kMaxModelLen;
    g->dir = std::make_unique<test::TempDir>();
    test::write_bytes(g->dir->file("model.safetensors"), test::safetensors_bytes(tm.checkpoint(11)));
    auto plan = LoadedPlan::from_bytes(tm.plan_bytes(g->dir->path()), "tiny.dsplan");
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    g->plan = std::move(*plan);
    auto weights = LoadedWeights::load(*g->plan, WeightLoadOptions{});
    ASSERT_TRUE(weights.ok()) << weights.status().message();
    g->weights = std::move(*weights);
    ServingOptions so;
    so.max_running_requests = 8;
    so.start_loop = false;
    auto engine = ServingEngine::create(*g->plan, *g->weights, so);
    ASSERT_TRUE(engine.ok()) << engine.status().message();
    g->engine = std::move(*engine);
    auto* cpu = dynamic_cast<CpuExecutor*>(&g->engine->executor());
    ASSERT_NE(cpu, nullptr);
    cpu->set_sample_in_step(overlap);
    cpu->set_pipelined_sampling(overlap);
    g->engine->scheduler().start();
    ServerOptions o;
    o.port = 0;
    o.api_key = kKey;
    o.served_model_name = "tiny-test";
    o.reasoning_parser = "deepseek_r1";
    o.log_level = "warning";
    auto server = OpenAIServer::create(o, *g->engine, *g->plan);
    ASSERT_TRUE(server.ok()) << server.status().message();
    g->server = std::move(*server);
    ASSERT_TRUE(g->server->bind().ok());
    g->port = g->server->port();
    g->thread = std::thread([] { EXPECT_TRUE(g->server->serve().ok()); });
  }

  static void StopServer() {
    if (!g) return;
    if (g->server) g->server->stop();
    if (g->thread.joinable()) g->thread.join();
    g->server.reset();
    g->engine.reset();
    delete g;
    g = nullptr;
  }

  static void TearDownTestSuite() { StopServer(); }

  // One server at a time, for the current parameter.
  void SetUp() override {
    if (g && g->overlap != GetParam()) StopServer();
    if (!g) StartServer(GetParam());
    ASSERT_NE(g->server, nullptr);
  }

  static httplib::Client client(bool with_key = true) {
    httplib::Client c("127.0.0.1", g->port);
    c.set_read_timeout(120, 0);
    if (with_key) c.set_bearer_token_auth(kKey);
    return c;
  }

  static json post(const std::string& path, const json& body, int expect_status = 200) {
    auto res = client().Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(res) << path;
    if (!res) return json();
    EXPECT_EQ(res->status, expect_status) << res->body;
    return json::parse(res->body, nullptr, false);
  }

  // Data payloads of an SSE response.
  static std::vector<std::string> post_stream(const std::string& path, const json& body) {
    auto res = client().Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
    SseParser parser;
    auto events = parser.feed(res->body);
    EXPECT_TRUE(parser.pending().empty());
    return events;
  }

  static std::vector<int32_t> reference_greedy(const std::vector<int32_t>& prompt, int64_t max_new) {
    auto engine = Engine::create(*g->plan, *g->weights, EngineOptions{64, 0});
    EXPECT_TRUE(engine.ok());
    GenerateOptions go;
    go.max_new_tokens = max_new;
    go.sampling.temperature = 0.0f;
    go.ignore_eos = true;
    auto r = (*engine)->generate(prompt, go);
    EXPECT_TRUE(r.ok());
    return r->output_ids;
  }
};

TEST_P(HttpServerTest, HealthAuthAndModels) {
  auto res = client(false).Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = client(false).Get("/v1/models");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "invalid_api_key");
  res = client().Get("/v1/models");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  json models = json::parse(res->body);
  EXPECT_EQ(models["data"][0]["id"], "tiny-test");
  EXPECT_EQ(models["data"][0]["max_model_len"], kMaxModelLen);
}

TEST_P(HttpServerTest, CompletionGreedyEqualsEngineGenerate) {
  json tok = post("/tokenize", {{"prompt", "The capital of France"}});
  std::vector<int32_t> ids = tok["tokens"].get<std::vector<int32_t>>();
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], *g->tokenizer->bos_token_id());
  std::vector<int32_t> want = reference_greedy(ids, 10);
  ASSERT_EQ(want.size(), 10u);
  ASSERT_FALSE(g->tokenizer->decode(want, false).empty());
  json r = post("/v1/completions", {{"prompt", ids}, {"max_tokens", 10}, {"temperature", 0}, {"ignore_eos", true},
                                    {"skip_special_tokens", false}});
  EXPECT_EQ(r["choices"][0]["text"], g->tokenizer->decode(want, false));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["prompt_tokens"], ids.size());
  EXPECT_EQ(r["usage"]["completion_tokens"], 10);
  EXPECT_EQ(r["usage"]["total_tokens"], ids.size() + 10);
  EXPECT_EQ(r["object"], "text_completion");
}

TEST_P(HttpServerTest, StreamingMatchesNonStreaming) {
  json req = {{"prompt", "Once upon"}, {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true}};
  json full = post("/v1/completions", req);
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  auto events = post_stream("/v1/completions", req);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  json usage_chunk = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage_chunk["choices"].empty());
  EXPECT_EQ(usage_chunk["usage"]["completion_tokens"], 8);
  std::string text;
  int finishes = 0;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    json c = json::parse(events[i]);
    EXPECT_TRUE(c["usage"].is_null());
    text += c["choices"][0]["text"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) ++finishes;
  }
  EXPECT_EQ(finishes, 1);
  EXPECT_EQ(text, full["choices"][0]["text"].get<std::string>());
}

TEST_P(HttpServerTest, StopStringTruncatesStreamAndNot) {
  json req = {{"prompt", "a b c"}, {"max_tokens", 24}, {"temperature", 0}, {"ignore_eos", true}};
  std::string full = post("/v1/completions", req)["choices"][0]["text"];
  ASSERT_GE(full.size(), 6u);
  const std::string stop = full.substr(full.size() / 2 - 1, 2);
  const std::string expected = full.substr(0, full.find(stop));
  req["stop"] = stop;
  json r = post("/v1/completions", req);
  EXPECT_EQ(r["choices"][0]["text"], expected);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r["choices"][0]["stop_reason"], stop);
  req["stream"] = true;
  std::string text;
  for (const auto& e : post_stream("/v1/completions", req)) {
    if (e == "[DONE]") continue;
    json c = json::parse(e);
    text += c["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, expected);
}

TEST_P(HttpServerTest, ChatReasoningParserOnRenderedPrompt) {
  json messages = json::array({{{"role", "user"}, {"content", "Hi there"}}});
  json tok = post("/tokenize", {{"messages", messages}});
  std::vector<int32_t> ids = tok["tokens"].get<std::vector<int32_t>>();
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], *g->tokenizer->bos_token_id());
  EXPECT_NE(ids[1], *g->tokenizer->bos_token_id());  // no double BOS
  const std::string raw = g->tokenizer->decode(reference_greedy(ids, 12), false);
  json r = post("/v1/chat/completions", {{"messages", messages}, {"max_tokens", 12}, {"temperature", 0},
                                         {"ignore_eos", true}, {"skip_special_tokens", false}});
  json msg = r["choices"][0]["message"];
  EXPECT_EQ(msg["role"], "assistant");
  std::string body = raw.rfind("<think>", 0) == 0 ? raw.substr(7) : raw;
  const size_t end = body.find("</think>");
  const std::string reasoning = end == std::string::npos ? body : body.substr(0, end);
  EXPECT_EQ(msg["reasoning_content"].is_null() ? std::string() : msg["reasoning_content"].get<std::string>(), reasoning);
  if (end == std::string::npos) EXPECT_TRUE(msg["content"].is_null());
  EXPECT_EQ(r["usage"]["prompt_tokens"], ids.size());
}

TEST_P(HttpServerTest, ErrorsAreJsonAndTheServerKeepsServing) {
  auto res = client().Post("/v1/chat/completions", "{not json", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"]["type"], "BadRequestError");
  json e = post("/v1/chat/completions", {{"messages", json::array()}}, 400);
  EXPECT_EQ(e["error"]["param"], "messages");
  e = post("/v1/completions", {{"prompt", "x"}, {"model", "nope"}}, 404);
  EXPECT_EQ(e["error"]["type"], "NotFoundError");
  e = post("/v1/completions", {{"prompt", std::vector<int>(kMaxModelLen, 5)}}, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("maximum context length"), std::string::npos);
  e = post("/v1/completions", {{"prompt", "x"}, {"max_tokens", kMaxModelLen}}, 400);
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  e = post("/v1/completions", {{"prompt", "x"}, {"temperature", "warm"}}, 400);
  EXPECT_EQ(e["error"]["param"], "temperature");
  res = client().Get("/v1/unknown");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_TRUE(json::parse(res->body)["error"].is_object());
  json ok = post("/v1/completions", {{"prompt", "still here"}, {"max_tokens", 2}});
  EXPECT_EQ(ok["choices"].size(), 1u);
}

TEST_P(HttpServerTest, FanOutAndMetricsReturnToIdle) {
  json r = post("/v1/completions", {{"prompt", {"one", "two"}}, {"n", 2}, {"max_tokens", 3}, {"ignore_eos", true},
                                    {"seed", 5}});
  ASSERT_EQ(r["choices"].size(), 4u);
  EXPECT_EQ(r["usage"]["completion_tokens"], 12);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r["choices"][i]["index"], i);
  json again = post("/v1/completions", {{"prompt", {"one", "two"}}, {"n", 2}, {"max_tokens", 3}, {"ignore_eos", true},
                                        {"seed", 5}});
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(again["choices"][i]["text"], r["choices"][i]["text"]);

  std::string text;
  for (int attempt = 0; attempt < 100; ++attempt) {  // the engine finishes its bookkeeping asynchronously
    auto res = client().Get("/metrics");
    ASSERT_TRUE(res);
    text = res->body;
    if (text.find("dsrt:num_requests_running 0\n") != std::string::npos &&
        text.find("dsrt:kv_cache_pages_used 0\n") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(text.find("dsrt:num_requests_running 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dsrt:kv_cache_pages_used 0\n"), std::string::npos) << text;
  // The overlap instance really overlapped its steps; the synchronous one never did.
  EXPECT_EQ(text.find("dsrt:num_overlap_steps_total 0\n") == std::string::npos, GetParam()) << text;
  EXPECT_NE(text.find("# TYPE dsrt:time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_EQ(text.find("dsrt:time_to_first_token_seconds_count 0\n"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Schedules, HttpServerTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "overlap" : "synchronous"; });

}  // namespace
}  // namespace ds::http
