// Compares ds::Tokenizer with the Rust HF tokenizers library. The expected
// values come from oracle.js (run by CTest as the fixture
// tokenizer_oracle_generate), which also writes the tokenizer variants both
// implementations load. DS_TOKENIZER_ORACLE names its oracle.json.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/tokenizer/tokenizer.h"
#include "serve/tokenizer/utf8_util.h"

namespace ds {
namespace {

using json = nlohmann::json;

struct Oracle {
  json doc;
  std::string error;
  std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
};

// The oracle document, parsed once per process.
Oracle& oracle() {
  static Oracle* o = [] {
    auto* o = new Oracle();
    const char* path = std::getenv("DS_TOKENIZER_ORACLE");
    if (path == nullptr) {
      o->error = "DS_TOKENIZER_ORACLE is not set (run through ctest, which runs oracle.js first)";
      return o;
    }
    std::ifstream in(path);
    if (!in) {
      o->error = std::string("cannot open oracle file ") + path;
      return o;
    }
    o->doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (o->doc.is_discarded()) o->error = std::string("malformed oracle file ") + path;
    return o;
  }();
  return *o;
}

// Loads a tokenizer variant on first use (each test runs in its own process).
const Tokenizer* find_tokenizer(const std::string& name, std::string* error) {
  Oracle& o = oracle();
  if (!o.error.empty()) {
    *error = o.error;
    return nullptr;
  }
  if (auto it = o.loaded.find(name); it != o.loaded.end()) return it->second.get();
  for (const json& t : o.doc["tokenizers"]) {
    if (t["name"] != name) continue;
    auto tok = Tokenizer::from_files(t["json"].get<std::string>(), t["config"].get<std::string>());
    if (!tok.ok()) {
      *error = "loading " + name + ": " + tok.status().message();
      return nullptr;
    }
    return (o.loaded[name] = std::move(tok.value())).get();
  }
  *error = "tokenizer variant " + name + " missing from the oracle";
  return nullptr;
}

std::string show(const std::vector<int32_t>& v, size_t at) {
  std::ostringstream os;
  const size_t b = at > 5 ? at - 5 : 0;
  os << "[" << b << "..]";
  for (size_t i = b; i < v.size() && i < at + 6; ++i) os << (i == at ? " >" : " ") << v[i];
  return os.str();
}

// Empty string when equal, else a description of the first difference.
std::string diff(const std::vector<int32_t>& want, const std::vector<int32_t>& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  if (i == want.size() && i == got.size()) return "";
  std::ostringstream os;
  os << "first difference at " << i << " (sizes " << want.size() << " vs " << got.size()
     << "): want " << show(want, i) << " got " << show(got, i);
  return os.str();
}

class OracleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string error;
    tok_ = find_tokenizer(GetParam(), &error);
    ASSERT_NE(tok_, nullptr) << error;
    results_ = &oracle().doc["results"][GetParam()];
  }
  const json& cases() const { return oracle().doc["cases"]; }
  const json& expected(const json& c) const { return (*results_)["cases"][c["name"].get<std::string>()]; }

  const Tokenizer* tok_ = nullptr;
  const json* results_ = nullptr;
};

TEST_P(OracleTest, EncodeMatches) {
  for (const json& c : cases()) {
    const std::string text = c["text"].get<std::string>();
    const json& e = expected(c);
    for (bool special : {true, false}) {
      auto got = tok_->encode(text, special);
      ASSERT_TRUE(got.ok()) << c["name"] << ": " << got.status().message();
      const auto want = e[special ? "ids" : "ids_no_special"].get<std::vector<int32_t>>();
      EXPECT_EQ(diff(want, *got), "") << "case " << c["name"] << " add_special_tokens=" << special;
    }
  }
}

