// Unit tests of the HTTP layer that need no server: stop strings, the
// deepseek_r1 reasoning parser, SSE framing, request parsing / validation,
// Prometheus rendering, and the per-choice text pipeline over the real
// tokenizer of the qwen2-tiny-r1 fixture.
#include <gtest/gtest.h>


#include "serve/http/choice_output.h"
#include "serve/http/metrics.h"
#include "serve/http/openai_request.h"
#include "serve/http/reasoning_parser.h"
#include "serve/http/server_options.h"
#include "serve/http/sse.h"
#include "serve/http/stop_matcher.h"
#include "serve/tokenizer/tokenizer.h"

namespace ds::http {
namespace {

using ojson = nlohmann::ordered_json;

// ---- stop strings ----------------------------------------------------------

std::string feed_all(StopMatcher& m, const std::vector<std::string>& pieces, std::string* matched) {
  std::string out;
  for (const auto& p : pieces) {
    auto u = m.push(p);
    out += u.text;
    if (u.matched) {
      *matched = *u.matched;
      return out;
    }
  }
  return out + m.flush();
}

TEST(StopMatcher, HoldsBackPrefixSplitAcrossPushes) {
  StopMatcher m({"###"});
  auto u1 = m.push("ab#");
  EXPECT_EQ(u1.text, "ab");
  EXPECT_FALSE(u1.matched);
  auto u2 = m.push("#");
  EXPECT_EQ(u2.text, "");
  auto u3 = m.push("#tail");
  EXPECT_EQ(u3.text, "");
  ASSERT_TRUE(u3.matched);
  EXPECT_EQ(*u3.matched, "###");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("more").text, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, ReleasesHeldTextWhenItCannotMatch) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("x ST").text, "x ");
  EXPECT_EQ(m.push("AR").text, "STAR");
  EXPECT_EQ(m.push("ST").text, "");
  EXPECT_EQ(m.flush(), "ST");
}

TEST(StopMatcher, EarliestMatchWinsAndIncludeStop) {
  std::string matched;
  StopMatcher a({"cd", "b"});
  EXPECT_EQ(feed_all(a, {"abcd"}, &matched), "a");
  EXPECT_EQ(matched, "b");
  StopMatcher b({"cd"}, /*include_stop=*/true);
  EXPECT_EQ(feed_all(b, {"ab", "c", "de"}, &matched), "abcd");
  EXPECT_EQ(matched, "cd");
}

TEST(StopMatcher, EveryStreamSplitGivesTheSameOutput) {
  const std::string text = "hello wor<|stop|>ld";
  for (size_t cut1 = 0; cut1 <= text.size(); ++cut1) {
    for (size_t cut2 = cut1; cut2 <= text.size(); ++cut2) {
      StopMatcher m({"<|stop|>", "zz"});
      std::string matched;
      std::string out =
          feed_all(m, {text.substr(0, cut1), text.substr(cut1, cut2 - cut1), text.substr(cut2)}, &matched);
      ASSERT_EQ(out, "hello wor") << cut1 << "," << cut2;
      ASSERT_EQ(matched, "<|stop|>");
    }
  }
}

TEST(StopMatcher, NoStopsPassesThrough) {
  StopMatcher m({});
  EXPECT_FALSE(m.active());
  EXPECT_EQ(m.push("abc").text, "abc");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, PartialSuffixMatch) {
  EXPECT_EQ(partial_suffix_match("abc</th", "</think>"), 4u);
  EXPECT_EQ(partial_suffix_match("abc", "</think>"), 0u);
  EXPECT_EQ(partial_suffix_match("</think>", "</think>"), 0u);  // proper prefixes only
}

// ---- reasoning parser --------------------------------------------------------

ReasoningDelta stream_parse(const std::vector<std::string>& pieces) {
  DeepSeekR1ReasoningParser p;
  ReasoningDelta all;
  for (const auto& piece : pieces) {
    auto d = p.push(piece);
    all.reasoning += d.reasoning;
    all.content += d.content;
  }
  auto d = p.flush();
  all.reasoning += d.reasoning;
  all.content += d.content;
  return all;
}

