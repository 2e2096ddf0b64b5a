#include "serve/tokenizer/post_processor.h"

#include <map>

#include <nlohmann/json.hpp>

namespace ds::tok {
namespace {

using json = nlohmann::json;

struct SpecialIds {
  std::map<std::string, std::vector<int32_t>> by_name;
};

Result<SpecialIds> parse_special_tokens(const json& j, const std::string& what) {
  SpecialIds out;
  if (j.is_null()) return out;
  if (!j.is_object()) return Status::Error(what + ": special_tokens must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const json& ids = it.value().is_object() ? it.value().value("ids", json()) : json();
    if (!ids.is_array()) return Status::Error(StrCat() << what << ".special_tokens[\"" << it.key() << "\"]: missing 'ids' array");
    std::vector<int32_t> v;
    for (const json& id : ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        return Status::Error(StrCat() << what << ".special_tokens[\"" << it.key() << "\"]: bad id");
      }
      v.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    out.by_name[it.key()] = std::move(v);
  }
  return out;
}

// A template piece: {"Sequence": {"id": "A", "type_id": 0}},
// {"SpecialToken": {"id": "<s>", "type_id": 0}} or the string forms "$A", "$B:1", "<s>".
Status parse_piece(const json& p, const SpecialIds& specials, const std::string& what,
                   int* sequence, std::vector<int32_t>* ids) {
  std::string special;
  if (p.is_object() && p.contains("Sequence") && p["Sequence"].is_object()) {
    const std::string id = p["Sequence"].value("id", std::string());
    if (id != "A" && id != "B") return Status::Error(what + ": Sequence id must be \"A\" or \"B\"");
    *sequence = id == "A" ? 0 : 1;
    return Status::Ok();
  }
  if (p.is_object() && p.contains("SpecialToken") && p["SpecialToken"].is_object()) {
    special = p["SpecialToken"].value("id", std::string());
  } else if (p.is_string()) {
    std::string s = p.get<std::string>();
    s = s.substr(0, s.find(':'));
    if (!s.empty() && s[0] == '$') {
      *sequence = (s == "$B" || s == "$b") ? 1 : 0;
      return Status::Ok();
    }
    special = s;
  } else {
    return Status::Error(what + ": expected a Sequence or SpecialToken piece");
  }
  auto it = specials.by_name.find(special);
  if (it == specials.by_name.end()) {
    return Status::Error(StrCat() << what << ": special token '" << special << "' is not in special_tokens");
  }
  *sequence = -1;
  *ids = it->second;
  return Status::Ok();
}

Result<std::pair<std::string, int32_t>> parse_token_pair(const json& j, const std::string& what) {
  if (!j.is_array() || j.size() != 2 || !j[0].is_string() || !j[1].is_number_integer()) {
    return Status::Error(what + ": expected [\"token\", id]");
  }
  return std::make_pair(j[0].get<std::string>(), static_cast<int32_t>(j[1].get<int64_t>()));
}

}  // namespace

Result<PostProcessor> PostProcessor::from_json(const json& j, const std::string& what) {
  PostProcessor pp;
  if (j.is_null()) return pp;
  DS_RETURN_IF_ERROR(add(j, what, &pp.steps_));
  return pp;
}

Status PostProcessor::add(const json& j, const std::string& what, std::vector<Step>* steps) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Status::Error(what + ": expected an object with a string 'type'");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    auto it = j.find("processors");
    if (it == j.end() || !it->is_array()) return Status::Error(what + ": Sequence without 'processors' array");
    for (size_t i = 0; i < it->size(); ++i) {
      DS_RETURN_IF_ERROR(add((*it)[i], StrCat() << what << ".processors[" << i << "]", steps));
    }
    return Status::Ok();
  }
  Step step;
  if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
  } else if (type == "TemplateProcessing") {
    step.kind = Kind::kTemplate;
    DS_ASSIGN_OR_RETURN(SpecialIds specials,
                        parse_special_tokens(j.value("special_tokens", json()), what));
    auto parse_template = [&](const char* key, std::vector<Piece>* out) -> Status {
      const json& t = j[key];
      if (!t.is_array()) return Status::Error(StrCat() << what << "." << key << " must be an array");
      for (size_t i = 0; i < t.size(); ++i) {
        Piece piece;
        DS_RETURN_IF_ERROR(parse_piece(t[i], specials, StrCat() << what << "." << key << "[" << i << "]",
                                       &piece.sequence, &piece.ids));
        out->push_back(std::move(piece));
      }
      return Status::Ok();
    };
    if (!j.contains("single")) return Status::Error(what + ": TemplateProcessing without 'single'");
    DS_RETURN_IF_ERROR(parse_template("single", &step.single));
    if (j.contains("pair") && !j["pair"].is_null()) {
      DS_RETURN_IF_ERROR(parse_template("pair", &step.pair));
      step.has_pair = true;
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    step.kind = type == "BertProcessing" ? Kind::kBert : Kind::kRoberta;
    DS_ASSIGN_OR_RETURN(auto cls, parse_token_pair(j.value("cls", json()), what + ".cls"));
    DS_ASSIGN_OR_RETURN(auto sep, parse_token_pair(j.value("sep", json()), what + ".sep"));
    step.cls = cls.second;
    step.sep = sep.second;
  } else {
    return Status::Error(StrCat() << what << ": unsupported post_processor type '" << type << "'");
  }
  steps->push_back(std::move(step));
  return Status::Ok();
}

Status PostProcessor::process(std::vector<std::vector<int32_t>> encs, bool add_special,
                              std::vector<int32_t>* out) const {
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kByteLevel:
        break;
      case Kind::kTemplate: {
        if (encs.size() == 2 && !step.has_pair) {
          return Status::Error("post_processor: TemplateProcessing has no pair template");
        }
        const auto& tmpl = encs.size() == 2 ? step.pair : step.single;
        std::vector<int32_t> merged;
        for (const Piece& p : tmpl) {
          if (p.sequence >= 0) {
            if (static_cast<size_t>(p.sequence) < encs.size()) {
              merged.insert(merged.end(), encs[p.sequence].begin(), encs[p.sequence].end());
            }
          } else if (add_special) {
            merged.insert(merged.end(), p.ids.begin(), p.ids.end());
          }
        }
        encs.assign(1, std::move(merged));
        break;
      }
      case Kind::kBert:
      case Kind::kRoberta: {
        if (!add_special) break;
        for (size_t i = 0; i < encs.size(); ++i) {
          std::vector<int32_t> e;
          if (i == 0) e.push_back(step.cls);
          if (i == 1 && step.kind == Kind::kRoberta) e.push_back(step.sep);
          e.insert(e.end(), encs[i].begin(), encs[i].end());
          e.push_back(step.sep);
          encs[i] = std::move(e);
        }
        break;
      }
    }
  }
  out->clear();
  for (const auto& e : encs) out->insert(out->end(), e.begin(), e.end());
  return Status::Ok();
}

}  // namespace ds::tok
