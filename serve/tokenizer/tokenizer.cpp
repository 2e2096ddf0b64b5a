#include "serve/tokenizer/tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "serve/tokenizer/added_vocab.h"
#include "serve/tokenizer/bpe_model.h"
#include "serve/tokenizer/normalizer.h"
#include "serve/tokenizer/post_processor.h"
#include "serve/tokenizer/pre_tokenizer.h"
#include "serve/tokenizer/utf8_util.h"

namespace ds {
namespace {

using json = nlohmann::json;

Result<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(StrCat() << "cannot open '" << path << "': " << std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::Error(StrCat() << "error reading '" << path << "'");
  return ss.str();
}

Result<std::vector<tok::AddedToken>> parse_added_tokens(const json& j) {
  std::vector<tok::AddedToken> out;
  if (j.is_null()) return out;
  if (!j.is_array()) return Status::Error("added_tokens must be an array");
  for (size_t i = 0; i < j.size(); ++i) {
    const json& e = j[i];
    const std::string what = StrCat() << "added_tokens[" << i << "]";
    if (!e.is_object() || !e.contains("content") || !e["content"].is_string()) {
      return Status::Error(what + ": expected an object with a string 'content'");
    }
    tok::AddedToken t;
    t.content = e["content"].get<std::string>();
    size_t bad;
    if (!tok::utf8_valid(t.content, &bad)) return Status::Error(what + ": content is not valid UTF-8");
    t.single_word = e.value("single_word", false);
    t.lstrip = e.value("lstrip", false);
    t.rstrip = e.value("rstrip", false);
    t.normalized = e.value("normalized", true);
    t.special = e.value("special", false);
    out.push_back(std::move(t));
  }
  return out;
}

// tokenizer_config.json's bos_token / eos_token / pad_token: a string, an
// AddedToken dict ({"content": ...}) or null.
Result<std::string> config_token(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return Status::Error(StrCat() << "tokenizer_config." << key
                                << " must be a string, an AddedToken object or null");
}

// Parses tokenizer.json, moving model.vocab entries and model.merges elements
// into *source instead of the document (they are most of the file).
json parse_tokenizer_json(std::string_view text, tok::BpeSource* source) {
  std::string keys[4];  // object key at depths 1..3
  std::string pending_key;
  bool vocab_object = false, merges_array = false;
  using event = json::parse_event_t;
  return json::parse(text, [&](int depth, event ev, json& parsed) -> bool {
    const bool in_model = keys[1] == "model";
    if (ev == event::key) {
      if (depth <= 3) keys[depth] = parsed.get<std::string>();
      if (depth == 3 && in_model && vocab_object && keys[2] == "vocab") {
        pending_key = keys[3];
        return false;
      }
      return true;
    }
    if (depth == 2 && in_model) {
      if (ev == event::object_start && keys[2] == "vocab") vocab_object = source->has_vocab = true;
      if (ev == event::array_start && keys[2] == "merges") merges_array = source->has_merges = true;
      if (ev == event::object_end || ev == event::array_end) vocab_object = merges_array = false;
      return true;
    }
    if (depth == 3 && in_model) {
      if (vocab_object && keys[2] == "vocab") {
        if (ev == event::value) {
          source->vocab.emplace_back(std::move(pending_key), std::move(parsed));
          return false;
        }
        // A container where an id belongs: keep a placeholder that fails validation.
        if (ev == event::object_start || ev == event::array_start) {
          source->vocab.emplace_back(std::move(pending_key), json(ev == event::object_start
                                                                      ? json::value_t::object
                                                                      : json::value_t::array));
          return false;
        }
      }
      if (merges_array && keys[2] == "merges" && (ev == event::value || ev == event::array_end ||
                                                  ev == event::object_end)) {
        source->merges.push_back(std::move(parsed));
        return false;
      }
    }
    return true;
  });
}

}  // namespace

struct Tokenizer::Impl {
  enum class Decoder { kNone, kByteLevel };
  tok::Normalizer normalizer;
  tok::PreTokenizer pre_tokenizer;
  tok::BpeModel model;
  tok::AddedVocab added;
  tok::PostProcessor post;
  Decoder decoder = Decoder::kNone;
  int32_t vocab_size = 0;
  // Per id: decoder output bytes (dec_bytes[dec_off[id], dec_off[id + 1])).
  std::vector<uint32_t> dec_off;
  std::string dec_bytes;
  std::vector<uint8_t> present, special;
  std::string bos, eos, pad;