TEST(ReasoningParser, EndTagOnlySplitsReasoningAndContent) {
  auto r = stream_parse({"I think ", "so.</think>", "\n\nAnswer: 4"});
  EXPECT_EQ(r.reasoning, "I think so.");
  EXPECT_EQ(r.content, "\n\nAnswer: 4");
}

TEST(ReasoningParser, ExplicitStartTagIsDropped) {
  auto r = stream_parse({"<th", "ink>", "hmm</think>ok"});
  EXPECT_EQ(r.reasoning, "hmm");
  EXPECT_EQ(r.content, "ok");
}

TEST(ReasoningParser, NoEndTagMeansAllReasoning) {
  auto r = stream_parse({"still ", "thinking </thi"});
  EXPECT_EQ(r.reasoning, "still thinking </thi");
  EXPECT_EQ(r.content, "");
}

TEST(ReasoningParser, TagSplitAcrossEveryBoundary) {
  const std::string text = "<think>abc</think>def";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    for (size_t cut2 = cut; cut2 <= text.size(); ++cut2) {
      auto r = stream_parse({text.substr(0, cut), text.substr(cut, cut2 - cut), text.substr(cut2)});
      ASSERT_EQ(r.reasoning, "abc") << cut << "," << cut2;
      ASSERT_EQ(r.content, "def") << cut << "," << cut2;
    }
  }
}

TEST(ReasoningParser, StreamingDeltasNeverCarryPartialTags) {
  DeepSeekR1ReasoningParser p;
  auto d1 = p.push("abc</");
  EXPECT_EQ(d1.reasoning, "abc");
  EXPECT_TRUE(d1.content.empty());
  EXPECT_FALSE(p.in_content());
  auto d2 = p.push("think>x");
  EXPECT_EQ(d2.reasoning, "");
  EXPECT_EQ(d2.content, "x");
  EXPECT_TRUE(p.in_content());
  auto d3 = p.push("</think>");  // a second end tag is content
  EXPECT_EQ(d3.content, "</think>");
}

TEST(ReasoningParser, FactoryKnowsDeepseekR1Only) {
  EXPECT_NE(make_reasoning_parser("deepseek_r1"), nullptr);
  EXPECT_EQ(make_reasoning_parser(""), nullptr);
  EXPECT_FALSE(is_known_reasoning_parser("qwen3"));
}

// ---- SSE -------------------------------------------------------------------

TEST(Sse, EventFramingRoundTrips) {
  nlohmann::json payload = {{"a", "line1\nline2"}, {"b", 1}};
  std::string event = sse_event(payload);
  EXPECT_EQ(event.rfind("data: ", 0), 0u);
  EXPECT_EQ(event.substr(event.size() - 2), "\n\n");
  EXPECT_EQ(event.find('\n'), event.size() - 2);  // no raw newline inside the event
  SseParser parser;
  auto events = parser.feed(event.substr(0, 10));
  EXPECT_TRUE(events.empty());
  events = parser.feed(event.substr(10) + sse_done());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(events[0]), payload);
  EXPECT_EQ(events[1], "[DONE]");
  EXPECT_TRUE(parser.pending().empty());
}

TEST(Sse, InvalidUtf8IsReplacedNotThrown) {
  nlohmann::json payload = {{"text", std::string("ok\xC3")}};
  std::string event;
  ASSERT_NO_THROW(event = sse_event(payload));
  EXPECT_NE(event.find("ok\xEF\xBF\xBD"), std::string::npos);
}

// ---- request parsing --------------------------------------------------------

ojson chat_body() {
  return ojson{{"model", "m"}, {"messages", ojson::array({ojson{{"role", "user"}, {"content", "hi"}}})}};
}

