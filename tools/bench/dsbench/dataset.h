// Benchmark workloads: token-exact random prompts (sglang's "random"
// dataset) and conversations from a JSONL / ShareGPT file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/common/status.h"
#include "serve/tokenizer/tokenizer.h"
#include "tools/bench/dsbench/random.h"

namespace ds::bench {

struct BenchRequest {
  std::string prompt;         // completions prompt; the user message of a chat when `messages` is null
  nlohmann::json messages;    // chat messages (array of {"role", "content"}), or null
  int64_t prompt_len = 0;     // tokens by the client's tokenizer, 0 if unknown
  int64_t output_len = 0;     // max_tokens of the request
};

// The tokenizer of a dscc plan (--plan) or of a tokenizer.json file
// (--tokenizer; tokenizer_config.json next to it is used when present).
// Exactly one of the two paths may be non-empty.
Result<std::unique_ptr<Tokenizer>> load_bench_tokenizer(const std::string& plan_path,
                                                        const std::string& tokenizer_path);

// Ids random prompts are drawn from: every id of the vocabulary that has a
// token and is not special.
std::vector<int32_t> prompt_candidate_ids(const Tokenizer& tok);

// A text that the tokenizer encodes (without special tokens) into exactly
// `len` tokens: random ids are decoded, re-encoded and cut or topped up until
// the count is exact. `candidates` must be non-empty.
Result<std::string> make_exact_prompt(const Tokenizer& tok, const std::vector<int32_t>& candidates,
                                      int64_t len, Rng& rng);

struct RandomDatasetConfig {
  int64_t num_prompts = 0;
  int64_t input_len = 0;
  int64_t output_len = 0;
  double range_ratio = 1.0;
  uint64_t seed = 0;
};
Result<std::vector<BenchRequest>> make_random_dataset(const Tokenizer& tok, const RandomDatasetConfig& cfg);

struct JsonlDatasetConfig {
  std::string path;
  int64_t num_prompts = 0;        // <= 0: all
  int64_t default_output_len = 0; // when a conversation gives no output length
  uint64_t seed = 0;              // shuffle
};

// One conversation: {"messages": [{"role", "content"}...]} or ShareGPT
// {"conversations": [{"from", "value"}...]}. A final assistant turn is the
// reference answer: it is dropped from the prompt and its token count (with a
// tokenizer) is the output length. "max_tokens" / "output_len" in the object
// take precedence; else `default_output_len`. `tok` may be null.
Result<BenchRequest> conversation_to_request(const nlohmann::json& conv, const Tokenizer* tok,
                                             int64_t default_output_len);

// A JSONL file (one conversation per line; blank lines skipped) or a JSON
// array of conversations (ShareGPT files). Shuffled with `seed`, then the
// first `num_prompts` kept. Errors name the file and line.
Result<std::vector<BenchRequest>> load_jsonl_dataset(const JsonlDatasetConfig& cfg, const Tokenizer* tok);

}  // namespace ds::bench
