//===- TokenizerFiles.cpp - Tokenizer and generation metadata --------------===//
//
// The tokenizer files are copied verbatim into the plan (dsrt's tokenizer
// parses them); here they are only parsed far enough to resolve the special
// token ids, find the chat template and read the generation defaults.
//
//===----------------------------------------------------------------------===//

#include "TokenizerFiles.h"

#include <filesystem>
#include <optional>

#include "runtime/common/file_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ds {
namespace {

/// Id of a token string: tokenizer.json added_tokens first, then the model's
/// vocab (an object for BPE/WordPiece, a list of [piece, score] for Unigram).
std::optional<int64_t> lookupToken(const json &tok, const std::string &content) {
  auto added = tok.find("added_tokens");
  if (added != tok.end() && added->is_array()) {
    for (const json &t : *added) {
      if (!t.is_object()) continue;
      auto c = t.find("content"), id = t.find("id");
      if (c != t.end() && c->is_string() && *c == content && id != t.end() && id->is_number_integer())
        return id->get<int64_t>();
    }
  }
  auto model = tok.find("model");
  if (model == tok.end() || !model->is_object()) return std::nullopt;
  auto vocab = model->find("vocab");
  if (vocab == model->end()) return std::nullopt;
  if (vocab->is_object()) {
    auto it = vocab->find(content);
    if (it != vocab->end() && it->is_number_integer()) return it->get<int64_t>();
  } else if (vocab->is_array()) {
    for (size_t i = 0; i < vocab->size(); ++i) {
      const json &e = (*vocab)[i];
      if (e.is_array() && !e.empty() && e[0].is_string() && e[0] == content) return static_cast<int64_t>(i);
    }
  }
  return std::nullopt;
}

/// A tokenizer_config.json special-token field ("eos_token" ...): a string,
/// an object {"content": ...}, null or absent. Returns its id, or -1 if unset.
Result<int64_t> specialTokenId(const json &tokCfg, const JsonFields &tokCfgFields, const json &tok,
                               const std::string &tokenizerPath, const std::string &key) {
  auto it = tokCfg.find(key);
  if (it == tokCfg.end() || it->is_null()) return int64_t{-1};
  std::string content;
  if (it->is_string()) {
    content = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    content = (*it)["content"].get<std::string>();
  } else {
    return tokCfgFields.error(key, "must be a string or an object with a 'content' string");
  }
  std::optional<int64_t> id = lookupToken(tok, content);
  if (!id)
    return tokCfgFields.error(key, StrCat() << "names token '" << content << "' which is not in "
                                            << tokenizerPath);
  return *id;
}

Result<std::string> chatTemplate(const std::string &dir, const json &tokCfg, const JsonFields &fields,
                                 std::vector<std::string> &warnings) {
  std::string jinjaPath = dir + "/chat_template.jinja";
  std::error_code ec;
  if (fs::exists(jinjaPath, ec)) return read_file(jinjaPath);
  auto it = tokCfg.find("chat_template");
  if (it == tokCfg.end() || it->is_null()) {
    warnings.push_back("the model has no chat template (no chat_template.jinja, no chat_template in "
                       "tokenizer_config.json)");
    return std::string();
  }
  if (it->is_string()) return it->get<std::string>();
  // A list of named templates: [{"name": "default", "template": "..."}, ...].
  if (it->is_array()) {
    const json *chosen = nullptr;
    for (const json &e : *it) {
      if (!e.is_object() || !e.contains("template") || !e["template"].is_string())
        return fields.error("chat_template", "must be a string or a list of {name, template} objects");
      if (!chosen || (e.contains("name") && e["name"] == "default")) chosen = &e;
    }
    if (chosen) return (*chosen)["template"].get<std::string>();
  }
  return fields.error("chat_template", "must be a string or a list of {name, template} objects");
}

Status readGenerationConfig(const std::string &dir, GenerationSpec &gen) {
  std::string path = dir + "/generation_config.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::Ok();
  DS_ASSIGN_OR_RETURN(gen.generationConfigJson, read_file(path));
  DS_ASSIGN_OR_RETURN(json j, parseJson(gen.generationConfigJson, path));
  JsonFields f(j, path);
  if (!j.is_object()) return f.error("", "must be a JSON object");
  DS_ASSIGN_OR_RETURN(gen.doSample, f.boolean("do_sample", false));
  DS_ASSIGN_OR_RETURN(gen.temperature, f.number("temperature", 1.0));
  DS_ASSIGN_OR_RETURN(gen.topP, f.number("top_p", 1.0));
  DS_ASSIGN_OR_RETURN(gen.topK, f.integer("top_k", -1));
  DS_ASSIGN_OR_RETURN(gen.minP, f.number("min_p", 0.0));
  DS_ASSIGN_OR_RETURN(gen.repetitionPenalty, f.number("repetition_penalty", 1.0));
  DS_ASSIGN_OR_RETURN(gen.eosTokenIds, f.intOrIntList("eos_token_id"));
  if (gen.temperature < 0) return f.error("temperature", "must not be negative");
  if (!(gen.topP > 0 && gen.topP <= 1)) return f.error("top_p", "must be in (0, 1]");
  if (gen.topK == 0) gen.topK = -1;  // 0 disables top-k, as -1 does in the plan
  if (gen.topK < -1) return f.error("top_k", "must be -1 (off) or positive");
  if (gen.minP < 0 || gen.minP > 1) return f.error("min_p", "must be in [0, 1]");
  if (!(gen.repetitionPenalty > 0)) return f.error("repetition_penalty", "must be positive");
  return Status::Ok();
}

/// Generation defaults and the id range checks, shared by the paths with and
/// without a tokenizer.
Status finishTokenIds(const std::string &dir, const std::vector<int64_t> &configEos, ModelSpec &spec) {
  TokenizerSpec &tk = spec.tokenizer;
  DS_RETURN_IF_ERROR(readGenerationConfig(dir, spec.generation));
  if (spec.generation.eosTokenIds.empty())
    spec.generation.eosTokenIds = configEos.empty() ? tk.eosTokenIds : configEos;

  auto checkIds = [&](const std::vector<int64_t> &ids, const std::string &what) -> Status {
    for (int64_t id : ids)
      if (id < 0 || id >= spec.vocabSize)
        return Status::Error(StrCat() << dir << ": " << what << " " << id << " is outside the vocabulary [0, "
                                      << spec.vocabSize << ")");
    return Status::Ok();
  };
  DS_RETURN_IF_ERROR(checkIds(tk.eosTokenIds, "eos token id"));
  DS_RETURN_IF_ERROR(checkIds(spec.generation.eosTokenIds, "generation eos token id"));
  if (tk.bosTokenId >= 0) DS_RETURN_IF_ERROR(checkIds({tk.bosTokenId}, "bos token id"));
  if (tk.padTokenId >= 0) DS_RETURN_IF_ERROR(checkIds({tk.padTokenId}, "pad token id"));
  return Status::Ok();
}

}  // namespace

