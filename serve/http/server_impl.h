// Internals of OpenAIServer shared by its source files (not a public header).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "runtime/scheduler/request.h"
#include "serve/chat_template/chat_template.h"
#include "serve/http/api_error.h"
#include "serve/http/metrics.h"
#include "serve/http/openai_request.h"
#include "serve/http/openai_server.h"
#include "serve/http/server_options.h"
#include "serve/http/sse.h"
#include "serve/tokenizer/tokenizer.h"

namespace ds::http {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// How long a handler waits for backend updates before it checks the client / shutdown.
inline constexpr auto kPumpInterval = std::chrono::milliseconds(50);

inline void reply_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump_json(e.to_json()), "application/json");
}

inline void reply_json(httplib::Response& res, const json& body) { res.set_content(dump_json(body), "application/json"); }

// Parses a request body; a malformed body is a 400 naming the JSON error.
inline ApiResult<ojson> parse_body(const httplib::Request& req) {
  try {
    return ojson::parse(req.body);
  } catch (const ojson::parse_error& e) {
    return ApiError::bad_request(StrCat() << "Malformed JSON in the request body: " << e.what());
  }
}

struct OpenAIServer::Impl {
  ServerOptions options;
  ServingBackend* backend = nullptr;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;
  std::string chat_template_error;
  std::string model_name;
  int64_t max_model_len = 0;
  int64_t vocab_size = 0;
  RequestSampling defaults;
  ServerMetrics metrics;
  httplib::Server server;
  std::atomic<bool> stopping{false};
  int port = -1;
  int listen_fd = -1;  // the listening socket (captured in bind())
  int64_t created = 0;

  void log(LogLevel level, const std::string& message) const {
    if (level < options.level()) return;
    static std::mutex mu;
    std::lock_guard<std::mutex> lock(mu);
    std::fprintf(stderr, "dsrt serve: %s\n", message.c_str());
    std::fflush(stderr);
  }

  void install_routes();
  bool check_model(const ojson& body, httplib::Response& res) const;
  ApiResult<std::string> render_chat(const OpenAIRequest& r) const;
  void handle_generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
  void handle_tokenize(const httplib::Request& req, httplib::Response& res);
  void handle_detokenize(const httplib::Request& req, httplib::Response& res);
};

}  // namespace ds::http
