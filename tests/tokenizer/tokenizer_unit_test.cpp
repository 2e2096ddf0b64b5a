// ds::Tokenizer on a small hand-built byte-level tokenizer: exact ids,
// UTF-8 handling of decode and IncrementalDecoder, errors on bad input,
// concurrent use. Needs no oracle.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include "serve/tokenizer/normalizer.h"
#include "serve/tokenizer/tokenizer.h"
#include "serve/tokenizer/utf8_util.h"

namespace ds {
namespace {

using json = nlohmann::json;
constexpr char kQwenPattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Vocab: the 256 byte-level characters with id = byte value, then merges
// "h e" (256) "l l" (257) "he ll" (258) "hell o" (259) "Ġ w" (260); added
// tokens <|end|> (261, special) and <x> (262, not special).
json small_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[tok::byte_level_encode(std::string(1, static_cast<char>(b)))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"}};
  json m = json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    m.push_back(json::array({a, b}));
  }
  json added = json::array();
  added.push_back({{"id", 261}, {"content", "<|end|>"}, {"single_word", false}, {"lstrip", false},
                   {"rstrip", false}, {"normalized", false}, {"special", true}});
  added.push_back({{"id", 262}, {"content", "<x>"}, {"single_word", false}, {"lstrip", false},
                   {"rstrip", false}, {"normalized", false}, {"special", false}});
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  return {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
          {"normalizer", {{"type", "NFC"}}},
          {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", json::array({
              {{"type", "Split"}, {"pattern", {{"Regex", kQwenPattern}}}, {"behavior", "Isolated"}, {"invert", false}},
              bl})}}},
          {"post_processor", bl}, {"decoder", bl},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false},
                     {"byte_fallback", false}, {"vocab", vocab}, {"merges", m}}}};
}

std::unique_ptr<Tokenizer> load(const json& j, const std::string& config = "") {
  auto t = Tokenizer::from_json(j.dump(), config);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? std::move(t.value()) : nullptr;
}

std::string load_error(const json& j, const std::string& config = "") {
  auto t = Tokenizer::from_json(j.dump(), config);
  return t.ok() ? "<loaded>" : t.status().message();
}

TEST(Tokenizer, EncodesWithMergesAndAddedTokens) {
  auto t = load(small_tokenizer());
  ASSERT_TRUE(t);
  auto ids = t->encode("hello world<|end|>x<x>");
  ASSERT_TRUE(ids.ok()) << ids.status().message();
  EXPECT_EQ(*ids, (std::vector<int32_t>{259, 260, 'o', 'r', 'l', 'd', 261, 'x', 262}));
  EXPECT_EQ(t->decode(*ids), "hello world<|end|>x<x>");
  EXPECT_EQ(t->decode(*ids, /*skip_special_tokens=*/true), "hello worldx<x>");
  EXPECT_EQ(t->vocab_size(), 263);
  EXPECT_TRUE(t->is_special(261));
  EXPECT_FALSE(t->is_special(262));
  EXPECT_EQ(t->token_to_id("hello"), 259);
  EXPECT_EQ(t->id_to_token(260), "Ġw");
}

TEST(Tokenizer, EmptyInputAndUnknownIds) {
  auto t = load(small_tokenizer());
  ASSERT_TRUE(t);
  auto ids = t->encode("");
  ASSERT_TRUE(ids.ok());
  EXPECT_TRUE(ids->empty());
  const std::vector<int32_t> odd = {-5, 'a', 100000, 'b'};
  EXPECT_EQ(t->decode(odd), "ab");
}

TEST(Tokenizer, NfcNormalizes) {
  auto t = load(small_tokenizer());
  ASSERT_TRUE(t);
  auto decomposed = t->encode("e\xCC\x81");  // e + COMBINING ACUTE
  ASSERT_TRUE(decomposed.ok());
  EXPECT_EQ(t->decode(*decomposed), "\xC3\xA9");  // é
}

TEST(Tokenizer, RejectsInvalidUtf8) {
  auto t = load(small_tokenizer());
  ASSERT_TRUE(t);
  for (const std::string& bad : {std::string("ab\x80"), std::string("\xC0\x80"), std::string("x\xED\xA0\x80"),
                                std::string("\xF0\x9F\x98"), std::string("\xF5\x80\x80\x80"),
                                std::string("ok \xFF ok")}) {
    auto ids = t->encode(bad);
    ASSERT_FALSE(ids.ok()) << "accepted invalid input";
    EXPECT_NE(ids.status().message().find("UTF-8"), std::string::npos) << ids.status().message();
  }
  auto pair = t->encode_pair("ok", "\xFF");
  EXPECT_FALSE(pair.ok());
}