  Status load(const json& j, const tok::BpeSource& source);
  Status encode_sequence(std::string_view text, std::vector<int32_t>* out) const;
  std::optional<int32_t> lookup(std::string_view token) const {
    if (auto id = added.id_of(token)) return id;
    return model.token_to_id(token);
  }
};

Status Tokenizer::Impl::load(const json& j, const tok::BpeSource& source) {
  if (!j.is_object()) return Status::Error("expected a JSON object at the top level");
  if (auto v = j.find("version"); v != j.end() && !(v->is_string() && v->get<std::string>() == "1.0")) {
    return Status::Error("unsupported tokenizer.json version " + v->dump() + " (expected \"1.0\")");
  }
  for (const char* key : {"truncation", "padding"}) {
    if (auto it = j.find(key); it != j.end() && !it->is_null()) {
      return Status::Error(StrCat() << "'" << key << "' is set: truncation/padding are not supported");
    }
  }
  auto m = j.find("model");
  if (m == j.end()) return Status::Error("missing 'model'");
  DS_ASSIGN_OR_RETURN(model, tok::BpeModel::from_json(*m, "model", &source));
  DS_ASSIGN_OR_RETURN(normalizer, tok::Normalizer::from_json(j.value("normalizer", json()), "normalizer"));
  DS_ASSIGN_OR_RETURN(pre_tokenizer,
                      tok::PreTokenizer::from_json(j.value("pre_tokenizer", json()), "pre_tokenizer"));
  DS_ASSIGN_OR_RETURN(post, tok::PostProcessor::from_json(j.value("post_processor", json()), "post_processor"));
  const json dec = j.value("decoder", json());
  if (dec.is_null()) {
    decoder = Decoder::kNone;
  } else if (dec.is_object() && dec.value("type", std::string()) == "ByteLevel") {
    decoder = Decoder::kByteLevel;
  } else {
    return Status::Error("decoder: unsupported decoder " + dec.dump().substr(0, 200) +
                         " (only ByteLevel or null)");
  }

  DS_ASSIGN_OR_RETURN(std::vector<tok::AddedToken> tokens, parse_added_tokens(j.value("added_tokens", json())));
  DS_RETURN_IF_ERROR(added.build(
      tokens, model.vocab_count(),
      [this](const std::string& c) { return model.token_to_id(c); },
      [this](const std::string& c, std::string* o) { return normalizer.normalize(c, o); }));

  vocab_size = std::max(model.max_id(), added.max_id()) + 1;
  dec_off.assign(static_cast<size_t>(vocab_size) + 1, 0);
  present.assign(static_cast<size_t>(vocab_size), 0);
  special.assign(static_cast<size_t>(vocab_size), 0);
  for (int32_t id = 0; id < vocab_size; ++id) {
    dec_off[id] = static_cast<uint32_t>(dec_bytes.size());
    std::optional<std::string_view> token;
    if (const tok::AddedToken* a = added.by_id(id)) {
      token = a->content;
    } else {
      token = model.id_to_token(id);
    }
    if (!token) continue;
    present[id] = 1;
    special[id] = added.is_special_content(*token) ? 1 : 0;
    if (decoder == Decoder::kByteLevel) {
      tok::byte_level_decode_append(*token, &dec_bytes);
    } else {
      dec_bytes.append(*token);
    }
  }
  dec_off[vocab_size] = static_cast<uint32_t>(dec_bytes.size());
  return Status::Ok();
}

Status Tokenizer::Impl::encode_sequence(std::string_view text, std::vector<int32_t>* out) const {
  size_t bad = 0;
  if (!tok::utf8_valid(text, &bad)) {
    return Status::Error(StrCat() << "input is not valid UTF-8 (byte offset " << bad << ")");
  }
  std::vector<tok::AddedSplit> raw, norm;
  tok::WordList words;
  tok::BpeScratch scratch;
  std::string normalized;
  if (added.empty()) {
    raw.push_back({-1, 0, text.size()});
  } else {
    added.split(text, /*normalized=*/false, &raw);
  }
  const bool byte_level = pre_tokenizer.byte_level();
  for (const tok::AddedSplit& r : raw) {
    if (r.id >= 0) {
      out->push_back(r.id);
      continue;
    }
    std::string_view piece = text.substr(r.begin, r.end - r.begin);
    if (piece.empty()) continue;
    if (!normalizer.is_identity()) {
      DS_RETURN_IF_ERROR(normalizer.normalize(piece, &normalized));
      piece = normalized;
    }
    norm.clear();
    added.split(piece, /*normalized=*/true, &norm);
    for (const tok::AddedSplit& s : norm) {
      if (s.id >= 0) {
        out->push_back(s.id);
        continue;
      }
      if (s.end <= s.begin) continue;
      words.clear();
      DS_RETURN_IF_ERROR(pre_tokenizer.split(piece.substr(s.begin, s.end - s.begin), &words));
      for (std::string_view w : words.words) {
        DS_RETURN_IF_ERROR(model.tokenize(w, byte_level, out, &scratch));
      }
    }
  }
  return Status::Ok();
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_json(std::string_view tokenizer_json,
                                                        std::string_view tokenizer_config_json) {
  auto impl = std::make_unique<Impl>();
  try {
    tok::BpeSource source;
    const json j = parse_tokenizer_json(tokenizer_json, &source);
    DS_RETURN_IF_ERROR(impl->load(j, source).with_context("tokenizer.json"));
    if (!tokenizer_config_json.empty()) {
      const json cfg = json::parse(tokenizer_config_json);
      if (!cfg.is_object()) return Status::Error("tokenizer_config.json: expected a JSON object");
      DS_ASSIGN_OR_RETURN(impl->bos, config_token(cfg, "bos_token"));
      DS_ASSIGN_OR_RETURN(impl->eos, config_token(cfg, "eos_token"));
      DS_ASSIGN_OR_RETURN(impl->pad, config_token(cfg, "pad_token"));
    }
  } catch (const json::exception& e) {
    return Status::Error(StrCat() << "tokenizer: malformed JSON: " << e.what());
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_files(const std::string& tokenizer_json_path,
                                                         const std::string& tokenizer_config_json_path) {
  DS_ASSIGN_OR_RETURN(std::string tj, read_whole_file(tokenizer_json_path));
  std::string cj;
  if (!tokenizer_config_json_path.empty()) {
    DS_ASSIGN_OR_RETURN(cj, read_whole_file(tokenizer_config_json_path));
  }
  auto r = from_json(tj, cj);
  if (!r.ok()) return r.status().with_context(tokenizer_json_path);
  return r;
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<std::vector<int32_t>> encs(1);
  encs[0].reserve(text.size() / 3 + 8);
  DS_RETURN_IF_ERROR(impl_->encode_sequence(text, &encs[0]));
  std::vector<int32_t> out;
  DS_RETURN_IF_ERROR(impl_->post.process(std::move(encs), add_special_tokens, &out));
  return out;
}

Result<std::vector<int32_t>> Tokenizer::encode_pair(std::string_view a, std::string_view b,
                                                    bool add_special_tokens) const {
  std::vector<std::vector<int32_t>> encs(2);
  DS_RETURN_IF_ERROR(impl_->encode_sequence(a, &encs[0]));
  DS_RETURN_IF_ERROR(impl_->encode_sequence(b, &encs[1]));
  std::vector<int32_t> out;
  DS_RETURN_IF_ERROR(impl_->post.process(std::move(encs), add_special_tokens, &out));
  return out;
}

bool Tokenizer::append_token_bytes(int32_t id, bool skip_special_tokens, bool first,
                                   std::string* out) const {
  const Impl& m = *impl_;
  if (id < 0 || id >= m.vocab_size || !m.present[id]) return false;
  if (skip_special_tokens && m.special[id]) return false;
  if (m.decoder == Impl::Decoder::kNone && !first) out->push_back(' ');
  out->append(m.dec_bytes, m.dec_off[id], m.dec_off[id + 1] - m.dec_off[id]);
  return true;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  bool first = true;
  for (int32_t id : ids) {
    if (append_token_bytes(id, skip_special_tokens, first, &bytes)) first = false;
  }
  std::string out;
  out.reserve(bytes.size());
  tok::utf8_lossy_append(bytes, /*final=*/true, &out);
  return out;
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->lookup(token); }

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const tok::AddedToken* a = impl_->added.by_id(id)) return a->content;
  if (std::optional<std::string_view> t = impl_->model.id_to_token(id)) return std::string(*t);
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && impl_->special[id];
}

std::optional<int32_t> Tokenizer::bos_token_id() const {
  return impl_->bos.empty() ? std::nullopt : impl_->lookup(impl_->bos);
}
std::optional<int32_t> Tokenizer::eos_token_id() const {
  return impl_->eos.empty() ? std::nullopt : impl_->lookup(impl_->eos);
}
std::optional<int32_t> Tokenizer::pad_token_id() const {
  return impl_->pad.empty() ? std::nullopt : impl_->lookup(impl_->pad);
}
const std::string& Tokenizer::bos_token() const { return impl_->bos; }
const std::string& Tokenizer::eos_token() const { return impl_->eos; }
const std::string& Tokenizer::pad_token() const { return impl_->pad; }

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(tok), skip_special_tokens_(skip_special_tokens) {}

std::string IncrementalDecoder::push(int32_t id) {
  if (tok_.append_token_bytes(id, skip_special_tokens_, first_, &pending_)) first_ = false;
  std::string out;
  const size_t used = tok::utf8_lossy_append(pending_, /*final=*/false, &out);
  pending_.erase(0, used);
  return out;
}

std::string IncrementalDecoder::flush() {
  std::string out;
  tok::utf8_lossy_append(pending_, /*final=*/true, &out);
  pending_.clear();
  return out;
}

}  // namespace ds
