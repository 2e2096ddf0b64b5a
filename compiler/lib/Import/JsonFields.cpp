//===- JsonFields.cpp - Typed access to JSON fields with clear errors ------===//

#include "JsonFields.h"

using nlohmann::json;

namespace ds {

Result<json> parseJson(const std::string &text, const std::string &path) {
  try {
    return json::parse(text);
  } catch (const json::exception &e) {
    return Status::Error(StrCat() << path << ": malformed JSON: " << e.what());
  }
}

bool JsonFields::has(const std::string &key) const {
  auto it = obj.find(key);
  return it != obj.end() && !it->is_null();
}

Status JsonFields::error(const std::string &key, const std::string &message) const {
  if (key.empty()) return Status::Error(StrCat() << where << ": " << message);
  return Status::Error(StrCat() << where << ": field '" << key << "': " << message);
}

Result<const json *> JsonFields::required(const std::string &key) const {
  if (!has(key)) return error(key, "is missing");
  return &obj.at(key);
}

Result<int64_t> JsonFields::positiveInt(const std::string &key) const {
  DS_ASSIGN_OR_RETURN(const json *v, required(key));
  if (!v->is_number_integer() || v->get<int64_t>() <= 0)
    return error(key, StrCat() << "must be a positive integer, got " << v->dump());
  return v->get<int64_t>();
}

Result<int64_t> JsonFields::positiveInt(const std::string &key, int64_t def) const {
  if (!has(key)) return def;
  return positiveInt(key);
}

Result<int64_t> JsonFields::integer(const std::string &key, int64_t def) const {
  if (!has(key)) return def;
  const json &v = obj.at(key);
  if (!v.is_number_integer()) return error(key, StrCat() << "must be an integer, got " << v.dump());
  return v.get<int64_t>();
}

Result<double> JsonFields::number(const std::string &key) const {
  DS_ASSIGN_OR_RETURN(const json *v, required(key));
  if (!v->is_number()) return error(key, StrCat() << "must be a number, got " << v->dump());
  return v->get<double>();
}

Result<double> JsonFields::number(const std::string &key, double def) const {
  if (!has(key)) return def;
  return number(key);
}

Result<bool> JsonFields::boolean(const std::string &key, bool def) const {
  if (!has(key)) return def;
  const json &v = obj.at(key);
  if (!v.is_boolean()) return error(key, StrCat() << "must be true or false, got " << v.dump());
  return v.get<bool>();
}

Result<std::string> JsonFields::string(const std::string &key, const std::string &def) const {
  if (!has(key)) return def;
  const json &v = obj.at(key);
  if (!v.is_string()) return error(key, StrCat() << "must be a string, got " << v.dump());
  return v.get<std::string>();
}

Result<std::vector<std::string>> JsonFields::stringList(const std::string &key) const {
  DS_ASSIGN_OR_RETURN(const json *v, required(key));
  if (!v->is_array()) return error(key, "must be a list of strings");
  std::vector<std::string> out;
  for (const json &e : *v) {
    if (!e.is_string()) return error(key, "must be a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

Result<std::vector<int64_t>> JsonFields::intOrIntList(const std::string &key) const {
  std::vector<int64_t> out;
  if (!has(key)) return out;
  const json &v = obj.at(key);
  if (v.is_number_integer()) {
    out.push_back(v.get<int64_t>());
    return out;
  }
  if (!v.is_array()) return error(key, "must be an integer or a list of integers");
  for (const json &e : v) {
    if (!e.is_number_integer()) return error(key, "must be an integer or a list of integers");
    out.push_back(e.get<int64_t>());
  }
  return out;
}

Result<JsonFields> JsonFields::object(const std::string &key) const {
  DS_ASSIGN_OR_RETURN(const json *v, required(key));
  if (!v->is_object()) return error(key, "must be a JSON object");
  return JsonFields(*v, where + ": " + key);
}

}  // namespace ds
