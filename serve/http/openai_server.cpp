#include "serve/http/openai_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "serve/chat_template/chat_template.h"
#include "serve/http/api_error.h"
#include "serve/http/generation_job.h"
#include "serve/http/metrics.h"
#include "serve/http/openai_request.h"
#include "serve/http/sse.h"
#include "serve/tokenizer/tokenizer.h"

namespace ds::http {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kPumpInterval = std::chrono::milliseconds(50);

void reply_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump_json(e.to_json()), "application/json");
}

void reply_json(httplib::Response& res, const json& body) { res.set_content(dump_json(body), "application/json"); }

// Parses a request body; a malformed body is a 400 naming the JSON error.
ApiResult<ojson> parse_body(const httplib::Request& req) {
  try {
    return ojson::parse(req.body);
  } catch (const ojson::parse_error& e) {
    return ApiError::bad_request(StrCat() << "Malformed JSON in the request body: " << e.what());
  }
}

}  // namespace

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

bool OpenAIServer::Impl::check_model(const ojson& body, httplib::Response& res) const {
  auto it = body.is_object() ? body.find("model") : body.end();
  if (it == body.end() || it->is_null()) return true;
  if (it->is_string() && it->get<std::string>() == model_name) return true;
  if (!it->is_string()) {
    reply_error(res, ApiError::bad_request("model: expected a string", "model"));
    return false;
  }
  reply_error(res, ApiError::not_found(StrCat() << "The model `" << it->get<std::string>() << "` does not exist."));
  return false;
}

ApiResult<std::string> OpenAIServer::Impl::render_chat(const OpenAIRequest& r) const {
  if (!chat_template) {
    return ApiError::bad_request(chat_template_error.empty() ? "this model has no chat template" : chat_template_error,
                                 "messages");
  }
  ojson context = ojson::object();
  context["messages"] = r.messages;
  context["add_generation_prompt"] = r.add_generation_prompt;
  context["bos_token"] = tokenizer->bos_token();
  context["eos_token"] = tokenizer->eos_token();
  if (!r.tools.is_null()) context["tools"] = r.tools;
  if (r.chat_template_kwargs.is_object()) {
    for (auto it = r.chat_template_kwargs.begin(); it != r.chat_template_kwargs.end(); ++it) {
      context[it.key()] = it.value();
    }
  }
  auto rendered = chat_template->render(context);
  if (!rendered.ok()) {
    return ApiError::bad_request(StrCat() << "chat template: " << rendered.status().message(), "messages");
  }
  return std::move(rendered).value();
}

void OpenAIServer::Impl::handle_generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  const auto arrival = Clock::now();
  if (stopping.load()) return reply_error(res, ApiError::unavailable());
  auto body = parse_body(req);
  if (!body.ok()) return reply_error(res, body.error());
  auto parsed = endpoint == Endpoint::kChat ? parse_chat_request(*body, vocab_size, defaults)
                                            : parse_completion_request(*body, vocab_size, defaults);
  if (!parsed.ok()) return reply_error(res, parsed.error());
  if (!check_model(*body, res)) return;
  OpenAIRequest r = std::move(*parsed);

  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> texts;
  const char* prompt_param = endpoint == Endpoint::kChat ? "messages" : "prompt";
  if (endpoint == Endpoint::kChat) {
    auto rendered = render_chat(r);
    if (!rendered.ok()) return reply_error(res, rendered.error());
    auto ids = tokenizer->encode(*rendered, r.add_special_tokens);
    if (!ids.ok()) return reply_error(res, ApiError::bad_request(ids.status().message(), prompt_param));
    prompts.push_back(std::move(*ids));
    texts.push_back(std::move(*rendered));
  } else {
    for (auto& p : r.prompts) {
      if (p.is_ids) {
        texts.push_back(tokenizer->decode(p.ids, /*skip_special_tokens=*/false));
        prompts.push_back(p.ids);
      } else {
        auto ids = tokenizer->encode(p.text, r.add_special_tokens);
        if (!ids.ok()) return reply_error(res, ApiError::bad_request(ids.status().message(), prompt_param));
        prompts.push_back(std::move(*ids));
        texts.push_back(p.text);
      }
    }
  }
  std::vector<int64_t> max_new;
  for (const auto& p : prompts) {
    if (auto e = resolve_max_tokens(r, static_cast<int64_t>(p.size()), max_model_len)) return reply_error(res, *e);
    max_new.push_back(r.sampling.max_new_tokens);
  }

  JobContext ctx{backend, tokenizer.get(), &metrics, model_name, options.reasoning_parser};
  const bool stream = r.stream;
  auto job = std::make_shared<GenerationJob>(std::move(ctx), std::move(r), std::move(prompts), std::move(texts),
                                             std::move(max_new), arrival);
  if (auto e = job->submit()) return reply_error(res, *e);

  if (!stream) {
    while (!job->finished()) {
      if (stopping.load()) {
        job->abort_all();
        return reply_error(res, ApiError::unavailable());
      }
      job->pump(kPumpInterval);
    }
    if (!job->error().empty()) return reply_error(res, ApiError::internal(job->error()));
    return reply_json(res, job->response_body());
  }

  res.set_header("Cache-Control", "no-cache");
  auto opened = std::make_shared<bool>(false);
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, opened](size_t /*offset*/, httplib::DataSink& sink) {
        auto send = [&sink](const std::string& bytes) { return sink.write(bytes.data(), bytes.size()); };
        if (!*opened) {
          *opened = true;
          for (const auto& chunk : job->opening_chunks()) {
            if (!send(sse_event(chunk))) return job->abort_all(), false;
          }
        }
        std::vector<json> chunks;
        if (stopping.load()) job->abort_all(&chunks);  // streams end with finish_reason "abort"
        for (auto& chunk : job->pump(kPumpInterval)) chunks.push_back(std::move(chunk));
        for (const auto& chunk : chunks) {
          if (!send(sse_event(chunk))) return job->abort_all(), false;
        }
        if (job->finished()) {
          if (!job->error().empty()) send(sse_event(ApiError::internal(job->error()).to_json()));
          send(sse_done());
          sink.done();
          return true;
        }
        if (!sink.is_writable()) return job->abort_all(), false;
        return true;
      },
      [job](bool success) {
        if (!success) job->abort_all();  // client gone or server stopping
      });
}

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

