#include "tools/bench/dsbench/dataset.h"

#include <filesystem>
#include <sstream>
#include <utility>

#include "runtime/common/file_util.h"
#include "runtime/plan/plan_reader.h"

namespace ds::bench {

using nlohmann::json;

namespace {

Result<int64_t> count_tokens(const Tokenizer& tok, const std::string& text) {
  DS_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok.encode(text, /*add_special_tokens=*/false));
  return static_cast<int64_t>(ids.size());
}

std::string map_sharegpt_role(const std::string& from) {
  if (from == "human" || from == "user") return "user";
  if (from == "gpt" || from == "assistant" || from == "chatgpt" || from == "bard") return "assistant";
  if (from == "system") return "system";
  return from;
}

Result<int64_t> positive_int(const json& conv, const char* key) {
  auto it = conv.find(key);
  if (it == conv.end()) return int64_t{0};
  if (!it->is_number_integer() || it->get<int64_t>() <= 0)
    return Status::Error(StrCat() << "'" << key << "' must be a positive integer, got " << it->dump());
  return it->get<int64_t>();
}

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_bench_tokenizer(const std::string& plan_path,
                                                        const std::string& tokenizer_path) {
  if (!plan_path.empty() && !tokenizer_path.empty())
    return Status::Error("give either --plan or --tokenizer, not both");
  if (!plan_path.empty()) {
    DS_ASSIGN_OR_RETURN(std::unique_ptr<LoadedPlan> plan, LoadedPlan::from_file(plan_path));
    const plan::TokenizerInfo* ti = plan->plan().tokenizer();
    if (!ti || !ti->tokenizer_json() || ti->tokenizer_json()->size() == 0)
      return Status::Error(StrCat() << "plan '" << plan_path << "' has no tokenizer");
    auto tok = Tokenizer::from_json(ti->tokenizer_json()->string_view(),
                                    ti->tokenizer_config_json() ? ti->tokenizer_config_json()->string_view()
                                                                : std::string_view());
    if (!tok.ok()) return tok.status().with_context(StrCat() << "tokenizer of plan '" << plan_path << "'");
    return std::move(tok).value();
  }
  if (!tokenizer_path.empty()) {
    std::filesystem::path p(tokenizer_path);
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) p /= "tokenizer.json";
    std::filesystem::path config = p.parent_path() / "tokenizer_config.json";
    std::string config_path = std::filesystem::exists(config, ec) ? config.string() : std::string();
    auto tok = Tokenizer::from_files(p.string(), config_path);
    if (!tok.ok()) return tok.status().with_context(StrCat() << "tokenizer '" << p.string() << "'");
    return std::move(tok).value();
  }
  return Status::Error("no tokenizer: give --plan PLAN or --tokenizer tokenizer.json");
}

std::vector<int32_t> prompt_candidate_ids(const Tokenizer& tok) {
  std::vector<int32_t> ids;
  const int32_t n = tok.vocab_size();
  ids.reserve(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    if (tok.is_special(id) || !tok.id_to_token(id).has_value()) continue;
    // Only tokens that are whole characters on their own (no byte pieces of
    // a multi-byte character), so random sequences decode to clean text.
    const int32_t one[1] = {id};
    const std::string text = tok.decode(one);
    if (text.empty() || text.find(kReplacementChar) != std::string::npos) continue;
    ids.push_back(id);
  }
  return ids;
}

Result<std::string> make_exact_prompt(const Tokenizer& tok, const std::vector<int32_t>& candidates,
                                      int64_t len, Rng& rng) {
  if (candidates.empty()) return Status::Error("the tokenizer has no non-special tokens to sample");
  if (len <= 0) return Status::Error(StrCat() << "prompt length must be positive, got " << len);
  auto draw = [&]() { return candidates[static_cast<size_t>(rng.uniform_int(0, static_cast<int64_t>(candidates.size()) - 1))]; };
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(len));
  for (int64_t i = 0; i < len; ++i) ids.push_back(draw());
  // Decoding and re-encoding merges or splits tokens at the seams, so the
  // count moves; cut or top up and try again. Converges in a few rounds.
  constexpr int kMaxRounds = 200;
  for (int round = 0; round < kMaxRounds; ++round) {
    std::string text = tok.decode(ids);
    DS_ASSIGN_OR_RETURN(std::vector<int32_t> re, tok.encode(text, /*add_special_tokens=*/false));
    const int64_t n = static_cast<int64_t>(re.size());
    if (n == len) return text;
    if (n > len) {
      re.resize(static_cast<size_t>(len));
      // A cut inside a multi-byte character would decode to U+FFFD, which
      // re-encodes longer: cut back to a character boundary.
      while (!re.empty() && ends_with(tok.decode(re), kReplacementChar)) re.pop_back();
    }
    while (static_cast<int64_t>(re.size()) < len) re.push_back(draw());
    ids = std::move(re);
  }
  return Status::Error(StrCat() << "could not build a prompt of exactly " << len << " tokens in "
                                << kMaxRounds << " rounds");
}

