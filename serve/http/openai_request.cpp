#include "serve/http/openai_request.h"

#include <cmath>
#include <limits>

namespace ds::http {
namespace {

using json = nlohmann::ordered_json;

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::number_float: return "number";
    default: return "integer";
  }
}

// Reads typed fields of a request body; the first problem is kept.
class Fields {
 public:
  explicit Fields(const json& body) : body_(body) {}

  const json* get(const char* key) const {
    auto it = body_.find(key);
    if (it == body_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool has(const char* key) const { return get(key) != nullptr; }

  bool boolean(const char* key, bool def) {
    const json* v = get(key);
    if (v == nullptr) return def;
    if (!v->is_boolean()) return fail_type(key, "a boolean", *v), def;
    return v->get<bool>();
  }

  // A number in [lo, hi] (inclusive unless the open flags say otherwise).
  double number(const char* key, double def, double lo, double hi, bool lo_open = false) {
    const json* v = get(key);
    if (v == nullptr) return def;
    if (!v->is_number()) return fail_type(key, "a number", *v), def;
    const double x = v->get<double>();
    if (!std::isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo)) {
      fail(key, StrCat() << key << " must be in " << (lo_open ? "(" : "[") << lo << ", " << hi << "], got " << x);
      return def;
    }
    return x;
  }

  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi) {
    const json* v = get(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer()) {
      // 3.0 is accepted as 3, as pydantic does.
      if (v->is_number_float() && std::isfinite(v->get<double>()) && std::floor(v->get<double>()) == v->get<double>() &&
          std::fabs(v->get<double>()) < 9.0e15) {
        return check_range(key, static_cast<int64_t>(v->get<double>()), lo, hi);
      }
      fail_type(key, "an integer", *v);
      return std::nullopt;
    }
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail(key, StrCat() << key << " is out of range");
      return std::nullopt;
    }
    return check_range(key, v->get<int64_t>(), lo, hi);
  }

  void fail(const std::string& param, const std::string& message) {
    if (!error) error = ApiError::bad_request(message, param);
  }
  void fail_type(const std::string& param, const char* expected, const json& got) {
    fail(param, StrCat() << param << ": expected " << expected << ", got " << type_name(got));
  }

  std::optional<ApiError> error;

 private:
  std::optional<int64_t> check_range(const char* key, int64_t x, int64_t lo, int64_t hi) {
    if (x < lo || x > hi) {
      fail(key, StrCat() << key << " must be in [" << lo << ", " << hi << "], got " << x);
      return std::nullopt;
    }
    return x;
  }
  const json& body_;
};

void parse_common(Fields& f, int64_t vocab_size, const RequestSampling& d, OpenAIRequest& r) {
  if (const json* m = f.get("model")) {
    if (!m->is_string()) f.fail_type("model", "a string", *m);
    else r.model = m->get<std::string>();
  }
  RequestSampling& s = r.sampling;
  s.temperature = static_cast<float>(f.number("temperature", d.temperature, 0.0, 1.0e6));
  s.top_p = static_cast<float>(f.number("top_p", d.top_p, 0.0, 1.0, /*lo_open=*/true));
  s.top_k = d.top_k;
  if (auto k = f.integer("top_k", -1, std::numeric_limits<int32_t>::max())) s.top_k = static_cast<int32_t>(*k);
  if (s.top_k == 0) s.top_k = -1;  // vLLM: 0 disables top-k
  if (vocab_size > 0 && s.top_k > vocab_size) s.top_k = static_cast<int32_t>(vocab_size);
  s.min_p = static_cast<float>(f.number("min_p", d.min_p, 0.0, 1.0));
  s.presence_penalty = static_cast<float>(f.number("presence_penalty", 0.0, -2.0, 2.0));
  s.frequency_penalty = static_cast<float>(f.number("frequency_penalty", 0.0, -2.0, 2.0));
  s.repetition_penalty = static_cast<float>(f.number("repetition_penalty", d.repetition_penalty, 0.0, 1.0e6, /*lo_open=*/true));
  if (auto seed = f.integer("seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())) {
    s.seed = static_cast<uint64_t>(*seed);
  }
  s.ignore_eos = f.boolean("ignore_eos", false);

  // max_completion_tokens (chat) takes precedence over the deprecated max_tokens.
  const char* max_key = (r.endpoint == Endpoint::kChat && f.has("max_completion_tokens")) ? "max_completion_tokens"
                                                                                          : "max_tokens";
  if (auto mt = f.integer(max_key, 1, std::numeric_limits<int64_t>::max())) r.max_tokens = *mt;

  if (const json* stop = f.get("stop")) {
    if (stop->is_string()) {
      r.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const auto& s1 : *stop) {
        if (!s1.is_string()) {
          f.fail_type("stop", "a string or a list of strings", s1);
          break;
        }
        r.stop.push_back(s1.get<std::string>());
      }
    } else {
      f.fail_type("stop", "a string or a list of strings", *stop);
    }
    for (const auto& s1 : r.stop) {
      if (s1.empty()) f.fail("stop", "stop strings must not be empty");
    }
  }
  if (const json* ids = f.get("stop_token_ids")) {
    if (!ids->is_array()) {
      f.fail_type("stop_token_ids", "a list of integers", *ids);
    } else {
      for (const auto& id : *ids) {
        if (!id.is_number_integer()) {
          f.fail_type("stop_token_ids", "a list of integers", id);
          break;
        }
        const int64_t v = id.get<int64_t>();
        if (v < 0 || (vocab_size > 0 && v >= vocab_size)) {
          f.fail("stop_token_ids", StrCat() << "stop_token_ids: token id " << v << " is not in [0, " << vocab_size << ")");
          break;
        }
        s.stop_token_ids.push_back(static_cast<int32_t>(v));
      }
    }
  }
  r.include_stop_str_in_output = f.boolean("include_stop_str_in_output", false);
  if (auto n = f.integer("n", 1, kMaxChoices)) r.n = static_cast<int>(*n);
  r.stream = f.boolean("stream", false);
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object()) {
      f.fail_type("stream_options", "an object", *so);
    } else if (!r.stream) {
      f.fail("stream_options", "Stream options can only be defined when `stream=True`.");
    } else {
      Fields sf(*so);
      r.include_usage = sf.boolean("include_usage", false);
      if (sf.error) f.fail("stream_options", sf.error->message);
    }
  }
  r.skip_special_tokens = f.boolean("skip_special_tokens", true);
  // Features this server does not implement are refused rather than silently ignored.
  if (const json* bias = f.get("logit_bias")) {
    if (!bias->is_object()) f.fail_type("logit_bias", "an object", *bias);
    else if (!bias->empty()) f.fail("logit_bias", "logit_bias is not supported by this server");
  }
  if (const json* fmt = f.get("response_format")) {
    auto type = fmt->is_object() ? fmt->find("type") : fmt->end();
    if (!fmt->is_object() || type == fmt->end() || !type->is_string()) {
      f.fail("response_format", "response_format: expected an object with a string \"type\"");
    } else if (*type != "text") {
      f.fail("response_format", "response_format type '" + type->get<std::string>() + "' is not supported (only text)");
    }
  }
}

}  // namespace