TEST(ChatRequest, ParsesSamplingFields) {
  ojson body = chat_body();
  body["temperature"] = 0.5;
  body["top_p"] = 0.9;
  body["top_k"] = 20;
  body["min_p"] = 0.1;
  body["presence_penalty"] = 0.5;
  body["frequency_penalty"] = -0.5;
  body["repetition_penalty"] = 1.1;
  body["max_completion_tokens"] = 7;
  body["max_tokens"] = 99;
  body["stop"] = "###";
  body["stop_token_ids"] = {3, 4};
  body["seed"] = 42;
  body["n"] = 3;
  body["logprobs"] = true;
  body["top_logprobs"] = 2;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  body["ignore_eos"] = true;
  auto r = parse_chat_request(body, 100);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 0.9f);
  EXPECT_EQ(r->sampling.top_k, 20);
  EXPECT_FLOAT_EQ(r->sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r->sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(r->max_tokens, 7);  // max_completion_tokens wins
  EXPECT_EQ(r->stop, std::vector<std::string>{"###"});
  EXPECT_EQ(r->sampling.stop_token_ids, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(r->sampling.seed, 42u);
  EXPECT_EQ(r->n, 3);
  EXPECT_EQ(r->sampling.logprobs, 2);
  EXPECT_TRUE(r->include_usage);
  EXPECT_TRUE(r->sampling.ignore_eos);
  EXPECT_FALSE(r->add_special_tokens);
}

TEST(ChatRequest, AcceptsNeutralValuesOfUnsupportedFeatures) {
  ojson body = chat_body();
  body["logit_bias"] = ojson::object();
  body["response_format"] = {{"type", "text"}};
  body["user"] = "someone";
  body["seed"] = -1;
  auto r = parse_chat_request(body, 100);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->sampling.seed, static_cast<uint64_t>(-1));
}

TEST(ChatRequest, DefaultsComeFromGenerationConfig) {
  RequestSampling defaults;
  defaults.temperature = 0.6f;
  defaults.top_p = 0.95f;
  auto r = parse_chat_request(chat_body(), 100, defaults);
  ASSERT_TRUE(r.ok());
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.6f);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 0.95f);
  EXPECT_EQ(r->sampling.logprobs, -1);
  EXPECT_FALSE(r->max_tokens.has_value());
}

struct BadCase {
  const char* field;
  ojson value;
  const char* param;
};

TEST(ChatRequest, RejectsBadValuesNamingTheParam) {
  const std::vector<BadCase> cases = {
      {"temperature", -0.1, "temperature"},     {"temperature", "hot", "temperature"},
      {"top_p", 0.0, "top_p"},                  {"top_p", 1.5, "top_p"},
      {"top_k", -2, "top_k"},                   {"top_k", 1.5, "top_k"},
      {"min_p", 2.0, "min_p"},                  {"presence_penalty", 3.0, "presence_penalty"},
      {"frequency_penalty", -2.5, "frequency_penalty"}, {"repetition_penalty", 0.0, "repetition_penalty"},
      {"max_tokens", 0, "max_tokens"},          {"max_tokens", "10", "max_tokens"},
      {"n", 0, "n"},                            {"n", 1000, "n"},
      {"stop", 5, "stop"},                      {"stop", ojson::array({"a", 1}), "stop"},
      {"stop", "", "stop"},                     {"stop_token_ids", ojson::array({100}), "stop_token_ids"},
      {"logprobs", "yes", "logprobs"},          {"top_logprobs", 21, "top_logprobs"},
      {"stream", 1, "stream"},                  {"seed", "x", "seed"},
      {"model", 3, "model"},                    {"tools", "x", "tools"},
      {"logit_bias", ojson{{"5", 10}}, "logit_bias"}, {"response_format", ojson{{"type", "json_object"}}, "response_format"},
  };
  for (const auto& c : cases) {
    ojson body = chat_body();
    body[c.field] = c.value;
    auto r = parse_chat_request(body, 100);
    ASSERT_FALSE(r.ok()) << c.field << "=" << c.value.dump();
    EXPECT_EQ(r.error().status, 400);
    EXPECT_EQ(r.error().param, c.param) << c.field << ": " << r.error().message;
    EXPECT_FALSE(r.error().message.empty());
  }
}