Status readTokenizerFiles(const std::string &dir, const JsonFields &config, ModelSpec &spec, bool required) {
  TokenizerSpec &tk = spec.tokenizer;
  std::string tokPath = dir + "/tokenizer.json", tokCfgPath = dir + "/tokenizer_config.json";
  std::error_code ec;
  if (!required && !fs::exists(tokPath, ec) && !fs::exists(tokCfgPath, ec)) {
    spec.warnings.push_back(StrCat() << dir << " has no tokenizer files: the plan has no tokenizer "
                                     << "(dsrt then takes token-id prompts only, e.g. --prompt-ids)");
    DS_ASSIGN_OR_RETURN(std::vector<int64_t> configEos, config.intOrIntList("eos_token_id"));
    DS_ASSIGN_OR_RETURN(tk.bosTokenId, config.integer("bos_token_id", -1));
    tk.eosTokenIds = configEos;
    return finishTokenIds(dir, configEos, spec);
  }
  for (const std::string &p : {tokPath, tokCfgPath})
    if (!fs::exists(p, ec)) return Status::Error(StrCat() << p << ": missing tokenizer file");
  DS_ASSIGN_OR_RETURN(tk.tokenizerJson, read_file(tokPath));
  DS_ASSIGN_OR_RETURN(tk.tokenizerConfigJson, read_file(tokCfgPath));
  DS_ASSIGN_OR_RETURN(json tok, parseJson(tk.tokenizerJson, tokPath));
  DS_ASSIGN_OR_RETURN(json tokCfg, parseJson(tk.tokenizerConfigJson, tokCfgPath));
  if (!tok.is_object() || !tok.contains("model"))
    return Status::Error(StrCat() << tokPath << ": not a Hugging Face tokenizer (no 'model' object)");
  JsonFields tokCfgFields(tokCfg, tokCfgPath);
  if (!tokCfg.is_object()) return tokCfgFields.error("", "must be a JSON object");

  DS_ASSIGN_OR_RETURN(tk.bosTokenId, specialTokenId(tokCfg, tokCfgFields, tok, tokPath, "bos_token"));
  DS_ASSIGN_OR_RETURN(int64_t eos, specialTokenId(tokCfg, tokCfgFields, tok, tokPath, "eos_token"));
  DS_ASSIGN_OR_RETURN(tk.padTokenId, specialTokenId(tokCfg, tokCfgFields, tok, tokPath, "pad_token"));
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> configEos, config.intOrIntList("eos_token_id"));
  if (eos >= 0)
    tk.eosTokenIds = {eos};
  else
    tk.eosTokenIds = configEos;
  DS_ASSIGN_OR_RETURN(tk.chatTemplate, chatTemplate(dir, tokCfg, tokCfgFields, spec.warnings));
  return finishTokenIds(dir, configEos, spec);
}

}  // namespace ds