// Lossy decoding like Rust's String::from_utf8_lossy: one U+FFFD per maximal
// ill-formed subpart.
TEST(Tokenizer, DecodeReplacesInvalidSequences) {
  auto t = load(small_tokenizer());
  ASSERT_TRUE(t);
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(t->decode(std::vector<int32_t>{0xF0, 0x9F, 0x98, 'a'}), r + "a");
  EXPECT_EQ(t->decode(std::vector<int32_t>{0x80, 0x80}), r + r);
  EXPECT_EQ(t->decode(std::vector<int32_t>{0xE2, 0x82}), r);
  EXPECT_EQ(t->decode(std::vector<int32_t>{0xED, 0xA0, 0x80}), r + r + r);
  EXPECT_EQ(t->decode(std::vector<int32_t>{0xF0, 0x9F, 0x98, 0x80}), "\xF0\x9F\x98\x80");
}

TEST(IncrementalDecoder, HoldsBackSplitCharacters) {
  auto t = load(small_tokenizer());
  ASSERT_TRUE(t);
  auto ids = t->encode("a😀b");  // the emoji is four byte tokens
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->size(), 6u);
  IncrementalDecoder dec(*t, false);
  EXPECT_EQ(dec.push((*ids)[0]), "a");
  EXPECT_EQ(dec.push((*ids)[1]), "");
  EXPECT_EQ(dec.push((*ids)[2]), "");
  EXPECT_EQ(dec.push((*ids)[3]), "");
  EXPECT_EQ(dec.push((*ids)[4]), "😀");
  EXPECT_EQ(dec.push((*ids)[5]), "b");
  EXPECT_EQ(dec.flush(), "");
}

TEST(IncrementalDecoder, FlushesIncompleteAsReplacement) {
  auto t = load(small_tokenizer());
  ASSERT_TRUE(t);
  IncrementalDecoder dec(*t, true);
  EXPECT_EQ(dec.push(0xF0), "");
  EXPECT_EQ(dec.push(261), "");  // special, skipped
  EXPECT_EQ(dec.push(0x9F), "");
  EXPECT_EQ(dec.push('z'), "\xEF\xBF\xBDz");  // broken sequence, then z
  EXPECT_EQ(dec.push(0xE2), "");
  EXPECT_EQ(dec.flush(), "\xEF\xBF\xBD");
}

TEST(Tokenizer, ConcurrentEncodeIsConsistent) {
  auto t = load(small_tokenizer());
  ASSERT_TRUE(t);
  std::string text;
  for (int i = 0; i < 300; ++i) text += "hello world " + std::to_string(i) + " héllo\n";
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      auto ids = t->encode(text);
      if (ids.ok()) results[k] = std::move(ids.value());
    });
  }
  for (auto& th : threads) th.join();
  auto single = t->encode(text);
  ASSERT_TRUE(single.ok());
  for (const auto& r : results) EXPECT_EQ(r, *single);
  EXPECT_EQ(t->decode(*single), text);
}

TEST(Tokenizer, ConfigTokens) {
  auto t = load(small_tokenizer(),
                R"({"bos_token": {"__type": "AddedToken", "content": "<x>"}, "eos_token": "<|end|>", "pad_token": null})");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->bos_token(), "<x>");
  EXPECT_EQ(t->bos_token_id(), 262);
  EXPECT_EQ(t->eos_token_id(), 261);
  EXPECT_EQ(t->pad_token(), "");
  EXPECT_EQ(t->pad_token_id(), std::nullopt);
  EXPECT_NE(load_error(small_tokenizer(), R"({"bos_token": 7})").find("bos_token"), std::string::npos);
  EXPECT_NE(load_error(small_tokenizer(), "{not json").find("malformed"), std::string::npos);
}