TEST(ChatRequest, ErrorShapeMatchesVllm) {
  ojson body = chat_body();
  body["top_logprobs"] = 3;  // without logprobs
  auto r = parse_chat_request(body, 100);
  ASSERT_FALSE(r.ok());
  nlohmann::json j = r.error().to_json();
  EXPECT_EQ(j["error"]["type"], "BadRequestError");
  EXPECT_EQ(j["error"]["param"], "top_logprobs");
  EXPECT_EQ(j["error"]["code"], 400);
  EXPECT_TRUE(j["error"]["message"].is_string());
}

TEST(ChatRequest, StreamOptionsNeedStream) {
  ojson body = chat_body();
  body["stream_options"] = {{"include_usage", true}};
  auto r = parse_chat_request(body, 100);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().param, "stream_options");
}

TEST(ChatRequest, MessagesValidationAndTextParts) {
  ojson body = chat_body();
  body["messages"] = ojson::array();
  EXPECT_FALSE(parse_chat_request(body, 100).ok());
  body["messages"] = "hi";
  EXPECT_FALSE(parse_chat_request(body, 100).ok());
  body["messages"] = ojson::array({ojson{{"content", "no role"}}});
  EXPECT_FALSE(parse_chat_request(body, 100).ok());
  body["messages"] = ojson::array({ojson{{"role", "user"}, {"content", ojson::array({ojson{{"type", "image_url"}}})}}});
  EXPECT_FALSE(parse_chat_request(body, 100).ok());
  body.erase("messages");
  EXPECT_EQ(parse_chat_request(body, 100).error().param, "messages");

  body["messages"] = ojson::array({ojson{{"role", "user"},
                                         {"content", ojson::array({ojson{{"type", "text"}, {"text", "a"}},
                                                                   ojson{{"type", "text"}, {"text", "b"}}})}}});
  auto r = parse_chat_request(body, 100);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->messages[0]["content"], "a\nb");
}

TEST(CompletionRequest, PromptForms) {
  ojson body = {{"prompt", "hello"}, {"logprobs", 3}, {"echo", true}};
  auto r = parse_completion_request(body, 100);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->prompts.size(), 1u);
  EXPECT_EQ(r->prompts[0].text, "hello");
  EXPECT_TRUE(r->add_special_tokens);
  EXPECT_EQ(r->sampling.logprobs, 3);
  EXPECT_TRUE(r->sampling.prompt_logprobs);

  body = {{"prompt", {1, 2, 3}}};
  r = parse_completion_request(body, 100);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->prompts[0].is_ids);
  EXPECT_EQ(r->prompts[0].ids, (std::vector<int32_t>{1, 2, 3}));

  body = {{"prompt", {"a", "b"}}, {"n", 2}};
  r = parse_completion_request(body, 100);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prompts.size(), 2u);

  for (const ojson& bad : {ojson{{"prompt", {1, 200}}}, ojson{{"prompt", 5}}, ojson{{"prompt", ojson::array()}},
                           ojson::object(), ojson{{"prompt", "x"}, {"logprobs", 30}}}) {
    auto e = parse_completion_request(bad, 100);
    EXPECT_FALSE(e.ok()) << bad.dump();
  }
}

TEST(ResolveMaxTokens, ContextLimits) {
  OpenAIRequest r;
  r.endpoint = Endpoint::kCompletion;
  EXPECT_FALSE(resolve_max_tokens(r, 10, 64).has_value());
  EXPECT_EQ(r.sampling.max_new_tokens, 54);  // the rest of the context
  r.max_tokens = 54;
  EXPECT_FALSE(resolve_max_tokens(r, 10, 64).has_value());
  r.max_tokens = 55;
  auto e = resolve_max_tokens(r, 10, 64);
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(e->message.find("maximum context length is 64"), std::string::npos);
  r.max_tokens.reset();
  EXPECT_TRUE(resolve_max_tokens(r, 64, 64).has_value());
  EXPECT_TRUE(resolve_max_tokens(r, 0, 64).has_value());
}

