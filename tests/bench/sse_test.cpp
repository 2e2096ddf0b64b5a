// SSE framing and OpenAI stream chunk parsing.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tools/bench/dsbench/openai_stream.h"
#include "tools/bench/dsbench/sse.h"

namespace ds::bench {
namespace {

std::vector<std::string> feed_all(const std::vector<std::string>& pieces, bool finish = true) {
  SseParser p;
  std::vector<std::string> events;
  auto cb = [&](std::string_view d) {
    events.emplace_back(d);
    return true;
  };
  for (const auto& piece : pieces) EXPECT_TRUE(p.feed(piece, cb));
  if (finish) EXPECT_TRUE(p.finish(cb));
  return events;
}

TEST(Sse, OneEventPerBlankLine) {
  auto ev = feed_all({"data: {\"a\":1}\n\ndata: [DONE]\n\n"});
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0], "{\"a\":1}");
  EXPECT_EQ(ev[1], "[DONE]");
}

TEST(Sse, EventsSplitAtEveryByte) {
  const std::string stream = "data: first\r\n\r\n: keep-alive\n\ndata:second\n\ndata: x\rdata: y\r\r";
  std::vector<std::string> pieces;
  for (char c : stream) pieces.emplace_back(1, c);
  auto ev = feed_all(pieces);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0], "first");
  EXPECT_EQ(ev[1], "second");  // no space after the colon
  EXPECT_EQ(ev[2], "x\ny");    // two data lines, CR line endings
}

TEST(Sse, CrLfSplitAcrossPiecesIsOneLineEnd) {
  auto ev = feed_all({"data: a\r", "\n", "\r", "\ndata: b\n\n"});
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0], "a");
  EXPECT_EQ(ev[1], "b");
}

TEST(Sse, IgnoresCommentsAndOtherFields) {
  auto ev = feed_all({": ping\n\nevent: message\nid: 3\nretry: 10\n\ndata: z\nid: 4\n\n"});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0], "z");
}

TEST(Sse, NoEventBeforeTheBlankLine) {
  auto ev = feed_all({"data: partial\n"}, /*finish=*/false);
  EXPECT_TRUE(ev.empty());
  // ...but an unterminated last event is delivered at the end of the stream.
  auto ev2 = feed_all({"data: last"});
  ASSERT_EQ(ev2.size(), 1u);
  EXPECT_EQ(ev2[0], "last");
}

TEST(Sse, CallbackCanStopParsing) {
  SseParser p;
  int n = 0;
  EXPECT_FALSE(p.feed("data: 1\n\ndata: 2\n\n", [&](std::string_view) { return ++n < 1; }));
  EXPECT_EQ(n, 1);
}

TEST(OpenAiStream, ChatDeltaContentAndReasoning) {
  auto p = parse_stream_data(R"({"choices":[{"index":0,"delta":{"reasoning_content":"hm","content":"Hi"}}]})",
                             ApiEndpoint::kChat);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->text, "hmHi");
  EXPECT_FALSE(p->done);
  EXPECT_FALSE(p->completion_tokens);
}

TEST(OpenAiStream, RoleOnlyDeltaHasNoText) {
  auto p = parse_stream_data(R"({"choices":[{"delta":{"role":"assistant","content":null}}]})", ApiEndpoint::kChat);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->text.empty());
}

TEST(OpenAiStream, CompletionTextFinishAndUsage) {
  auto p = parse_stream_data(R"({"choices":[{"text":" world","finish_reason":"length"}]})",
                             ApiEndpoint::kCompletions);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->text, " world");
  EXPECT_EQ(p->finish_reason.value_or(""), "length");
  auto u = parse_stream_data(R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}})",
                             ApiEndpoint::kCompletions);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->prompt_tokens.value_or(-1), 12);
  EXPECT_EQ(u->completion_tokens.value_or(-1), 34);
  EXPECT_TRUE(u->text.empty());
}

TEST(OpenAiStream, DoneSentinelAndErrors) {
  auto d = parse_stream_data("[DONE]", ApiEndpoint::kChat);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->done);
  auto e = parse_stream_data(R"({"error":{"message":"boom","type":"x"}})", ApiEndpoint::kChat);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->error.value_or(""), "boom");
  auto v = parse_stream_data(R"({"object":"error","message":"vllm says no"})", ApiEndpoint::kChat);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->error.value_or(""), "vllm says no");
  auto bad = parse_stream_data("{not json", ApiEndpoint::kChat);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("stream chunk"), std::string::npos);
}

TEST(OpenAiStream, WholeResponseBody) {
  auto p = parse_response_body(
      R"({"choices":[{"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}})",
      ApiEndpoint::kChat);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->text, "ok");
  EXPECT_EQ(p->completion_tokens.value_or(-1), 1);
  EXPECT_EQ(error_message_from_body(R"({"error":{"message":"bad model"}})"), "bad model");
  EXPECT_EQ(error_message_from_body(R"({"detail":"Not Found"})"), "Not Found");
  EXPECT_EQ(error_message_from_body("plain text"), "plain text");
  EXPECT_EQ(error_message_from_body(std::string(400, 'a'), 10), std::string(10, 'a') + "...");
}

}  // namespace
}  // namespace ds::bench
