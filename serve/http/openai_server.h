// OpenAI-compatible HTTP server over a ServingBackend (cpp-httplib).
//
// Routes: POST /v1/chat/completions, POST /v1/completions (streaming as SSE or
// not), GET /v1/models, GET /health, GET /metrics (Prometheus text), POST
// /tokenize and /detokenize (vLLM shapes). With an API key every route but
// /health needs "Authorization: Bearer <key>".
//
//   DS_ASSIGN_OR_RETURN(auto server, ds::http::OpenAIServer::create(options, backend, plan));
//   DS_RETURN_IF_ERROR(server->bind());      // port() is known from here on
//   DS_RETURN_IF_ERROR(server->serve());     // blocks until stop()
//
// run_server() does the three steps and stops on SIGINT / SIGTERM: it stops
// accepting, aborts the backend requests in flight (their streams end with
// finish_reason "abort") and returns.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "runtime/common/status.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/scheduler/request.h"
#include "serve/http/server_options.h"

namespace ds::http {

class OpenAIServer {
 public:
  // Reads the tokenizer and chat template from the plan and validates the options.
  static Result<std::unique_ptr<OpenAIServer>> create(const ServerOptions& options, ServingBackend& backend,
                                                      const LoadedPlan& plan);
  ~OpenAIServer();
  OpenAIServer(const OpenAIServer&) = delete;
  OpenAIServer& operator=(const OpenAIServer&) = delete;

  // Binds host:port (port 0: a free port).
  Status bind();
  int port() const;
  // Serves until stop(); requests in flight are aborted on the way out.
  Status serve();
  // Thread-safe (not async-signal-safe): ends the requests in flight (waiting up to 10 s
  // for their responses to finish), then stops the listener.
  void stop();

  const std::string& model_name() const;
  int64_t max_model_len() const;

  struct Impl;

 private:
  explicit OpenAIServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// create + bind + serve, with SIGINT / SIGTERM handlers for a graceful stop.
// Prints "dsrt serve: listening on http://HOST:PORT" to stderr once bound.
Status run_server(const ServerOptions& options, ServingBackend& backend, const LoadedPlan& plan);

}  // namespace ds::http
