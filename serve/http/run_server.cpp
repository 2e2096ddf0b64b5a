// run_server: OpenAIServer with SIGINT / SIGTERM handlers for a graceful stop.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>

#include "serve/http/openai_server.h"

namespace ds::http {

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
