// POST /tokenize and /detokenize (vLLM shapes).
#include <vector>

#include "serve/http/server_impl.h"

namespace ds::http {

void OpenAIServer::Impl::handle_tokenize(const httplib::Request& req, httplib::Response& res) {
  auto body = parse_body(req);
  if (!body.ok()) return reply_error(res, body.error());
  if (!body->is_object()) return reply_error(res, ApiError::bad_request("the request body must be a JSON object"));
  if (!check_model(*body, res)) return;
  std::string text;
  bool add_special = true;
  auto flag = [&](const char* key, bool def, bool* out) -> bool {
    auto it = body->find(key);
    if (it == body->end() || it->is_null()) return *out = def, true;
    if (!it->is_boolean()) {
      reply_error(res, ApiError::bad_request(StrCat() << key << ": expected a boolean", key));
      return false;
    }
    *out = it->get<bool>();
    return true;
  };
  if (body->contains("messages")) {
    auto messages = normalize_messages((*body)["messages"]);
    if (!messages.ok()) return reply_error(res, messages.error());
    OpenAIRequest r;
    r.messages = std::move(*messages);
    if (!flag("add_generation_prompt", true, &r.add_generation_prompt)) return;
    if (!flag("add_special_tokens", false, &add_special)) return;
    auto kw = body->find("chat_template_kwargs");
    if (kw != body->end() && kw->is_object()) r.chat_template_kwargs = *kw;
    auto tools = body->find("tools");
    if (tools != body->end() && tools->is_array()) r.tools = *tools;
    auto rendered = render_chat(r);
    if (!rendered.ok()) return reply_error(res, rendered.error());
    text = std::move(*rendered);
  } else {
    auto prompt = body->find("prompt");
    if (prompt == body->end() || !prompt->is_string()) {
      return reply_error(res, ApiError::bad_request("prompt: expected a string (or give messages)", "prompt"));
    }
    text = prompt->get<std::string>();
    if (!flag("add_special_tokens", true, &add_special)) return;
  }
  auto ids = tokenizer->encode(text, add_special);
  if (!ids.ok()) return reply_error(res, ApiError::bad_request(ids.status().message(), "prompt"));
  reply_json(res, json{{"count", ids->size()}, {"max_model_len", max_model_len}, {"tokens", *ids},
                       {"token_strs", nullptr}});
}

void OpenAIServer::Impl::handle_detokenize(const httplib::Request& req, httplib::Response& res) {
  auto body = parse_body(req);
  if (!body.ok()) return reply_error(res, body.error());
  if (!body->is_object()) return reply_error(res, ApiError::bad_request("the request body must be a JSON object"));
  if (!check_model(*body, res)) return;
  auto tokens = body->find("tokens");
  if (tokens == body->end() || !tokens->is_array()) {
    return reply_error(res, ApiError::bad_request("tokens: expected a list of token ids", "tokens"));
  }
  std::vector<int32_t> ids;
  for (const auto& t : *tokens) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab_size) {
      return reply_error(res, ApiError::bad_request(StrCat() << "tokens: " << t.dump() << " is not a token id in [0, "
                                                             << vocab_size << ")",
                                                    "tokens"));
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  reply_json(res, json{{"prompt", tokenizer->decode(ids, /*skip_special_tokens=*/false)}});
}

}  // namespace ds::http