void OpenAIServer::Impl::install_routes() {
  server.set_payload_max_length(size_t{64} << 20);
  // One worker per connection (streams and keep-alive connections each hold one), so more
  // than the backend runs at once: queued requests still get their connection served.
  const size_t threads = static_cast<size_t>(std::clamp<int64_t>(2 * options.max_running_requests + 64, 512, 4096));
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_keep_alive_timeout(5);

  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth != "Bearer " + options.api_key) {
      reply_error(res, ApiError::unauthorized());
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      reply_error(res, ApiError::not_found(StrCat() << "Not Found: " << req.method << " " << req.path));
    } else if (res.body.empty() && res.status >= 400) {
      reply_error(res, ApiError::make(res.status, res.status >= 500 ? "InternalServerError" : "BadRequestError",
                                      StrCat() << "HTTP " << res.status << " for " << req.method << " " << req.path));
    }
  });
  server.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log(LogLevel::kError, "internal error: " + what);
    reply_error(res, ApiError::internal("internal error: " + what));
  });
  server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    log(LogLevel::kInfo, StrCat() << req.remote_addr << " \"" << req.method << " " << req.path << "\" " << res.status);
  });

  server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generate(req, res, Endpoint::kChat);
  });
  server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generate(req, res, Endpoint::kCompletion);
  });
  server.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json model = {{"id", model_name},       {"object", "model"}, {"created", created},
                  {"owned_by", "dsrt"},     {"root", model_name}, {"parent", nullptr},
                  {"max_model_len", max_model_len}};
    reply_json(res, json{{"object", "list"}, {"data", json::array({model})}});
  });
  server.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(backend->stats(), model_name), "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) { handle_tokenize(req, res); });
  server.Post("/detokenize",
              [this](const httplib::Request& req, httplib::Response& res) { handle_detokenize(req, res); });
}

OpenAIServer::OpenAIServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OpenAIServer::~OpenAIServer() { stop(); }