TEST_P(OracleTest, DecodeMatches) {
  for (const json& c : cases()) {
    const json& e = expected(c);
    const auto ids = e["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok_->decode(ids, false), e["decode"].get<std::string>()) << "case " << c["name"];
    EXPECT_EQ(tok_->decode(ids, true), e["decode_skip_special"].get<std::string>())
        << "case " << c["name"] << " skip_special_tokens";
  }
}

TEST_P(OracleTest, PairsMatch) {
  const json& pairs = (*results_)["pairs"];
  for (const json& p : oracle().doc["pairs"]) {
    const std::string name = p["name"].get<std::string>();
    if (!pairs.contains(name)) continue;
    for (bool special : {true, false}) {
      auto got = tok_->encode_pair(p["a"].get<std::string>(), p["b"].get<std::string>(), special);
      ASSERT_TRUE(got.ok()) << name << ": " << got.status().message();
      const auto want = pairs[name][special ? "ids" : "ids_no_special"].get<std::vector<int32_t>>();
      EXPECT_EQ(diff(want, *got), "") << "pair " << name << " add_special_tokens=" << special;
    }
  }
}

// Streaming: every chunk is valid UTF-8, and what was emitted after k ids
// plus a flush equals decode of the first k ids (checked for every k on
// inputs up to 400 ids, at the end for longer ones).
TEST_P(OracleTest, IncrementalDecodeMatchesFullDecode) {
  for (const json& c : cases()) {
    const auto ids = expected(c)["ids"].get<std::vector<int32_t>>();
    const bool every_prefix = ids.size() <= 400;
    for (bool skip : {false, true}) {
      IncrementalDecoder dec(*tok_, skip);
      std::string emitted;
      for (size_t k = 0; k < ids.size(); ++k) {
        const std::string chunk = dec.push(ids[k]);
        size_t bad = 0;
        ASSERT_TRUE(tok::utf8_valid(chunk, &bad)) << "case " << c["name"] << " id #" << k;
        emitted += chunk;
        if (every_prefix) {
          IncrementalDecoder copy = dec;
          const std::string rest = copy.flush();
          ASSERT_EQ(emitted + rest, tok_->decode(std::span(ids.data(), k + 1), skip))
              << "case " << c["name"] << " prefix " << k + 1 << " skip=" << skip;
        }
      }
      emitted += dec.flush();
      EXPECT_EQ(emitted, tok_->decode(ids, skip)) << "case " << c["name"] << " skip=" << skip;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, OracleTest,
                         ::testing::Values("qwen3", "deepseek_v3", "r1_distill", "norm_added",
                                           "split_behaviors", "gpt2_style", "bpe_subword", "bpe_plain",
                                           "onig_classes", "fixture_r1", "fixture_tied"));

#define ASSERT_LOADED(var, name)                 \
  std::string var##_error;                       \
  const Tokenizer* var##_ptr = find_tokenizer(name, &var##_error); \
  ASSERT_NE(var##_ptr, nullptr) << var##_error;  \
  const Tokenizer& var = *var##_ptr

// Without a normalizer, decode(encode(x)) gives x back exactly.
TEST(OracleRoundTrip, DeepSeekIsLossless) {
  ASSERT_LOADED(t, "deepseek_v3");
  for (const json& c : oracle().doc["cases"]) {
    const std::string text = c["text"].get<std::string>();
    auto ids = t.encode(text, false);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    EXPECT_EQ(t.decode(*ids), text) << "case " << c["name"];
  }
}

TEST(OracleVocab, Qwen3) {
  ASSERT_LOADED(t, "qwen3");
  EXPECT_EQ(t.vocab_size(), 151669);
  EXPECT_EQ(t.token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(t.token_to_id("Hello"), 9707);
  EXPECT_EQ(t.token_to_id("no such token"), std::nullopt);
  EXPECT_EQ(t.id_to_token(9707), "Hello");
  EXPECT_EQ(t.id_to_token(151667), "<think>");
  EXPECT_EQ(t.id_to_token(151669), std::nullopt);
  EXPECT_TRUE(t.is_special(151643));
  EXPECT_FALSE(t.is_special(151667));  // <think> is an added, non-special token
  EXPECT_FALSE(t.is_special(9707));
  EXPECT_EQ(t.bos_token(), "");
  EXPECT_EQ(t.bos_token_id(), std::nullopt);
  EXPECT_EQ(t.eos_token(), "<|im_end|>");
  EXPECT_EQ(t.eos_token_id(), 151645);
}

TEST(OracleVocab, R1DistillAndDeepSeek) {
  ASSERT_LOADED(r1, "r1_distill");
  EXPECT_EQ(r1.bos_token(), "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(r1.bos_token_id(), 151646);
  EXPECT_EQ(r1.eos_token_id(), 151643);
  EXPECT_EQ(r1.pad_token_id(), 151643);
  auto ids = r1.encode("hi", true);
  ASSERT_TRUE(ids.ok());
  ASSERT_FALSE(ids->empty());
  EXPECT_EQ(ids->front(), 151646);

  ASSERT_LOADED(ds, "deepseek_v3");
  EXPECT_EQ(ds.bos_token_id(), 0);
  EXPECT_EQ(ds.eos_token_id(), 1);
  EXPECT_EQ(ds.token_to_id("<｜User｜>"), 128803);
}

}  // namespace
}  // namespace ds
