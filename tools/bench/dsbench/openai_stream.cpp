#include "tools/bench/dsbench/openai_stream.h"

#include <nlohmann/json.hpp>

namespace ds::bench {

namespace {

using nlohmann::json;

std::optional<std::string> error_of(const json& j) {
  if (auto it = j.find("error"); it != j.end() && !it->is_null()) {
    if (it->is_object()) {
      auto m = it->find("message");
      if (m != it->end() && m->is_string()) return m->get<std::string>();
      return it->dump();
    }
    if (it->is_string()) return it->get<std::string>();
    return it->dump();
  }
  if (auto o = j.find("object"); o != j.end() && o->is_string() && *o == "error") {
    auto m = j.find("message");
    return m != j.end() && m->is_string() ? m->get<std::string>() : j.dump();
  }
  return std::nullopt;
}

void append_string(const json& obj, const char* key, std::string* out) {
  auto it = obj.find(key);
  if (it != obj.end() && it->is_string()) out->append(it->get_ref<const std::string&>());
}

std::optional<int64_t> int_field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

void read_usage(const json& j, ResponsePiece* p) {
  auto u = j.find("usage");
  if (u == j.end() || !u->is_object()) return;
  p->prompt_tokens = int_field(*u, "prompt_tokens");
  p->completion_tokens = int_field(*u, "completion_tokens");
}

// `message_key`: "delta" for chunks, "message" for whole chat responses.
void read_choice0(const json& j, ApiEndpoint endpoint, const char* message_key, ResponsePiece* p) {
  auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array() || choices->empty()) return;
  const json& c = (*choices)[0];
  if (!c.is_object()) return;
  if (endpoint == ApiEndpoint::kChat) {
    auto m = c.find(message_key);
    if (m != c.end() && m->is_object()) {
      append_string(*m, "reasoning_content", &p->text);
      append_string(*m, "reasoning", &p->text);
      append_string(*m, "content", &p->text);
    }
  } else {
    append_string(c, "text", &p->text);
  }
  auto fr = c.find("finish_reason");
  if (fr != c.end() && fr->is_string()) p->finish_reason = fr->get<std::string>();
}

Result<json> parse_object(std::string_view text, const char* what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    std::string head(text.substr(0, 120));
    return Status::Error(StrCat() << what << " is not a JSON object: '" << head << "'");
  }
  return j;
}

}  // namespace

Result<ResponsePiece> parse_stream_data(std::string_view data, ApiEndpoint endpoint) {
  ResponsePiece p;
  std::string_view trimmed = data;
  while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\n')) trimmed.remove_suffix(1);
  if (trimmed == "[DONE]") {
    p.done = true;
    return p;
  }
  DS_ASSIGN_OR_RETURN(json j, parse_object(data, "stream chunk"));
  p.error = error_of(j);
  if (p.error) return p;
  read_choice0(j, endpoint, "delta", &p);
  read_usage(j, &p);
  return p;
}

Result<ResponsePiece> parse_response_body(std::string_view body, ApiEndpoint endpoint) {
  ResponsePiece p;
  DS_ASSIGN_OR_RETURN(json j, parse_object(body, "response body"));
  p.error = error_of(j);
  if (p.error) return p;
  read_choice0(j, endpoint, "message", &p);
  read_usage(j, &p);
  return p;
}

std::string error_message_from_body(std::string_view body, size_t max_len) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    if (auto e = error_of(j)) return *e;
    for (const char* key : {"message", "detail"}) {
      auto it = j.find(key);
      if (it != j.end()) return it->is_string() ? it->get<std::string>() : it->dump();
    }
  }
  std::string s(body.substr(0, max_len));
  if (body.size() > max_len) s += "...";
  return s;
}

}  // namespace ds::bench
