//===- JsonFields.h - Typed access to JSON fields with clear errors --------===//
//
// Private helper of the importer: reads the fields of one JSON object of one
// file (config.json, generation_config.json, ...) and turns every type or
// range problem into an error naming the file and the field.
//
//===----------------------------------------------------------------------===//

#ifndef DS_LIB_IMPORT_JSONFIELDS_H
#define DS_LIB_IMPORT_JSONFIELDS_H

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/common/status.h"

namespace ds {

/// Parses `text` (the contents of `path`); a syntax error names the file.
Result<nlohmann::json> parseJson(const std::string &text, const std::string &path);

class JsonFields {
public:
  /// `obj` must outlive this. `where` names the file (and the enclosing
  /// object for nested ones, e.g. "config.json: rope_scaling").
  JsonFields(const nlohmann::json &obj, std::string where) : obj(obj), where(std::move(where)) {}

  /// True if the field is present and not null.
  bool has(const std::string &key) const;

  /// Required field when `def` is not given; null counts as absent.
  Result<int64_t> positiveInt(const std::string &key) const;
  Result<int64_t> positiveInt(const std::string &key, int64_t def) const;
  Result<int64_t> integer(const std::string &key, int64_t def) const;
  Result<double> number(const std::string &key) const;
  Result<double> number(const std::string &key, double def) const;
  Result<bool> boolean(const std::string &key, bool def) const;
  Result<std::string> string(const std::string &key, const std::string &def) const;
  Result<std::vector<std::string>> stringList(const std::string &key) const;
  /// An int or a list of ints (e.g. eos_token_id); empty if absent.
  Result<std::vector<int64_t>> intOrIntList(const std::string &key) const;
  Result<JsonFields> object(const std::string &key) const;

  /// "FILE: field 'KEY': MESSAGE" (or "FILE: MESSAGE" for an empty key).
  Status error(const std::string &key, const std::string &message) const;

private:
  Result<const nlohmann::json *> required(const std::string &key) const;

  const nlohmann::json &obj;
  std::string where;
};

}  // namespace ds

#endif  // DS_LIB_IMPORT_JSONFIELDS_H