Result<std::vector<BenchRequest>> make_random_dataset(const Tokenizer& tok, const RandomDatasetConfig& cfg) {
  if (cfg.num_prompts <= 0) return Status::Error("--num-prompts must be positive");
  if (cfg.input_len <= 0) return Status::Error("--random-input-len must be positive");
  if (cfg.output_len <= 0) return Status::Error("--random-output-len must be positive");
  if (!(cfg.range_ratio >= 0.0 && cfg.range_ratio <= 1.0))
    return Status::Error(StrCat() << "--random-range-ratio must be in [0, 1], got " << cfg.range_ratio);
  Rng rng(cfg.seed);
  std::vector<int64_t> in_lens = sample_lengths(cfg.num_prompts, cfg.input_len, cfg.range_ratio, rng);
  std::vector<int64_t> out_lens = sample_lengths(cfg.num_prompts, cfg.output_len, cfg.range_ratio, rng);
  const std::vector<int32_t> candidates = prompt_candidate_ids(tok);
  std::vector<BenchRequest> out;
  out.reserve(static_cast<size_t>(cfg.num_prompts));
  for (int64_t i = 0; i < cfg.num_prompts; ++i) {
    BenchRequest r;
    auto text = make_exact_prompt(tok, candidates, in_lens[static_cast<size_t>(i)], rng);
    if (!text.ok()) return text.status().with_context(StrCat() << "random prompt " << i);
    r.prompt = std::move(text).value();
    r.prompt_len = in_lens[static_cast<size_t>(i)];
    r.output_len = out_lens[static_cast<size_t>(i)];
    out.push_back(std::move(r));
  }
  return out;
}

Result<BenchRequest> conversation_to_request(const json& conv, const Tokenizer* tok, int64_t default_output_len) {
  if (!conv.is_object()) return Status::Error("a conversation must be a JSON object");
  json messages = json::array();
  if (auto m = conv.find("messages"); m != conv.end()) {
    if (!m->is_array()) return Status::Error("'messages' must be an array");
    for (size_t i = 0; i < m->size(); ++i) {
      const json& msg = (*m)[i];
      if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string() || !msg.contains("content") ||
          !msg["content"].is_string())
        return Status::Error(StrCat() << "messages[" << i << "] needs string 'role' and 'content'");
      messages.push_back({{"role", msg["role"]}, {"content", msg["content"]}});
    }
  } else if (auto c = conv.find("conversations"); c != conv.end()) {
    if (!c->is_array()) return Status::Error("'conversations' must be an array");
    for (size_t i = 0; i < c->size(); ++i) {
      const json& turn = (*c)[i];
      if (!turn.is_object() || !turn.contains("from") || !turn["from"].is_string() || !turn.contains("value") ||
          !turn["value"].is_string())
        return Status::Error(StrCat() << "conversations[" << i << "] needs string 'from' and 'value'");
      messages.push_back({{"role", map_sharegpt_role(turn["from"].get<std::string>())}, {"content", turn["value"]}});
    }
  } else {
    return Status::Error("expected a 'messages' or a 'conversations' array");
  }

  BenchRequest r;
  std::string reference;
  if (!messages.empty() && messages.back()["role"] == "assistant") {
    reference = messages.back()["content"].get<std::string>();
    messages.erase(messages.size() - 1);
  }
  bool has_user = false;
  for (const json& m : messages) has_user |= m["role"] == "user";
  if (!has_user) return Status::Error("the conversation has no user turn before its last answer");

  std::string joined;
  for (const json& m : messages) {
    if (!joined.empty()) joined += "\n";
    joined += m["content"].get<std::string>();
  }
  r.prompt = joined;
  r.messages = std::move(messages);
  if (tok) {
    DS_ASSIGN_OR_RETURN(r.prompt_len, count_tokens(*tok, joined));
  }

  DS_ASSIGN_OR_RETURN(int64_t explicit_len, positive_int(conv, "max_tokens"));
  if (explicit_len == 0) {
    DS_ASSIGN_OR_RETURN(explicit_len, positive_int(conv, "output_len"));
  }
  if (explicit_len > 0) {
    r.output_len = explicit_len;
  } else if (tok && !reference.empty()) {
    DS_ASSIGN_OR_RETURN(r.output_len, count_tokens(*tok, reference));
  }
  if (r.output_len <= 0) r.output_len = default_output_len;
  if (r.output_len <= 0)
    return Status::Error("no output length: the conversation has none and --random-output-len is not positive");
  return r;
}

Result<std::vector<BenchRequest>> load_jsonl_dataset(const JsonlDatasetConfig& cfg, const Tokenizer* tok) {
  if (cfg.path.empty()) return Status::Error("--dataset jsonl needs --dataset-path FILE");
  DS_ASSIGN_OR_RETURN(std::string text, read_file(cfg.path));
  std::vector<std::pair<int64_t, json>> convs;  // (line number, object)
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    json arr = json::parse(text, nullptr, false);
    if (arr.is_discarded() || !arr.is_array())
      return Status::Error(StrCat() << cfg.path << ": not a valid JSON array");
    for (size_t i = 0; i < arr.size(); ++i) convs.emplace_back(static_cast<int64_t>(i), std::move(arr[i]));
  } else {
    std::istringstream in(text);
    std::string line;
    int64_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) return Status::Error(StrCat() << cfg.path << ":" << lineno << ": invalid JSON");
      convs.emplace_back(lineno, std::move(j));
    }
  }
  if (convs.empty()) return Status::Error(StrCat() << cfg.path << ": no conversations");

  // Seeded Fisher-Yates shuffle (like sglang's ShareGPT sampling).
  Rng rng(cfg.seed);
  for (size_t i = convs.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng.uniform_int(0, static_cast<int64_t>(i) - 1));
    std::swap(convs[i - 1], convs[j]);
  }
  const size_t keep = cfg.num_prompts > 0 ? std::min(convs.size(), static_cast<size_t>(cfg.num_prompts)) : convs.size();
  std::vector<BenchRequest> out;
  out.reserve(keep);
  for (size_t i = 0; i < keep; ++i) {
    auto r = conversation_to_request(convs[i].second, tok, cfg.default_output_len);
    const char* unit = first != std::string::npos && text[first] == '[' ? " (array element " : " (line ";
    if (!r.ok()) return r.status().with_context(StrCat() << cfg.path << unit << convs[i].first << ")");
    out.push_back(std::move(r).value());
  }
  return out;
}

}  // namespace ds::bench