ApiResult<nlohmann::ordered_json> normalize_messages(const json& messages) {
  if (!messages.is_array()) {
    return ApiError::bad_request(StrCat() << "messages: expected an array, got " << type_name(messages), "messages");
  }
  if (messages.empty()) return ApiError::bad_request("messages: must not be empty", "messages");
  json out = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = StrCat() << "messages[" << i << "]";
    if (!m.is_object()) return ApiError::bad_request(where + ": expected an object", "messages");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return ApiError::bad_request(where + ".role: expected a string", "messages");
    }
    json msg = m;
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      msg["content"] = nullptr;
    } else if (content->is_string()) {
      // kept
    } else if (content->is_array()) {
      std::string text;
      bool first = true;
      for (const auto& part : *content) {
        auto type = part.is_object() ? part.find("type") : part.end();
        if (!part.is_object() || type == part.end() || !type->is_string()) {
          return ApiError::bad_request(where + ".content: parts must be objects with a \"type\"", "messages");
        }
        if (*type != "text") {
          return ApiError::bad_request(where + ".content: unsupported content part type '" +
                                           type->get<std::string>() + "' (this model takes text only)",
                                       "messages");
        }
        auto t = part.find("text");
        if (t == part.end() || !t->is_string()) {
          return ApiError::bad_request(where + ".content: a text part needs a string \"text\"", "messages");
        }
        if (!first) text += "\n";
        text += t->get<std::string>();
        first = false;
      }
      msg["content"] = text;
    } else {
      return ApiError::bad_request(where + ".content: expected a string, a list of parts or null", "messages");
    }
    out.push_back(std::move(msg));
  }
  return out;
}

ApiResult<OpenAIRequest> parse_chat_request(const json& body, int64_t vocab_size, const RequestSampling& defaults) {
  if (!body.is_object()) return ApiError::bad_request("the request body must be a JSON object");
  OpenAIRequest r;
  r.endpoint = Endpoint::kChat;
  auto messages = body.find("messages");
  if (messages == body.end()) return ApiError::bad_request("messages: field required", "messages");
  auto normalized = normalize_messages(*messages);
  if (!normalized.ok()) return normalized.error();
  r.messages = std::move(*normalized);

  Fields f(body);
  parse_common(f, vocab_size, defaults, r);
  r.logprobs = f.boolean("logprobs", false);
  if (auto k = f.integer("top_logprobs", 0, kMaxLogprobs)) {
    r.top_logprobs = static_cast<int>(*k);
    if (!r.logprobs && r.top_logprobs > 0) f.fail("top_logprobs", "top_logprobs requires logprobs to be true");
  }
  r.add_generation_prompt = f.boolean("add_generation_prompt", true);
  r.add_special_tokens = f.boolean("add_special_tokens", false);
  if (const json* tools = f.get("tools")) {
    if (!tools->is_array()) f.fail_type("tools", "an array", *tools);
    else r.tools = *tools;
  }
  if (const json* kw = f.get("chat_template_kwargs")) {
    if (!kw->is_object()) f.fail_type("chat_template_kwargs", "an object", *kw);
    else r.chat_template_kwargs = *kw;
  }
  if (f.error) return *f.error;
  r.sampling.logprobs = r.logprobs ? r.top_logprobs : -1;
  return r;
}