// Each bad tokenizer.json fails with a message naming the offending part.
TEST(Tokenizer, LoadErrorsNameTheProblem) {
  struct Case {
    const char* expect;
    std::function<void(json&)> edit;
  };
  const std::vector<Case> cases = {
      {"unsupported model type 'WordPiece'", [](json& j) { j["model"]["type"] = "WordPiece"; }},
      {"unsupported model type 'Unigram'", [](json& j) { j["model"]["type"] = "Unigram"; }},
      {"normalizer: unsupported normalizer type 'BertNormalizer'",
       [](json& j) { j["normalizer"] = {{"type", "BertNormalizer"}}; }},
      {"unsupported pre_tokenizer type 'Whitespace'",
       [](json& j) { j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Whitespace"}}; }},
      {"ByteLevel must be last", [](json& j) { j["pre_tokenizer"]["pretokenizers"].push_back(
                                                   j["pre_tokenizer"]["pretokenizers"][0]); }},
      {"decoder: unsupported", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }},
      {"unsupported post_processor type 'Foo'", [](json& j) { j["post_processor"] = {{"type", "Foo"}}; }},
      {"merges[1]: token 'q q' is not in the vocab",
       [](json& j) { j["model"]["merges"][1] = json::array({"q q", "l"}); }},
      {"merges[0]: \"h e x\" is not two tokens", [](json& j) { j["model"]["merges"][0] = "h e x"; }},
      {"vocab[\"a\"]: id must be an integer", [](json& j) { j["model"]["vocab"]["a"] = -1; }},
      {"model.vocab: missing", [](json& j) { j["model"].erase("vocab"); }},
      {"model.vocab: missing or not an object", [](json& j) { j["model"]["vocab"] = json::array({1, 2}); }},
      {"vocab[\"b\"]: id must be an integer", [](json& j) { j["model"]["vocab"]["b"] = {{"x", 1}}; }},
      {"merges[2]: expected", [](json& j) { j["model"]["merges"][2] = {{"a", "b"}}; }},
      {"merges: missing or not an array", [](json& j) { j["model"]["merges"] = json::object(); }},
      {"missing 'model'", [](json& j) { j.erase("model"); }},
      {"version", [](json& j) { j["version"] = "2.0"; }},
      {"truncation", [](json& j) { j["truncation"] = {{"max_length", 8}}; }},
      {"invalid regex in pre_tokenizer.pretokenizers[0].pattern",
       [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; }},
      {"dropout 0.5 is not supported", [](json& j) { j["model"]["dropout"] = 0.5; }},
      {"special token '<s>' is not in special_tokens", [](json& j) {
         j["post_processor"] = {{"type", "TemplateProcessing"},
                                {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}})},
                                {"special_tokens", json::object()}};
       }},
      {"added_tokens must be an array", [](json& j) { j["added_tokens"] = 3; }},
      {"added_tokens[0]: expected an object", [](json& j) { j["added_tokens"][0].erase("content"); }},
      {"model.byte_fallback must be a boolean", [](json& j) { j["model"]["byte_fallback"] = "yes"; }},
      {"malformed JSON", [](json& j) { j["added_tokens"][0]["lstrip"] = "no"; }},
  };
  for (const Case& c : cases) {
    json j = small_tokenizer();
    c.edit(j);
    const std::string err = load_error(j);
    EXPECT_NE(err.find(c.expect), std::string::npos) << "want '" << c.expect << "' in: " << err;
  }
  auto truncated = Tokenizer::from_json(small_tokenizer().dump().substr(0, 500), "");
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("malformed JSON"), std::string::npos);
  auto missing = Tokenizer::from_files("/nonexistent/tokenizer.json", "");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/tokenizer.json"), std::string::npos);
}

TEST(Utf8, LossyStreamingAgreesWithOneShot) {
  // Every split point of a byte string with valid and invalid parts.
  const std::string bytes = "a\xC3\xA9\xF0\x9F\x98\x80\xE2\x82x\xF4\x90\x80\xED\x9F\xBFz\xC3";
  std::string whole;
  tok::utf8_lossy_append(bytes, true, &whole);
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    std::string out;
    std::string pending = bytes.substr(0, cut);
    pending.erase(0, tok::utf8_lossy_append(pending, false, &out));
    pending += bytes.substr(cut);
    tok::utf8_lossy_append(pending, true, &out);
    EXPECT_EQ(out, whole) << "cut at " << cut;
  }
}

// The segment-wise NFC agrees with utf8proc's whole-string NFC on random
// mixes of starters, combining marks, Hangul jamo, Indic and CJK characters.
TEST(Normalizer, SegmentedNfcMatchesWholeString) {
  auto n = tok::Normalizer::from_json(json{{"type", "NFC"}}, "normalizer");
  ASSERT_TRUE(n.ok());
  const std::vector<char32_t> alphabet = {
      'a', 'e', 'A', ' ', 0xE9, 0xC5, 0x212B, 0x300, 0x301, 0x323, 0x308, 0x34F, 0x1EBF, 0x1100,
      0x1161, 0x11A8, 0xAC00, 0x0915, 0x093C, 0x0958, 0x09C7, 0x09BE, 0x0B47, 0x0B3E, 0x0DD9,
      0x0DCF, 0x1025, 0x102E, 0x3099, 0x304B, 0x4E00, 0xF900, 0x2126, 0x1F600, 0x0340, 0x0344,
      0x05B8, 0x0591, 0x11099, 0x110BA};
  uint32_t state = 12345;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    const int len = 1 + iter % 12;
    for (int k = 0; k < len; ++k) {
      state = state * 1664525u + 1013904223u;
      tok::utf8_append(&s, alphabet[(state >> 8) % alphabet.size()]);
    }
    std::string got;
    ASSERT_TRUE(n->normalize(s, &got).ok());
    utf8proc_uint8_t* want = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
    ASSERT_NE(want, nullptr);
    EXPECT_EQ(got, std::string(reinterpret_cast<const char*>(want))) << "input #" << iter;
    std::free(want);
  }
}

}  // namespace
}  // namespace ds