Result<std::unique_ptr<OpenAIServer>> OpenAIServer::create(const ServerOptions& options, ServingBackend& backend,
                                                           const LoadedPlan& plan) {
  DS_RETURN_IF_ERROR(options.validate());
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->backend = &backend;
  const plan::TokenizerInfo* tinfo = plan->tokenizer();
  if (tinfo == nullptr || tinfo->tokenizer_json() == nullptr || tinfo->tokenizer_json()->size() == 0) {
    return Status::Error(StrCat() << plan.origin() << ": the plan has no tokenizer (tokenizer.tokenizer_json)");
  }
  const std::string config_json = tinfo->tokenizer_config_json() ? tinfo->tokenizer_config_json()->str() : "";
  auto tok = Tokenizer::from_json(tinfo->tokenizer_json()->string_view(), config_json);
  if (!tok.ok()) return tok.status().with_context(plan.origin() + ": tokenizer");
  impl->tokenizer = std::move(*tok);
  if (tinfo->chat_template() != nullptr && tinfo->chat_template()->size() > 0) {
    auto tmpl = ChatTemplate::parse(tinfo->chat_template()->string_view());
    if (tmpl.ok()) {
      impl->chat_template = std::move(*tmpl);
    } else {
      // Completions still work; chat requests get this message.
      impl->chat_template_error = "the model's chat template does not parse: " + tmpl.status().message();
    }
  }
  const plan::ModelInfo* model = plan->model();
  impl->model_name = options.served_model_name;
  if (impl->model_name.empty() && model != nullptr && model->name() != nullptr) impl->model_name = model->name()->str();
  if (impl->model_name.empty()) impl->model_name = "default";
  impl->max_model_len = backend.max_model_len();
  if (options.max_model_len > 0) {
    if (options.max_model_len > impl->max_model_len) {
      return Status::Error(StrCat() << "--max-model-len " << options.max_model_len << " exceeds the backend's "
                                    << impl->max_model_len);
    }
    impl->max_model_len = options.max_model_len;
  }
  if (impl->max_model_len < 2) {
    return Status::Error(StrCat() << "max model length " << impl->max_model_len << " is too small to serve");
  }
  impl->vocab_size = backend.vocab_size();
  if (const plan::GenerationDefaults* g = plan->generation()) {
    impl->defaults.temperature = g->temperature();
    impl->defaults.top_p = g->top_p();
    impl->defaults.top_k = g->top_k();
    impl->defaults.min_p = g->min_p();
    impl->defaults.repetition_penalty = g->repetition_penalty();
    if (!(impl->defaults.top_p > 0.0f && impl->defaults.top_p <= 1.0f)) impl->defaults.top_p = 1.0f;
    if (!(impl->defaults.temperature >= 0.0f)) impl->defaults.temperature = 1.0f;
    if (!(impl->defaults.repetition_penalty > 0.0f)) impl->defaults.repetition_penalty = 1.0f;
    if (!(impl->defaults.min_p >= 0.0f && impl->defaults.min_p <= 1.0f)) impl->defaults.min_p = 0.0f;
  }
  impl->created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  impl->install_routes();
  return std::unique_ptr<OpenAIServer>(new OpenAIServer(std::move(impl)));
}

Status OpenAIServer::bind() {
  if (impl_->options.port == 0) {
    impl_->port = impl_->server.bind_to_any_port(impl_->options.host);
  } else {
    impl_->port = impl_->server.bind_to_port(impl_->options.host, impl_->options.port) ? impl_->options.port : -1;
  }
  if (impl_->port <= 0) {
    return Status::Error(StrCat() << "cannot listen on " << impl_->options.host << ":" << impl_->options.port << ": "
                                  << std::strerror(errno));
  }
  return Status::Ok();
}

int OpenAIServer::port() const { return impl_->port; }
const std::string& OpenAIServer::model_name() const { return impl_->model_name; }
int64_t OpenAIServer::max_model_len() const { return impl_->max_model_len; }

Status OpenAIServer::serve() {
  if (impl_->port <= 0) return Status::Error("OpenAIServer::serve: bind() first");
  if (!impl_->server.listen_after_bind() && !impl_->stopping.load()) {
    return Status::Error(StrCat() << "the HTTP server on port " << impl_->port << " failed");
  }
  return Status::Ok();
}

void OpenAIServer::stop() {
  // Generation requests in flight see `stopping`, abort their backend requests and end
  // their responses (streams with finish_reason "abort" and [DONE]); httplib's stop()
  // would cut open streams mid-chunk, so it waits for them, boundedly.
  impl_->stopping.store(true);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (impl_->metrics.http_requests_in_flight.load() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  impl_->server.stop();
}

namespace {

int g_signal_pipe[2] = {-1, -1};

void on_stop_signal(int) {
  const char byte = 1;
  if (g_signal_pipe[1] >= 0) {
    ssize_t n = write(g_signal_pipe[1], &byte, 1);
    (void)n;
  }
}

}  // namespace

Status run_server(const ServerOptions& options, ServingBackend& backend, const LoadedPlan& plan) {
  DS_ASSIGN_OR_RETURN(auto server, OpenAIServer::create(options, backend, plan));
  DS_RETURN_IF_ERROR(server->bind());
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the server
  if (pipe(g_signal_pipe) != 0) return DS_ERROR_HERE("pipe: " << std::strerror(errno));
  struct sigaction sa {};
  struct sigaction old_int {}, old_term {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    pollfd pfd{g_signal_pipe[0], POLLIN, 0};
    while (!done.load()) {
      if (poll(&pfd, 1, 200) > 0 && (pfd.revents & POLLIN)) {
        char byte;
        if (read(g_signal_pipe[0], &byte, 1) == 1 && !done.load()) {
          std::fprintf(stderr, "dsrt serve: shutting down\n");
          server->stop();
          return;
        }
      }
    }
  });
  std::fprintf(stderr, "dsrt serve: listening on http://%s:%d (model %s, max_model_len %lld)\n", options.host.c_str(),
               server->port(), server->model_name().c_str(), static_cast<long long>(server->max_model_len()));
  std::fflush(stderr);
  Status st = server->serve();
  done.store(true);
  watcher.join();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  close(g_signal_pipe[0]);
  close(g_signal_pipe[1]);
  g_signal_pipe[0] = g_signal_pipe[1] = -1;
  return st;
}

}  // namespace ds::http