ApiResult<OpenAIRequest> parse_completion_request(const json& body, int64_t vocab_size,
                                                  const RequestSampling& defaults) {
  if (!body.is_object()) return ApiError::bad_request("the request body must be a JSON object");
  OpenAIRequest r;
  r.endpoint = Endpoint::kCompletion;
  auto prompt = body.find("prompt");
  if (prompt == body.end() || prompt->is_null()) return ApiError::bad_request("prompt: field required", "prompt");
  auto id_list = [&](const json& arr, PromptInput* out) -> std::optional<ApiError> {
    out->is_ids = true;
    for (const auto& id : arr) {
      if (!id.is_number_integer()) return ApiError::bad_request("prompt: token ids must be integers", "prompt");
      const int64_t v = id.get<int64_t>();
      if (v < 0 || (vocab_size > 0 && v >= vocab_size)) {
        return ApiError::bad_request(StrCat() << "prompt: token id " << v << " is out of vocabulary (size "
                                              << vocab_size << ")",
                                     "prompt");
      }
      out->ids.push_back(static_cast<int32_t>(v));
    }
    return std::nullopt;
  };
  if (prompt->is_string()) {
    r.prompts.push_back(PromptInput{prompt->get<std::string>(), {}, false});
  } else if (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_number()) {
    PromptInput p;
    if (auto e = id_list(*prompt, &p)) return *e;
    r.prompts.push_back(std::move(p));
  } else if (prompt->is_array() && !prompt->empty()) {
    for (const auto& item : *prompt) {
      PromptInput p;
      if (item.is_string()) {
        p.text = item.get<std::string>();
      } else if (item.is_array()) {
        if (auto e = id_list(item, &p)) return *e;
      } else {
        return ApiError::bad_request("prompt: expected a string, a list of strings or token id lists", "prompt");
      }
      r.prompts.push_back(std::move(p));
    }
  } else {
    return ApiError::bad_request("prompt: expected a non-empty string, token id list or list of prompts", "prompt");
  }

  Fields f(body);
  parse_common(f, vocab_size, defaults, r);
  if (auto k = f.integer("logprobs", 0, kMaxLogprobs)) {
    r.logprobs = true;
    r.top_logprobs = static_cast<int>(*k);
  }
  r.echo = f.boolean("echo", false);
  r.add_special_tokens = f.boolean("add_special_tokens", true);
  if (f.has("suffix")) f.fail("suffix", "suffix is not supported");
  if (f.has("best_of")) {
    auto best_of = f.integer("best_of", 1, kMaxChoices);
    if (best_of && *best_of != r.n) f.fail("best_of", "best_of other than n is not supported");
  }
  if (f.error) return *f.error;
  if (r.prompts.size() * static_cast<size_t>(r.n) > static_cast<size_t>(kMaxChoices)) {
    return ApiError::bad_request(StrCat() << "prompts x n must be at most " << kMaxChoices, "n");
  }
  r.sampling.logprobs = r.logprobs ? r.top_logprobs : -1;
  r.sampling.prompt_logprobs = r.echo && r.logprobs;
  return r;
}

std::optional<ApiError> resolve_max_tokens(OpenAIRequest& r, int64_t prompt_tokens, int64_t max_model_len) {
  const char* param = r.endpoint == Endpoint::kChat ? "messages" : "prompt";
  if (prompt_tokens <= 0) return ApiError::bad_request("The prompt is empty (0 tokens).", param);
  if (prompt_tokens >= max_model_len) {
    return ApiError::bad_request(StrCat() << "This model's maximum context length is " << max_model_len
                                          << " tokens. However, your request has " << prompt_tokens
                                          << " input tokens. Please reduce the length of the input messages.",
                                 param);
  }
  if (r.max_tokens && prompt_tokens + *r.max_tokens > max_model_len) {
    return ApiError::bad_request(
        StrCat() << "This model's maximum context length is " << max_model_len << " tokens. However, you requested "
                 << prompt_tokens + *r.max_tokens << " tokens (" << prompt_tokens << " in the "
                 << (r.endpoint == Endpoint::kChat ? "messages" : "prompt") << ", " << *r.max_tokens
                 << " in the completion). Please reduce the length of the "
                 << (r.endpoint == Endpoint::kChat ? "messages" : "prompt") << " or completion.",
        r.endpoint == Endpoint::kChat ? "max_tokens" : "max_tokens");
  }
  r.sampling.max_new_tokens = r.max_tokens ? *r.max_tokens : max_model_len - prompt_tokens;
  return std::nullopt;
}

}  // namespace ds::http