// ---- options / metrics --------------------------------------------------------

TEST(ServerOptions, Validation) {
  ServerOptions o;
  EXPECT_TRUE(o.validate().ok());
  o.reasoning_parser = "nope";
  EXPECT_NE(o.validate().message().find("--reasoning-parser"), std::string::npos);
  o = ServerOptions();
  o.mem_fraction_static = 1.5;
  EXPECT_NE(o.validate().message().find("--mem-fraction-static"), std::string::npos);
  o = ServerOptions();
  o.port = 70000;
  EXPECT_FALSE(o.validate().ok());
  o = ServerOptions();
  o.log_level = "loud";
  EXPECT_FALSE(o.validate().ok());
}

TEST(Metrics, PrometheusText) {
  ServerMetrics m;
  m.ttft_seconds.observe(0.003);
  m.ttft_seconds.observe(0.5);
  m.count_finished("stop");
  ServingBackend::Stats s;
  s.running = 2;
  s.kv_pages_used = 5;
  s.kv_pages_total = 20;
  s.prefix_cache_hit_tokens = 30;
  s.prefix_cache_query_tokens = 120;
  s.overlap_steps_total = 7;
  std::string text = m.render(s, "m");
  EXPECT_NE(text.find("dsrt:num_overlap_steps_total 7\n"), std::string::npos);
  EXPECT_NE(text.find("dsrt:num_requests_running 2\n"), std::string::npos);
  EXPECT_NE(text.find("dsrt:kv_cache_usage_perc 0.25\n"), std::string::npos);
  EXPECT_NE(text.find("dsrt:prefix_cache_hit_rate 0.25\n"), std::string::npos);
  EXPECT_NE(text.find("dsrt:time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("dsrt:time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("dsrt:time_to_first_token_seconds_count 2\n"), std::string::npos);
  EXPECT_NE(text.find("dsrt:request_success_total{finished_reason=\"stop\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE dsrt:inter_token_latency_seconds histogram\n"), std::string::npos);
}

// ---- choice pipeline over the fixture tokenizer --------------------------------

class ChoiceOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(DS_SOURCE_DIR) + "/tests/fixtures/qwen2-tiny-r1/";
    auto tok = Tokenizer::from_files(dir + "tokenizer.json", dir + "tokenizer_config.json");
    ASSERT_TRUE(tok.ok()) << tok.status().message();
    tok_ = std::move(*tok);
  }
  std::vector<int32_t> encode(const std::string& text) {
    auto ids = tok_->encode(text, /*add_special_tokens=*/false);
    EXPECT_TRUE(ids.ok());
    return *ids;
  }
  // Feeds `ids` one token per update; the last update carries `finish`.
  std::string run(ChoiceOutput& c, const std::vector<int32_t>& ids, FinishReason finish,
                  std::optional<int32_t> stop_token = std::nullopt, ReasoningDelta* split = nullptr) {
    std::string text;
    for (size_t i = 0; i < ids.size() && !c.finished(); ++i) {
      RequestOutput out;
      out.tokens.push_back(GeneratedToken{ids[i], -0.5f, {}});
      out.prompt_tokens = 4;
      if (i + 1 == ids.size()) {
        out.finish = finish;
        out.matched_stop_token = stop_token;
      }
      auto d = c.on_output(out);
      text += d.text;
      if (split) {
        split->reasoning += d.split.reasoning;
        split->content += d.split.content;
      }
    }
    return text;
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(ChoiceOutputTest, StopStringAcrossTokensNeverLeaks) {
  ChoiceConfig config;
  config.stop = {"world"};
  ChoiceOutput c(*tok_, config);
  std::vector<int32_t> ids = encode("hello world and more");
  std::string text = run(c, ids, FinishReason::kLength);
  EXPECT_EQ(text, "hello ");
  EXPECT_EQ(c.text(), "hello ");
  EXPECT_TRUE(c.finished());
  EXPECT_TRUE(c.stop_string_matched());
  EXPECT_EQ(c.finish_reason(), "stop");
  EXPECT_EQ(c.stop_reason(), "world");
  EXPECT_LT(c.completion_tokens(), static_cast<int64_t>(ids.size()));
}

TEST_F(ChoiceOutputTest, LengthFinishFlushesEverything) {
  ChoiceOutput c(*tok_, ChoiceConfig{});
  std::string text = run(c, encode("héllo wörld"), FinishReason::kLength);
  EXPECT_EQ(text, "héllo wörld");
  EXPECT_EQ(c.finish_reason(), "length");
  EXPECT_TRUE(c.stop_reason().is_null());
}

TEST_F(ChoiceOutputTest, EosTokenIsNotText) {
  auto eos = tok_->eos_token_id();
  ASSERT_TRUE(eos.has_value());
  ChoiceConfig config;
  config.skip_special_tokens = false;
  ChoiceOutput c(*tok_, config);
  std::vector<int32_t> ids = encode("ok");
  ids.push_back(*eos);
  EXPECT_EQ(run(c, ids, FinishReason::kStop, *eos), "ok");
  EXPECT_EQ(c.finish_reason(), "stop");
  EXPECT_EQ(c.stop_reason(), *eos);
  EXPECT_EQ(c.completion_tokens(), static_cast<int64_t>(ids.size()));
}

TEST_F(ChoiceOutputTest, ReasoningSplitWithThinkTokens) {
  ChoiceConfig config;
  config.reasoning_parser = "deepseek_r1";
  ChoiceOutput c(*tok_, config);
  ReasoningDelta split;
  run(c, encode("let me see</think>The answer"), FinishReason::kLength, std::nullopt, &split);
  EXPECT_EQ(split.reasoning, "let me see");
  EXPECT_EQ(split.content, "The answer");
}

TEST_F(ChoiceOutputTest, AbortFinishes) {
  ChoiceOutput c(*tok_, ChoiceConfig{});
  RequestOutput out;
  out.finish = FinishReason::kAbort;
  c.on_output(out);
  EXPECT_TRUE(c.finished());
  EXPECT_EQ(c.finish_reason(), "abort");
}

TEST_F(ChoiceOutputTest, LogprobObjects) {
  std::vector<int32_t> ids = encode("hi");
  ASSERT_FALSE(ids.empty());
  GeneratedToken t{ids[0], -0.25f, {TokenLogprob{ids[0], -0.25f}, TokenLogprob{ids.back(), -1.5f}}};
  nlohmann::json chat = chat_logprobs_content(*tok_, {t}, 2);
  ASSERT_EQ(chat.size(), 1u);
  EXPECT_EQ(chat[0]["token"], tok_->decode(std::vector<int32_t>{ids[0]}));
  EXPECT_DOUBLE_EQ(chat[0]["logprob"].get<double>(), -0.25);
  EXPECT_TRUE(chat[0]["bytes"].is_array());
  EXPECT_EQ(chat[0]["top_logprobs"].size(), 2u);

  nlohmann::json comp;
  int64_t offset = 0;
  GeneratedToken minus_inf{ids[0], -std::numeric_limits<float>::infinity(), {}};
  append_completion_logprobs(*tok_, {t, minus_inf}, 1, &offset, &comp);
  EXPECT_EQ(comp["tokens"].size(), 2u);
  EXPECT_EQ(comp["text_offset"][0], 0);
  EXPECT_EQ(comp["text_offset"][1], utf8_length(comp["tokens"][0].get<std::string>()));
  EXPECT_DOUBLE_EQ(comp["token_logprobs"][1].get<double>(), -9999.0);
  EXPECT_TRUE(comp["top_logprobs"][0].is_object());
}

TEST(Utf8, RepairAndLength) {
  EXPECT_EQ(to_valid_utf8("a\xE4\xB8"), "a\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(to_valid_utf8("\xE4\xB8\xAD"), "\xE4\xB8\xAD");
  EXPECT_EQ(utf8_length("a\xE4\xB8\xAD"), 2);
}

}  // namespace
}  // namespace ds::http
