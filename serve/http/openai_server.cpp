#include "serve/http/openai_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "serve/http/server_impl.h"

namespace ds::http {

namespace {
constexpr int kListenBacklog = 1024;
}  // namespace

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
  // Our own socket options: SO_REUSEADDR (restart while old connections linger) but not
  // cpp-httplib's default SO_REUSEPORT, which would let a second server bind the same
  // port silently. Also remembers the listening socket, see below.
  Impl* impl = impl_.get();
  impl_->server.set_socket_options([impl](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    impl->listen_fd = sock;
  });
  if (impl_->options.port == 0) {
    impl_->port = impl_->server.bind_to_any_port(impl_->options.host);
  } else {
    impl_->port = impl_->server.bind_to_port(impl_->options.host, impl_->options.port) ? impl_->options.port : -1;
  }
  if (impl_->port <= 0) {
    return Status::Error(StrCat() << "cannot listen on " << impl_->options.host << ":" << impl_->options.port << ": "
                                  << std::strerror(errno));
  }
  // Debian's libcpp-httplib is built with a listen backlog of 5: a burst of clients
  // connecting at once would wait for SYN retransmits (seconds). Listening again on
  // the bound socket raises the backlog.
  if (impl_->listen_fd >= 0 && ::listen(impl_->listen_fd, kListenBacklog) != 0) {
    return Status::Error(StrCat() << "listen on " << impl_->options.host << ":" << impl_->port << ": "
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

}  // namespace ds::http
